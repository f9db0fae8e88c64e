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


def test_versions_arm_scores_by_the_last_served_models_and_resumes_with_them(tmp_path):
    """versions3_loss, 3 steps: step 1 has M0 only (the default's selection, bit for bit), later steps the chain's
    older models too; a run cut after step 2 resumes at step 3 with the saved older models, as if never cut."""
    import dataclasses

    config = dataclasses.replace(TINY, load=lambda: _frame(spans=5), steps=3)
    prepared = ds_lib.prepare(config, seeds=1, work=str(tmp_path / "data"))
    run = harness.RunConfig(
        budgets=(0.25,),
        arms=(harness.DEFAULT_ARM, "versions3_loss"),
        epochs=1,
        batch_size=32,
        seeds_override=1,
        beam_check_steps=(),
        yardstick=False,
    )
    csv = str(tmp_path / "raw.csv")
    harness.run_protocol(prepared, run, str(tmp_path / "run"), csv, log=lambda _: None)
    rows = pd.read_csv(csv).set_index(["arm", "step"])
    first = rows.loc[("versions3_loss", 1)]
    assert first["selected"] == rows.loc[(harness.DEFAULT_ARM, 1)]["selected"]
    assert first["ap"] == rows.loc[(harness.DEFAULT_ARM, 1)]["ap"]  # one model: the plain loss
    assert (rows.loc["versions3_loss"]["selected"] > 0).all()
    # cut the run after step 2 (row and latest state of step 2), then resume
    full = pd.read_csv(csv)
    cut = full[~((full["arm"] == "versions3_loss") & (full["step"] == 3))]
    cut.to_csv(csv, index=False)
    states = tmp_path / "run" / "states"
    state = states / "versions3_loss@0.25@s0.npz"
    state.write_bytes((states / "versions3_loss@0.25@s0.npz.step2").read_bytes())
    harness.run_protocol(prepared, run, str(tmp_path / "run"), csv, log=lambda _: None)
    again = pd.read_csv(csv)
    assert len(again) == len(full)
    pd.testing.assert_frame_equal(
        again.drop(columns=["select_seconds", "train_seconds"]).reset_index(drop=True),
        full.drop(columns=["select_seconds", "train_seconds"]).reset_index(drop=True),
    )


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


def _span_file(tmp_path, n: int, seed: int):
    """A span of `n` rows with 5% positives written as TFRecords: (rng after drawing it, path, ids, labels)."""
    rng = np.random.default_rng(seed)
    part = pd.DataFrame(
        {
            ds_lib.ID: [f"row-{i}" for i in range(n)],
            "x": rng.normal(size=n),
            "k": rng.integers(0, 4, n),
            "colour": rng.choice(["red", "green"], size=n),
        }
    )
    labels = (rng.random(n) < 0.05).astype(np.int64)
    path = str(tmp_path / "span.tfrecord")
    ds_lib.write_records(path, ds_lib.serialize(TINY, part, labels, "#s0"))
    return rng, path, [f"row-{i}#s0".encode() for i in range(n)], labels


@pytest.mark.slow
def test_pure_selection_matches_the_beam_job_for_every_benchmark_strategy(tmp_path):
    """The harness selects through plan.reference_selection: byte-identical ids and float32 weights to the
    Curator Beam job, for every strategy of the benchmark, on 9,000 rows (3 windows) with tied scores."""
    n = 9000
    rng, path, ids, labels = _span_file(tmp_path, n, seed=11)
    preds = np.round(rng.beta(1, 12, size=n), 3).astype(np.float32)  # rounded: ties for top_k
    norms = rng.gamma(2.0, 1.5, size=n).astype(np.float32)
    for name in (*harness.FOCUSED, *harness.STRATIFIED):
        if name == "full":
            continue
        arm = harness.ARM_BY_NAME[name]
        for budget in (0.05, 0.3):
            check = harness.beam_matches_pure(
                arm, budget, "binary", path, ids, preds, norms, labels, str(tmp_path / f"{name}-{budget}")
            )
            assert check["identical"], (name, budget, check)
            assert check["selected"] > 0 and check["rejected"] == 0


