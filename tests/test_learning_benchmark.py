"""Smoke test of the learning-efficiency harness (benchmarks/learning) on a tiny synthetic data set."""

from __future__ import annotations

import glob
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from benchmarks.learning import analysis, harness
from benchmarks.learning import datasets as ds_lib


def _frame(n_per_span: int = 240, spans: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = n_per_span * spans
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    z = 1.5 * x + (colour == "red") - 1.0
    df = pd.DataFrame(
        {
            ds_lib.ID: [f"row-{i}" for i in range(n)],
            "x": np.where(rng.random(n) < 0.05, np.nan, x),  # some missing values
            "k": rng.integers(0, 4, n),
            "colour": colour,
            "period": np.repeat(np.arange(spans), n_per_span),
            "score": z + rng.normal(size=n),
        }
    )
    return df


TINY = ds_lib.DatasetConfig(
    name="tiny",
    description="synthetic smoke test",
    source="generated in the test",
    load=_frame,
    task="binary",
    label_column="score",
    positive_rule="score > 0",
    positive=lambda s: s > 0,
    span_column="period",
    string_features=("colour",),
    int_features=("k",),
    float_features=("x",),
    leaky_columns=("score",),
    steps=1,
)


def test_config_rejects_a_leaky_feature():
    with pytest.raises(ValueError, match="leak"):
        ds_lib.DatasetConfig(**{**TINY.__dict__, "float_features": ("x", "score")})


def test_harness_runs_the_protocol_with_curator_subsets(tmp_path):
    prepared = ds_lib.prepare(TINY, seeds=1, work=str(tmp_path / "data"))
    assert prepared.rows == [240, 240, 240]
    run = harness.RunConfig(
        budgets=(0.25,),
        arms=("full", "uniform", "loss_window"),
        epochs=1,
        batch_size=32,
        workers=0,
        seeds_override=1,
        keep_curated=True,
    )
    out = tmp_path / "run"
    result = harness.run_protocol(prepared, run, str(out), log=lambda _: None)
    rows = pd.DataFrame(result["rows"])
    assert set(rows["arm"]) == {"M0", "full", "uniform", "loss_window"}
    for metric in ("log_loss", "auc", "ap", "calibration"):
        assert rows[metric].map(math.isfinite).all(), metric
    curated = rows[rows["arm"].isin(["uniform", "loss_window"])]
    # budget respected (Poisson sampling: expected 60 of 240) and the figures come from the curation report
    assert np.allclose(curated["expected"], 60.0)
    assert curated["selected"].between(35, 85).all()
    assert (curated["backward"] == curated["selected"]).all()
    assert curated.set_index("arm").loc["uniform", "error_ratio_vs_uniform"] == pytest.approx(1.0)
    assert rows.set_index("arm").loc["full", "trained"] == 240
    # the curated split the chain trained on is the Curator's output: raw examples + the weight feature
    files = glob.glob(str(out / "step-01" / "loss_window@0.25" / "job" / "curated" / "Split-seed0" / "*.gz"))
    assert files
    weights = []
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        ex = tf.train.Example.FromString(raw.numpy())
        weights.append(ex.features.feature[harness.WEIGHT].float_list.value[0])
        assert ex.features.feature[ds_lib.ID].bytes_list.value[0].endswith(b"#s0")
    assert len(weights) == int(curated.set_index("arm").loc["loss_window", "selected"])
    assert min(weights) >= 1.0
    assert sum(weights) == pytest.approx(240, rel=0.5)  # Horvitz-Thompson: weights stand for the span


def test_paired_differences_and_verdicts():
    rows = pd.DataFrame(
        [
            {"arm": arm, "budget": 0.1, "seed": s, "step": 1, "auc": base + s * 0.01}
            for s in range(4)
            for arm, base in (("uniform", 0.70), ("loss_window", 0.71))
        ]
    )
    sm = analysis.per_seed(rows, (1,))
    d = analysis.paired(sm, "auc", "loss_window", 0.1, "uniform")
    assert d["mean"] == pytest.approx(0.01) and d["se"] == pytest.approx(0.0) and d["n"] == 4
    assert analysis.verdict({"mean": 0.01, "se": 0.001}, "auc") == "win"
    assert analysis.verdict({"mean": 0.01, "se": 0.001}, "rmse") == "LOSS"
    assert analysis.verdict({"mean": 0.001, "se": 0.001}, "auc") == "tie"
    assert analysis.halves(6) == {"selection": (1, 2, 3), "held_out": (4, 5, 6), "all": (1, 2, 3, 4, 5, 6)}
