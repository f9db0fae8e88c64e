"""Smoke test of the learning-efficiency harness (benchmarks/learning) on a tiny synthetic data set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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


def test_harness_runs_the_protocol_resumably_and_checks_the_beam_job(tmp_path):
    prepared = ds_lib.prepare(TINY, seeds=1, work=str(tmp_path / "data"))
    assert prepared.rows == [240, 240, 240]
    run = harness.RunConfig(
        budgets=(0.25,),
        arms=("full", "uniform", harness.DEFAULT_ARM),
        epochs=1,
        batch_size=32,
        seeds_override=2,
        arm_seeds=(("full", 1),),
        beam_check_steps=None,
    )
    csv = str(tmp_path / "raw.csv")
    result = harness.run_protocol(prepared, run, str(tmp_path / "run"), csv, log=lambda _: None)
    rows = pd.read_csv(csv)
    assert set(rows["arm"]) == {"M0", "full", "uniform", harness.DEFAULT_ARM}
    assert len(rows) == 2 + 1 + 2 * 2  # M0 per seed, full for one seed, two arms x two seeds (1 step)
    for metric in ("log_loss", "auc", "ap", "calibration"):
        assert rows[metric].map(math.isfinite).all(), metric
    curated = rows[rows["arm"].isin(["uniform", harness.DEFAULT_ARM])]
    assert curated["selected"].between(35, 85).all()  # Poisson sampling, expected 60 of 240
    assert (curated["backward"] == curated["selected"]).all()
    assert curated["sum_w_over_n"].between(0.5, 1.5).all()  # Horvitz-Thompson weights stand for the span
    assert rows.set_index("arm").loc["full", "trained"] == 240
    # the real Curator Beam job ran for the default and selected exactly what the pure path selected
    [check] = result["beam_checks"]
    assert check["identical"] and check["selected"] == check["beam_selected"] > 0
    assert [r["step"] for r in result["logistic_regression"]] == [1]
    # a second run finds every row done and appends nothing
    harness.run_protocol(prepared, run, str(tmp_path / "run"), csv, log=lambda _: None)
    assert len(pd.read_csv(csv)) == len(rows)


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
