"""Byte-identical re-runs (issue 8): the same inputs and seed select the same examples with the same weights.

The curated split is compared as the sorted list of its serialized examples (original bytes + the weight
feature), so ids, weights and untouched payloads are all covered. Besides two runs in one process, the runs with
several DirectRunner workers in separate processes (different bundles, different orders) must give the same
bytes. The pure tests pin down the order-independence the Beam job relies on: a runner may hand a window's
scores, or a duplicated id's records, over in any order. (DirectRunner vs PortableRunner: tests/beam/test_portability.py.)
"""

from __future__ import annotations

import math
import os

import apache_beam as beam
import helpers
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tfx_curator.components.curator.beam import job, join
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, summary

N = 2000
MULTI_PROCESS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _options(mode: str) -> CurationOptions:
    return CurationOptions(
        budget=0.2,
        mode=mode,
        window_size=128,  # ~14 windows: each window's scores come from several bundles
        mix=0.3,
        p_min=0.001,
        seed=11,
        duplicate_policy="mean",  # the policy that combines several records
        missing_record_policy="uniform",
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """2000 examples in 4 files, their records in 3 files: 10% without a record, 10% with 2-3 records."""
    root = str(tmp_path_factory.mktemp("determinism"))
    rng = np.random.default_rng(5)
    ids = [f"d-{i:05d}".encode() for i in range(N)]
    labels = (rng.random(N) < 0.25).astype(int)
    examples = [helpers.make_example(i, y, x=float(rng.normal())) for i, y in zip(ids, labels)]
    records = []
    for i in ids:
        draw = rng.random()
        copies = 0 if draw < 0.1 else 3 if draw < 0.15 else 2 if draw < 0.2 else 1
        for c in range(copies):
            records.append(
                helpers.make_record(i, float(rng.beta(1, 3)), float(rng.gamma(2.0)), 1000 + c, b"%d" % c)
            )
    order = rng.permutation(len(records))
    for k, part in enumerate(np.array_split(np.arange(N), 4)):
        helpers.write_tfrecords(os.path.join(root, "ex", f"part-{k}.gz"), [examples[j] for j in part])
    for k, part in enumerate(np.array_split(order, 3)):
        helpers.write_tfrecords(os.path.join(root, "rec", f"part-{k}.gz"), [records[j] for j in part])
    return root


def _run(root: str, out: str, options: CurationOptions, args=()) -> tuple[list[bytes], dict]:
    report = job.run(
        lambda: beam.Pipeline(options=PipelineOptions(list(args))),
        {"train": os.path.join(root, "ex", "*")},
        os.path.join(root, "rec", "*"),
        options,
        os.path.join(out, "curated"),
        os.path.join(out, "report"),
        compute_statistics=False,
    )
    curated = sorted(helpers.read_tfrecords(os.path.join(out, "curated", "Split-train", "*")))
    return curated, report["splits"]["train"]


def _selection_figures(split_report: dict) -> dict:
    """The report figures that follow from the selection alone (not from float sums in bundle order)."""
    return {
        "accounting": split_report["accounting"],
        "lambda": split_report["lambda"],
        # "expected" (sum of p) is a float sum in bundle order: compared apart, to a relative 1e-9
        "budget": {k: v for k, v in split_report["budget"].items() if k != "expected"},
        "duplicates": split_report["duplicate_records"],
        "without_record": split_report["examples_without_record"],
        "weights_histogram": split_report["weights"]["histogram"],
    }


@pytest.fixture(scope="module")
def window_baseline(inputs, tmp_path_factory):
    return _run(inputs, str(tmp_path_factory.mktemp("window-1")), _options("window"))


def test_two_runs_are_byte_identical(inputs, window_baseline, tmp_path):
    curated, figures = window_baseline
    again, figures_again = _run(inputs, str(tmp_path), _options("window"))
    assert len(curated) == figures["accounting"]["selected"] > 0
    assert again == curated
    assert _selection_figures(figures_again) == _selection_figures(figures)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["window", "global"])
def test_multi_process_workers_give_byte_identical_output(inputs, window_baseline, tmp_path, mode):
    if mode == "window":
        curated, figures = window_baseline
    else:
        curated, figures = _run(inputs, str(tmp_path / "one"), _options(mode))
    other, other_figures = _run(inputs, str(tmp_path / "two"), _options(mode), MULTI_PROCESS)
    assert other == curated
    assert _selection_figures(other_figures)["accounting"] == _selection_figures(figures)["accounting"]
    if mode == "window":
        assert _selection_figures(other_figures) == _selection_figures(figures)
    assert other_figures["budget"]["expected"] == pytest.approx(figures["budget"]["expected"], rel=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Order-independence of the pieces a runner feeds in arbitrary order
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_window_threshold_does_not_depend_on_the_order_of_its_scores(seed):
    rng = np.random.default_rng(seed)
    scores = rng.gamma(0.5, 1.0, 3000)
    scores[rng.random(scores.size) < 0.05] = 0.0
    lam = plan.window_lambda(scores, 0.1, 0.001)
    for _ in range(5):
        assert plan.window_lambda(rng.permutation(scores), 0.1, 0.001) == lam  # bit for bit


@pytest.mark.parametrize("seed", range(10))
def test_mean_of_duplicate_records_does_not_depend_on_their_order(seed):
    rng = np.random.default_rng(seed)
    records = [
        (float(np.float32(rng.random())), float(np.float32(rng.gamma(2.0))), 1000.0 + k, b"1")
        for k in range(7)
    ]
    records[3] = (records[3][0], math.nan, math.nan, b"2")
    options = CurationOptions(duplicate_policy="mean")
    first = join.resolve_duplicates(records, "mean", 1.0, options)
    for _ in range(5):
        order = rng.permutation(len(records))
        again = join.resolve_duplicates([records[i] for i in order], "mean", 1.0, options)
        assert again == first  # bit for bit (NaN-free fields)


def test_global_threshold_does_not_depend_on_how_scores_are_partitioned():
    rng = np.random.default_rng(0)
    for _ in range(10):
        scores = rng.uniform(0.5, 1.0, 50_000)  # one octave: ~50 scores per bin, so bin sums round
        whole = summary.ScoreSummary().add(scores).solve_lambda(5000.0)
        parts = np.array_split(rng.permutation(scores), 7)
        merged = summary.ScoreSummary.merge([summary.ScoreSummary().add(p) for p in parts])
        assert merged.solve_lambda(5000.0) == whole  # bit for bit