@pytest.mark.slow
def test_pure_selection_matches_the_beam_job_for_the_kpass_arm(tmp_path):
    """versions3_loss: the harness's [n, 3] served predictions combined by passes.combine select byte-identically
    to the Curator Beam job reading 3 records per id (one per served version) with duplicate_policy mean_std."""
    n = 9000
    rng, path, ids, labels = _span_file(tmp_path, n, seed=12)
    preds = rng.beta(1, 12, size=(n, 3)).astype(np.float32)
    norms = rng.gamma(2.0, 1.5, size=n).astype(np.float32)
    for name in harness.KPASS:
        arm = harness.ARM_BY_NAME[name]
        assert arm.options(0.1, "binary").duplicate_policy == "mean_std"
        for budget in (0.05, 0.3):
            check = harness.beam_matches_pure(
                arm, budget, "binary", path, ids, preds, norms, labels, str(tmp_path / f"{name}-{budget}")
            )
            assert check["identical"], (name, budget, check)
            assert check["selected"] > 0 and check["rejected"] == 0


def test_trainer_warm_start_carries_adam_state(tmp_path):
    """The Trainer's warm start (model.export -> model.load_weights) restores Adam's iteration count and moment
    slots: the harness carries the optimiser state across steps for that reason (fresh_optimizer=False)."""
    import os

    from tfx_curator.pipelines import model as model_lib

    config = ds_lib.derive_model_config(TINY, _frame().iloc[:240])
    prepared = ds_lib.prepare(TINY, seeds=1, work=str(tmp_path / "data"))
    first = model_lib.build_model(config, seed=0)
    model_lib.train(first, prepared.span_file(0, 0), None, epochs=1, batch_size=32, config=config)
    prefix = str(tmp_path / "w" / "weights")
    first.save_weights(prefix)  # what model.export keeps under assets.extra/keras_weights
    second = model_lib.build_model(config, seed=1)
    os.makedirs(tmp_path / "serving" / "assets.extra", exist_ok=True)
    os.symlink(tmp_path / "w", tmp_path / "serving" / model_lib.KERAS_WEIGHTS_SUBDIR)
    model_lib.load_weights(second, str(tmp_path / "serving"))
    second.optimizer.build(second.trainable_variables)  # what the first training step does
    before = [v.numpy() for v in first.optimizer.variables]
    after = [v.numpy() for v in second.optimizer.variables]
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) > 0
    assert len(after) == len(before) > 1
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_t_intervals_and_the_data_starved_flag():
    from scipy import stats

    from benchmarks.learning import report

    rows = pd.DataFrame(
        [
            {
                "arm": arm,
                "budget": b,
                "seed": s,
                "step": 1,
                "auc": base + 0.01 * s + (0.002 * s if arm != "uniform" else 0),
            }
            for s in range(10)
            for arm, b, base in (
                ("uniform", 0.1, 0.70),
                ("full", 1.0, 0.73),
                (harness.DEFAULT_ARM, 0.1, 0.71),
            )
        ]
    )
    sm = analysis.per_seed(rows, (1,))
    d = analysis.paired(sm, "auc", harness.DEFAULT_ARM, 0.1, "uniform")
    assert d["ci"] == pytest.approx(stats.t.ppf(0.975, 9) * d["se"])
    line, starved = report.sanity(rows, {"logistic_regression": [{"step": 1, "auc": 0.72}]}, (1,))
    assert starved and "data-starved" in line and "0.7200" in line
    close = rows.assign(auc=np.where(rows["arm"] == "full", rows["auc"] - 0.02, rows["auc"]))
    assert not report.sanity(close, {}, (1,))[1]
