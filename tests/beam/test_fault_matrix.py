"""Fault matrix (issue 8): every kind of bad input the Curator meets in production, one test per row.

Each test asserts the expected outcome, the report.json count that proves it, the accounting invariant (read =
selected + not selected + rejected, per split) and that every rejected input is recoverable from rejects/
(payload bytes equal to the input bytes, with the expected reason). The rows share a few small `job.run`s
(module fixtures) so that the whole matrix stays fast:

- the "dirty" run: one split (`train`) holding every bad example and bad record next to good ones, duplicates,
  orphans and examples without records, plus the splits `empty`, `unserved` (absent from the records), `flat`
  (all scores equal) and `small` (budget >= n). It runs once per (duplicate policy, missing-record policy) pair;
  the policy rows compare the job's selection with the pure library's on the records the policy should pick;
  the first pair's run also computes the TFDV statistics (the default), which bad input must not stop;
- corrupt files, with and without `skip_corrupt_files`;
- budget 0.
"""

from __future__ import annotations

import collections
import json
import math
import os
import struct
import zlib

import apache_beam as beam
import helpers
import numpy as np
import pytest
import tensorflow as tf

from tfx_curator.components.curator.beam import job, rows, writers
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import passes, plan, sampling, signals
from tfx_curator.components.curator.reading import example_keys, tfrecord_files

EXAMPLES = rows.REJECT_SOURCE_EXAMPLES
RECORDS = rows.REJECT_SOURCE_RECORDS
NO_SPLIT = rows.RECORDS_SPLIT
SEED = 7
BUDGET = 40  # a count per split: a rate for the larger splits, ">= n" for `small`
MAX_WEIGHT = 20.0
DIRTY_SPLITS = ("train", "empty", "unserved", "flat", "small")
POLICY_SPLITS = ("train", "small")  # the other policy pairs need only these


def _pipeline():
    return beam.Pipeline()


# ---------------------------------------------------------------------------------------------------------
# Reading what a run wrote
# ---------------------------------------------------------------------------------------------------------


def _curated(curated_uri: str, split: str) -> dict[bytes, float]:
    """{id: weight} of a curated split; the split's files must exist even when nothing was selected."""
    pattern = os.path.join(curated_uri, f"Split-{split}", f"{writers.CURATED_FILE_PREFIX}-*.gz")
    assert tf.io.gfile.glob(pattern), f"no curated files for split {split}"
    raws = helpers.read_tfrecords(pattern)
    if not raws:
        return {}
    # TensorFlow's parser, as the job's: protobuf refuses some examples the job accepts (see tests/reading/test_fuzz.py)
    spec = {
        "example_id": tf.io.FixedLenFeature([], tf.string),
        "sample_weight": tf.io.FixedLenFeature([], tf.float32),
    }
    parsed = tf.io.parse_example(raws, spec)
    ids, weights = parsed["example_id"].numpy().tolist(), parsed["sample_weight"].numpy().tolist()
    assert len(set(ids)) == len(ids), "an example curated twice"
    return dict(zip(ids, weights))


def _rejects(report_uri: str) -> collections.Counter:
    """Multiset of (split_index, source, reason, payload) read back from rejects/."""
    out = collections.Counter()
    for raw in helpers.read_tfrecords(os.path.join(report_uri, writers.REJECTS_DIR, "*")):
        f = tf.train.Example.FromString(raw).features.feature
        out[
            (
                f["split_index"].int64_list.value[0],
                f["source"].bytes_list.value[0].decode(),
                f["reason"].bytes_list.value[0].decode(),
                f["payload"].bytes_list.value[0],
            )
        ] += 1
    return out


class Run:
    """What one job.run produced: report.json, the curated splits, the rejects."""

    def __init__(
        self,
        root: str,
        example_patterns: dict,
        record_pattern: str,
        options: CurationOptions,
        compute_statistics: bool = False,
    ):
        self.options = options
        self.curated_uri = os.path.join(root, "curated")
        self.report_uri = os.path.join(root, "report")
        self.split_names = list(example_patterns)
        returned = job.run(
            _pipeline,
            example_patterns,
            record_pattern,
            options,
            self.curated_uri,
            self.report_uri,
            compute_statistics=compute_statistics,
        )
        with open(os.path.join(self.report_uri, "report.json")) as f:
            self.report = json.load(f)
        assert returned["splits"].keys() == self.report["splits"].keys()
        assert os.path.getsize(os.path.join(self.report_uri, "report.html")) > 0
        self.curated = {s: _curated(self.curated_uri, s) for s in example_patterns}
        self.rejects = _rejects(self.report_uri)

    def split(self, name: str) -> dict:
        return self.report["splits"][name]

    def check_accounting(self, examples_written: dict[str, int]) -> None:
        """read = selected + not selected + rejected per split, from report.json, and it matches the inputs."""
        assert set(self.report["splits"]) == set(examples_written)
        for split, written in examples_written.items():
            acc = self.split(split)["accounting"]
            assert acc["examples_read"] == written, split
            assert acc["examples_read"] == acc["selected"] + acc["not_selected"] + acc["rejected"], split
            assert acc["holds"], split
            assert acc["selected"] == len(self.curated[split]), split
            assert acc["rejected"] == sum(self.split(split)["rejects_by_reason"].values()), split
            index = self.split_names.index(split)
            in_rejects = sum(
                n for (i, src, _, _), n in self.rejects.items() if i == index and src == EXAMPLES
            )
            assert acc["rejected"] == in_rejects, split

    def check_rejects(self, expected: collections.Counter) -> None:
        """rejects/ holds exactly the rejected inputs, byte for byte, with their reasons; report counts agree."""
        assert self.rejects == expected
        records = self.report["forward_records"]
        by_reason = collections.Counter()
        for (split, source, reason, _), n in expected.items():
            if source == RECORDS:
                assert split == NO_SPLIT
                by_reason[reason] += n
        assert records["rejects_by_reason"] == dict(by_reason)
        assert records["rejected"] == sum(by_reason.values())


# ---------------------------------------------------------------------------------------------------------
# The dirty scenario
# ---------------------------------------------------------------------------------------------------------


def _example(example_id, label, **kw) -> bytes:
    return helpers.make_example(example_id, label, **kw)


def _raw_example(fill) -> bytes:
    ex = tf.train.Example()
    fill(ex.features.feature)
    return ex.SerializeToString()


def _bad_examples() -> list[tuple[bytes, str]]:
    """(raw, reason) for every way an example can be unusable."""

    def float_id(f):
        f["example_id"].float_list.value.append(1.5)
        f["label"].int64_list.value.append(1)

    def two_ids(f):
        f["example_id"].bytes_list.value.extend([b"id-a", b"id-b"])
        f["label"].int64_list.value.append(1)

    def text_label(f):
        f["example_id"].bytes_list.value.append(b"bad-text-label")
        f["label"].bytes_list.value.append(b"yes")

    def nan_label(f):
        f["example_id"].bytes_list.value.append(b"bad-nan-label")
        f["label"].float_list.value.append(math.nan)

    def two_labels(f):
        f["example_id"].bytes_list.value.append(b"bad-two-labels")
        f["label"].int64_list.value.extend([0, 1])

    return [
        (b"\x0a\xff\xff\xff\xff garbage", example_keys.UNPARSEABLE),
        (_example(None, 1, x=1.0), example_keys.MISSING_ID),
        (_raw_example(float_id), example_keys.BAD_ID_TYPE),
        (_raw_example(two_ids), example_keys.BAD_ID_COUNT),
        (_example(b"", 1), example_keys.EMPTY_ID),
        (_example(b"k" * 1025, 1), example_keys.ID_TOO_LONG),
        (_example(b"k" * 4096, 0), example_keys.ID_TOO_LONG),
        (_example(b"bad-no-label", None), example_keys.MISSING_LABEL),
        (_raw_example(text_label), example_keys.BAD_LABEL_TYPE),
        (_raw_example(nan_label), example_keys.NON_FINITE_LABEL),
        (_raw_example(two_labels), example_keys.BAD_LABEL_COUNT),
        (_example(b"bad-label-3", 3), example_keys.LABEL_OUT_OF_DOMAIN),
        (_example(b"bad-label-minus", -1), example_keys.LABEL_OUT_OF_DOMAIN),
    ]


def _bad_records(ids_without_good_record: list[bytes]) -> list[tuple[bytes, str]]:
    """(raw, reason) for every way a plain forward record can be unusable; ids are those of real examples."""
    it = iter(ids_without_good_record)
    no_id = tf.train.Example()
    no_id.features.feature["prediction"].float_list.value.append(0.5)
    return [
        (helpers.make_record(next(it), math.nan), "non_finite_prediction"),
        (helpers.make_record(next(it), math.inf), "non_finite_prediction"),
        (helpers.make_record(next(it), -math.inf), "non_finite_prediction"),
        (helpers.make_record(next(it), 1.5), "prediction_out_of_range"),
        (helpers.make_record(next(it), -0.25), "prediction_out_of_range"),
        (helpers.make_record(next(it), 0.5, hidden_norm=-1.0), "negative_hidden_norm"),
        (helpers.make_record(next(it), 0.5, hidden_norm=math.inf), "non_finite_hidden_norm"),
        (helpers.make_record(b"r" * 1025, 0.5), "id_too_long"),
        (no_id.SerializeToString(), "missing_id"),
        (b"\x0a\x05\x0a\x03abc\xff\xff", "unparseable"),
    ]


class Dirty:
    """Files and expected values of the dirty scenario (see the module docstring)."""

    def __init__(self, root: str):
        rng = np.random.default_rng(2024)
        self.root = root
        self.labels: dict[bytes, float] = {}
        self.records: dict[bytes, list[tuple]] = collections.defaultdict(list)  # (pred, norm, ts, version)
        self.split_of: dict[bytes, str] = {}
        examples = {s: [] for s in DIRTY_SPLITS}
        record_files = {s: [] for s in DIRTY_SPLITS}

        def add_example(split, example_id, label, raw=None):
            examples[split].append(raw or _example(example_id, label, x=float(len(examples[split]))))
            self.labels[example_id] = float(label)
            self.split_of[example_id] = split

        def add_record(split, example_id, pred, norm=math.nan, ts=1000, version=b"1"):
            record_files[split].append(helpers.make_record(example_id, pred, norm, ts, version))
            self.records[example_id].append(
                (
                    float(np.float32(pred)),
                    float(np.float32(norm)),
                    math.nan if ts is None else float(ts),
                    version,
                )
            )

        # train: good examples, most with a record; a 1024-byte id is still fine (the cap is inclusive)
        train_ids = [f"g{i:03d}".encode() for i in range(240)] + [b"k" * 1024]
        for i, example_id in enumerate(train_ids):
            add_example("train", example_id, int(rng.random() < 0.3))
            if i < 200 or example_id == b"k" * 1024:
                pred = float(np.float32(rng.beta(1, 3)))
                add_record("train", example_id, pred, float(np.float32(rng.gamma(2.0))))
        self.without_good_record = [f"g{i:03d}".encode() for i in range(200, 240)]
        # a confidently right prediction for an id the hash keeps even at a tiny p: a huge weight, capped
        u = sampling.hash_uniform([f"tiny-{i}".encode() for i in range(1_000_000)], SEED)
        self.tiny_id = f"tiny-{int(np.argmin(u))}".encode()
        assert u.min() < 1e-5
        add_example("train", self.tiny_id, 1)
        # a feature name that is not UTF-8: TensorFlow's parser takes it, protobuf and tfx_bsl do not
        self.utf8_id = b"utf8-name"
        clean = _example(self.utf8_id, 1, zz=1.0)
        at = clean.index(b"\x0a\x02zz")
        add_example("train", self.utf8_id, 1, clean[:at] + b"\x0a\x02\xff\xfe" + clean[at + 4 :])
        add_record("train", self.utf8_id, 0.01, 1.0)
        add_record("train", self.tiny_id, 0.9999, 1.0)
        # several records for one id: conflicting timestamps and versions (and one without a timestamp)
        for i in range(5):
            example_id = f"g{i:03d}".encode()
            add_record("train", example_id, 0.97, 0.5, 3000, b"3")
            add_record("train", example_id, 0.02, 4.0, 2000, b"2")
        for i in range(5, 10):
            add_record("train", f"g{i:03d}".encode(), 0.6, 1.0, None, b"9")
        self.duplicate_ids = [f"g{i:03d}".encode() for i in range(10)]
        self.duplicate_records = 5 * 2 + 5
        # the same example id twice: the copy with the larger bytes is rejected (deterministic choice)
        first = examples["train"][12]
        copy = _example(b"g012", self.labels[b"g012"], x=99.0, extra=b"copy")
        examples["train"].append(copy)
        self.duplicate_example = (max(first, copy), min(first, copy))  # (rejected, kept)
        # records whose id matches no example: 7 ids, one of them twice
        self.orphans = 0
        for i in range(7):
            for _ in range(2 if i == 0 else 1):
                record_files["train"].append(
                    helpers.make_record(f"orphan-{i}".encode(), 0.5, 1.0, 1000, b"1")
                )
                self.orphans += 1
        # bad examples and bad records (the latter for ids without a good record: they stay without one)
        self.bad_examples = _bad_examples()
        examples["train"][50:50] = [raw for raw, _ in self.bad_examples]
        self.bad_records = _bad_records(self.without_good_record)
        record_files["train"][30:30] = [raw for raw, _ in self.bad_records]

        # unserved: no record at all; flat: every score equal; small: fewer examples than the budget
        for i in range(60):
            add_example("unserved", f"u{i:02d}".encode(), i % 2)
        for i in range(80):
            add_example("flat", f"f{i:02d}".encode(), 1)
            add_record("flat", f"f{i:02d}".encode(), 0.5, ts=1000)
        for i in range(30):
            add_example("small", f"s{i:02d}".encode(), i % 3 == 0)
            if i < 24:
                add_record("small", f"s{i:02d}".encode(), float(np.float32(rng.beta(1, 3))), 1.0)

        self.examples_written = {s: len(v) for s, v in examples.items()}
        self.records_written = {s: len(v) for s, v in record_files.items()}
        for split, raws in examples.items():
            helpers.write_tfrecords(os.path.join(root, "examples", split, "data.gz"), raws)
        for split, raws in record_files.items():
            if raws:
                helpers.write_tfrecords(os.path.join(root, "records", f"{split}.gz"), raws)
        self._runs: dict = {}

    def patterns(self, splits) -> dict[str, str]:
        return {s: os.path.join(self.root, "examples", s, "*") for s in splits}

    def options(self, duplicate_policy: str, missing_record_policy: str, splits) -> CurationOptions:
        return CurationOptions(
            budget=BUDGET,
            mode="window",
            window_size=64,
            mix=0.0,
            max_weight=MAX_WEIGHT,
            seed=SEED,
            duplicate_policy=duplicate_policy,
            missing_record_policy=missing_record_policy,
            splits=splits,
            # the dirty run is bad on purpose (an unserved split, mostly bad records): the rows check each count
            max_missing_record_rate=1.0,
            max_reject_rate=1.0,
        )

    def run(self, duplicate_policy: str, missing_record_policy: str) -> Run:
        key = (duplicate_policy, missing_record_policy)
        if key not in self._runs:
            full = key == ("latest", "uniform")  # every split, and the TFDV statistics (the default)
            splits = DIRTY_SPLITS if full else POLICY_SPLITS
            options = self.options(duplicate_policy, missing_record_policy, splits)
            out = os.path.join(self.root, "runs", "-".join(key))
            self._runs[key] = Run(
                out, self.patterns(splits), os.path.join(self.root, "records", "*"), options, full
            )
        return self._runs[key]

    # ---- expectations ----

    def resolved(self, example_id: bytes, policy: str) -> tuple[float, float] | None:
        """(prediction, hidden_norm) the duplicate policy must pick for an id; None without a good record."""
        recs = self.records.get(example_id)
        if not recs:
            return None
        if len(recs) == 1:
            return recs[0][:2]
        if policy == "latest":  # by timestamp; a record without one is the oldest
            best = max(recs, key=lambda r: -math.inf if math.isnan(r[2]) else r[2])
            return best[:2]
        if policy in ("mean", "mean_std"):  # mean_std: the mean record, scored by expected_selection
            norms = [r[1] for r in recs if not math.isnan(r[1])]
            return float(np.mean([r[0] for r in recs])), float(np.mean(norms)) if norms else math.nan
        scores = [self._score(r[0], r[1], self.labels[example_id]) for r in recs]
        return recs[int(np.argmax(scores))][:2]

    @staticmethod
    def _score(pred, norm, label) -> float:
        return float(
            signals.compute_scores("loss", np.array([pred]), np.array([label]), "binary", np.array([norm]))[0]
        )

    def accepted_ids(self, split: str) -> list[bytes]:
        return [i for i, s in self.split_of.items() if s == split]

    def expected_selection(self, options: CurationOptions, split: str, max_weight=MAX_WEIGHT):
        """{id: weight} the pure library selects on the accepted examples with the policy's records."""
        ids = self.accepted_ids(split)
        labels = np.array([self.labels[i] for i in ids])
        scores = np.full(len(ids), math.nan)
        for k, example_id in enumerate(ids):
            picked = self.resolved(example_id, options.duplicate_policy)
            recs = self.records.get(example_id) or []
            if options.duplicate_policy == "mean_std" and len(recs) > 1:  # the records' combined score
                scores[k] = passes.combine_one([self._score(r[0], r[1], labels[k]) for r in recs])
            elif picked is not None:
                scores[k] = self._score(picked[0], picked[1], labels[k])
        opts = CurationOptions(**{**json.loads(options.to_json()), "max_weight": max_weight})
        # window mode: windows and rate based on the serialized examples read (rejects included), all splits
        read = {i: self.examples_written[s] for i, s in enumerate(options.splits)}
        keep, weight, _ = plan.reference_selection(
            opts, ids, scores, labels, plan.WindowBasis.of(read, options.splits.index(split))
        )
        return {ids[k]: float(weight[k]) for k in np.flatnonzero(keep)}

    def expected_rejects(self) -> collections.Counter:
        train = DIRTY_SPLITS.index("train")
        out = collections.Counter((train, EXAMPLES, reason, raw) for raw, reason in self.bad_examples)
        out[(train, EXAMPLES, example_keys.DUPLICATE_EXAMPLE_ID, self.duplicate_example[0])] += 1
        out.update((NO_SPLIT, RECORDS, reason, raw) for raw, reason in self.bad_records)
        return out

    def check(self, run: Run) -> None:
        """The invariants every test of a dirty run asserts: accounting and rejects."""
        run.check_accounting({s: self.examples_written[s] for s in run.report["splits"]})
        run.check_rejects(self.expected_rejects())


POLICIES = [("latest", "uniform"), ("mean", "drop"), ("max", "keep"), ("mean_std", "uniform")]


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return Dirty(str(tmp_path_factory.mktemp("dirty")))


@pytest.fixture(scope="module", params=POLICIES, ids=lambda p: f"{p[0]}-{p[1]}")
def policy_run(request, dirty):
    return dirty.run(*request.param)


@pytest.fixture(scope="module")
def dirty_run(dirty):
    return dirty.run("latest", "uniform")


def _assert_selection(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for example_id, weight in expected.items():
        assert got[example_id] == pytest.approx(weight, rel=1e-6), example_id


# ---------------------------------------------------------------------------------------------------------
# Rows: bad examples
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        # rows "example without id, id of wrong type, id over 1 KiB" (and their kin)
        example_keys.MISSING_ID,
        example_keys.BAD_ID_TYPE,
        example_keys.ID_TOO_LONG,
        example_keys.BAD_ID_COUNT,
        example_keys.EMPTY_ID,
        example_keys.UNPARSEABLE,
        # rows "missing / non-numeric / out-of-domain label" (and their kin)
        example_keys.MISSING_LABEL,
        example_keys.BAD_LABEL_TYPE,
        example_keys.LABEL_OUT_OF_DOMAIN,
        example_keys.NON_FINITE_LABEL,
        example_keys.BAD_LABEL_COUNT,
    ],
)
def test_bad_example_is_rejected_with_its_reason(dirty, dirty_run, reason):
    dirty.check(dirty_run)
    train = DIRTY_SPLITS.index("train")
    bad = [raw for raw, r in dirty.bad_examples if r == reason]
    assert dirty_run.split("train")["rejects_by_reason"][reason] == len(bad)
    assert all(dirty_run.rejects[(train, EXAMPLES, reason, raw)] == 1 for raw in bad)
    for raw in bad if reason != example_keys.UNPARSEABLE else []:
        ids = tf.train.Example.FromString(raw).features.feature["example_id"].bytes_list.value
        assert not set(ids) & set(dirty_run.curated["train"])


def test_id_of_exactly_one_kib_is_accepted(dirty, dirty_run):
    dirty.check(dirty_run)
    long_id = b"k" * 1024
    assert long_id in dirty.accepted_ids("train") and dirty.records[long_id]
    assert dirty_run.split("train")["examples_with_record"] == sum(
        1 for i in dirty.accepted_ids("train") if dirty.records.get(i)
    )


def test_duplicate_example_id_keeps_one_copy_and_rejects_the_other(dirty, dirty_run):
    dirty.check(dirty_run)
    rejected, kept = dirty.duplicate_example
    assert dirty_run.split("train")["rejects_by_reason"][example_keys.DUPLICATE_EXAMPLE_ID] == 1
    assert dirty_run.rejects[(0, EXAMPLES, example_keys.DUPLICATE_EXAMPLE_ID, rejected)] == 1
    assert kept != rejected


def test_bad_examples_do_not_stop_the_statistics(dirty, dirty_run):
    """The TFDV statistics (on by default) describe the accepted examples; rejects cannot stop the job."""
    import tensorflow_data_validation as tfdv

    from tfx_curator.components.curator.reporting import report

    dirty.check(dirty_run)
    train = dirty_run.split("train")
    assert train["unbiasedness"]["features"]
    raw = tfdv.load_stats_binary(report.stats_path(dirty_run.report_uri, "train", report.RAW))
    accepted_by_parser = dirty.examples_written["train"] - len(dirty.bad_examples)
    # the example with a non-UTF-8 feature name is curated like any other but tfx_bsl cannot describe it
    assert raw.datasets[0].num_examples == accepted_by_parser - 1
    # a count budget: its rate is unknown while the examples go by, so every accepted example is described
    assert train["unbiasedness"]["raw_statistics"]["source"] == report.SOURCE_ALL
    assert train["unbiasedness"]["raw_statistics"]["examples"] == accepted_by_parser - 1
    assert dirty.utf8_id in dirty.accepted_ids(
        "train"
    )  # (selected or not like the others: see the policy tests)
    curated = tfdv.load_stats_binary(report.stats_path(dirty_run.report_uri, "train", report.CURATED))
    utf8_curated = dirty.utf8_id in dirty_run.curated["train"]
    assert curated.datasets[0].num_examples == len(dirty_run.curated["train"]) - utf8_curated


# ---------------------------------------------------------------------------------------------------------
# Rows: bad forward records
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "non_finite_prediction",
        "prediction_out_of_range",
        "negative_hidden_norm",
        "non_finite_hidden_norm",
        "id_too_long",
        "missing_id",
        "unparseable",
    ],
)
def test_bad_forward_record_is_rejected_with_its_reason(dirty, dirty_run, reason):
    dirty.check(dirty_run)
    bad = [raw for raw, r in dirty.bad_records if r == reason]
    records = dirty_run.report["forward_records"]
    assert records["rejects_by_reason"][reason] == len(bad)
    assert all(dirty_run.rejects[(NO_SPLIT, RECORDS, reason, raw)] == 1 for raw in bad)
    # nothing lost: every record written was decoded or rejected
    assert records["decoded"] + records["rejected"] == sum(dirty.records_written.values())


def test_example_whose_records_were_all_rejected_has_no_record(dirty, dirty_run):
    dirty.check(dirty_run)
    train = dirty_run.split("train")
    expected = [i for i in dirty.accepted_ids("train") if not dirty.records.get(i)]
    assert set(dirty.without_good_record) <= set(expected)
    assert train["examples_without_record"] == len(expected)


# ---------------------------------------------------------------------------------------------------------
# Rows: duplicates, orphans, missing records (every policy)
# ---------------------------------------------------------------------------------------------------------


def test_several_records_for_one_id_apply_the_duplicate_policy_and_are_counted(dirty, policy_run):
    dirty.check(policy_run)
    train = policy_run.split("train")
    assert train["duplicate_records"] == dirty.duplicate_records
    assert train["ids_with_duplicate_records"] == len(dirty.duplicate_ids)
    assert train["duplicate_policy"] == policy_run.options.duplicate_policy
    # the job selected exactly what the pure library selects with the records the policy picks
    _assert_selection(policy_run.curated["train"], dirty.expected_selection(policy_run.options, "train"))
    # ... and the policies really pick different records for these ids
    picks = {p: [dirty.resolved(i, p) for i in dirty.duplicate_ids] for p in ("latest", "mean", "max")}
    assert picks["latest"] != picks["mean"] != picks["max"] != picks["latest"]


def test_orphan_records_are_counted(dirty, policy_run):
    dirty.check(policy_run)
    splits = set(policy_run.report["splits"])
    other_splits = sum(n for s, n in dirty.records_written.items() if s != "train" and s not in splits)
    assert policy_run.report["forward_records"]["orphans"] == dirty.orphans + other_splits


def test_examples_without_record_follow_the_missing_record_policy(dirty, policy_run):
    dirty.check(policy_run)
    policy = policy_run.options.missing_record_policy
    train = policy_run.split("train")
    missing = [i for i in dirty.accepted_ids("train") if not dirty.records.get(i)]
    assert train["examples_without_record"] == len(missing)
    assert train["missing_record_policy"] == policy
    assert any(
        f"{len(missing)} examples without a forward record: policy {policy!r}" in n for n in train["notes"]
    )
    kept = [i for i in missing if i in policy_run.curated["train"]]
    rate = train["budget"]["rate"]
    if policy == "drop":
        assert kept == []
    elif policy == "keep":
        assert kept == missing
        assert all(policy_run.curated["train"][i] == 1.0 for i in kept)
    else:
        assert 0 < len(kept) < len(missing)
        assert all(policy_run.curated["train"][i] == pytest.approx(1.0 / rate) for i in kept)


# ---------------------------------------------------------------------------------------------------------
# Rows: degenerate splits and budgets
# ---------------------------------------------------------------------------------------------------------


def test_empty_split_is_reported_not_fatal(dirty, dirty_run):
    dirty.check(dirty_run)
    empty = dirty_run.split("empty")
    assert empty["accounting"] == {
        "examples_read": 0,
        "selected": 0,
        "not_selected": 0,
        "rejected": 0,
        "holds": True,
    }
    assert "empty split: nothing to select" in empty["notes"]
    assert dirty_run.curated["empty"] == {}


def test_split_absent_from_records_is_decided_by_the_missing_record_policy(dirty, dirty_run):
    dirty.check(dirty_run)
    unserved = dirty_run.split("unserved")
    n = dirty.examples_written["unserved"]
    assert unserved["examples_with_record"] == 0
    assert unserved["examples_without_record"] == n
    assert any("no example of this split has a forward record" in note for note in unserved["notes"])
    rate = BUDGET / n  # policy "uniform": p = the budget rate
    assert unserved["budget"]["rate"] == pytest.approx(rate)
    assert all(w == pytest.approx(1.0 / rate) for w in dirty_run.curated["unserved"].values())
    _assert_selection(dirty_run.curated["unserved"], dirty.expected_selection(dirty_run.options, "unserved"))


def test_all_scores_equal_is_uniform_sampling_and_the_report_says_so(dirty, dirty_run):
    dirty.check(dirty_run)
    flat = dirty_run.split("flat")
    rate = BUDGET / dirty.examples_written["flat"]
    assert flat["examples_with_record"] == dirty.examples_written["flat"]
    assert all(w == pytest.approx(1.0 / rate) for w in dirty_run.curated["flat"].values())
    assert flat["weights"]["histogram"]["counts"] == _histogram([1.0 / rate] * flat["accounting"]["selected"])
    assert any("all scores are equal" in note for note in flat["notes"])


def test_budget_at_least_n_keeps_every_example_the_policies_allow(dirty, policy_run):
    dirty.check(policy_run)
    small = policy_run.split("small")
    n = dirty.examples_written["small"]
    assert BUDGET >= n and small["budget"]["asked"] == n
    served = [i for i in dirty.accepted_ids("small") if dirty.records.get(i)]
    got = policy_run.curated["small"]
    assert set(got.values()) == {1.0}
    if policy_run.options.missing_record_policy == "drop":
        assert set(got) == set(served)
        assert any(
            f"budget >= examples: every example with a forward record kept with weight 1; {n - len(served)}"
            in note
            for note in small["notes"]
        )
    else:
        assert len(got) == n
        assert "budget >= examples: everything kept with weight 1" in small["notes"]


def test_huge_weights_respect_max_weight_and_the_report_shows_their_distribution(dirty, dirty_run):
    dirty.check(dirty_run)
    train = dirty_run.split("train")
    got = dirty_run.curated["train"]
    uncapped = dirty.expected_selection(dirty_run.options, "train", max_weight=None)
    assert set(got) == set(uncapped)  # the cap changes weights, never which examples are kept
    assert uncapped[dirty.tiny_id] > 1000 * MAX_WEIGHT  # the tiny p: a huge weight without the cap
    assert got[dirty.tiny_id] == MAX_WEIGHT
    assert max(got.values()) == MAX_WEIGHT
    assert sum(w > MAX_WEIGHT for w in uncapped.values()) > 1
    weights = train["weights"]
    assert weights["max_weight_cap"] == MAX_WEIGHT
    assert weights["max"] == pytest.approx(MAX_WEIGHT)
    assert weights["min_p_kept"] < 1.0 / (1000 * MAX_WEIGHT)  # report: the tiny p that was capped
    assert weights["histogram"]["counts"] == _histogram(list(got.values()))
    assert weights["sum"] == pytest.approx(sum(got.values()), rel=1e-6)


def _histogram(weights: list[float]) -> list[int]:
    from tfx_curator.components.curator.reporting.report_stats import WEIGHT_BINS, _hist

    return _hist(np.asarray(weights, dtype=np.float64), WEIGHT_BINS).tolist()


def test_budget_zero_selects_only_what_the_keep_policy_forces(tmp_path):
    root = str(tmp_path)
    ids = [f"z{i:03d}".encode() for i in range(120)]
    helpers.write_tfrecords(os.path.join(root, "ex", "d.gz"), [_example(i, k % 2) for k, i in enumerate(ids)])
    served = ids[:100]
    helpers.write_tfrecords(
        os.path.join(root, "rec", "r.gz"), [helpers.make_record(i, 0.3, 1.0) for i in served]
    )
    for policy in ("uniform", "keep"):
        options = CurationOptions(budget=0.0, seed=SEED, missing_record_policy=policy)
        run = Run(
            os.path.join(root, policy),
            {"train": os.path.join(root, "ex", "*")},
            os.path.join(root, "rec", "*"),
            options,
        )
        run.check_accounting({"train": len(ids)})
        run.check_rejects(collections.Counter())
        train = run.split("train")
        assert train["budget"]["asked"] == 0
        if policy == "uniform":
            assert run.curated["train"] == {}
            assert "budget 0: nothing selected" in train["notes"]
        else:  # "keep": examples without a record are always kept, whatever the budget
            assert run.curated["train"] == {i: 1.0 for i in ids[100:]}
            assert any(note.startswith("budget 0: 20 selected") for note in train["notes"])


# ---------------------------------------------------------------------------------------------------------
# Rows: corrupt files
# ---------------------------------------------------------------------------------------------------------


def _intact_records(data: bytes) -> int:
    """Complete TFRecord frames at the start of (decompressed) data, counted without TensorFlow."""
    n, offset = 0, 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        end = offset + 12 + length + 4
        if end > len(data):
            break
        n, offset = n + 1, end
    return n


def _framed(raws: list[bytes]) -> tuple[bytes, list[int]]:
    """The uncompressed TFRecord bytes of `raws` (written by TensorFlow) and the offset where each record ends."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = helpers.write_tfrecords(os.path.join(tmp, "plain"), raws, gzip=False)
        data = open(path, "rb").read()
    return data, list(np.cumsum([16 + len(r) for r in raws]))


def _truncated_gzip(path: str, raws: list[bytes]) -> int:
    """A gzip TFRecord file cut inside a record (at ~60% of its bytes); returns how many records precede the cut."""
    helpers.write_tfrecords(path, raws)
    data = open(path, "rb").read()
    ends = set(_framed(raws)[1])
    cut = len(data) * 6 // 10
    while len(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:cut])) in ends:
        cut += 1  # not on a record boundary: that is the other kind
    with open(path, "wb") as f:
        f.write(data[:cut])
    return _intact_records(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:cut]))


def _truncated_gzip_at_record_boundary(path: str, raws: list[bytes]) -> int:
    """A gzip TFRecord file whose compressed stream stops exactly after a whole record (no gzip trailer).

    tf.data reads such a file to its "end" without an error: only the missing trailer tells.
    """
    data, ends = _framed(raws)
    at = len(raws) // 2
    deflate = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    with open(path, "wb") as f:
        f.write(deflate.compress(data[: ends[at - 1]]) + deflate.flush(zlib.Z_SYNC_FLUSH))
    return at


def _bad_crc(path: str, raws: list[bytes]) -> int:
    """An uncompressed TFRecord file with a flipped payload byte in record n/3; returns n/3."""
    data, ends = _framed(raws)
    at = len(raws) // 3
    data = bytearray(data)
    data[ends[at - 1] + 12 + len(raws[at]) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    return at


CORRUPTIONS = {
    "truncated_gzip": (".gz", _truncated_gzip),
    "truncated_gzip_at_record_boundary": (".gz", _truncated_gzip_at_record_boundary),
    "bad_crc": (".tfrecord", _bad_crc),
}


def _corrupt_inputs(root: str, kinds_examples: list[str], kinds_records: list[str]) -> dict[str, int]:
    """Good example/record files plus corrupt ones; returns {corrupt path: intact records before the damage}."""
    intact = {}
    good = [f"c{i:03d}".encode() for i in range(100)]
    helpers.write_tfrecords(os.path.join(root, "ex", "good.gz"), [_example(i, i[-1] % 2) for i in good])
    helpers.write_tfrecords(
        os.path.join(root, "rec", "good.gz"), [helpers.make_record(i, 0.4, 1.0) for i in good]
    )
    for k, kind in enumerate(kinds_examples):
        suffix, corrupt = CORRUPTIONS[kind]
        path = os.path.join(root, "ex", f"bad-{kind}{suffix}")
        intact[path] = corrupt(path, [_example(f"e{k}-{i:03d}".encode(), i % 2) for i in range(150)])
    for k, kind in enumerate(kinds_records):
        suffix, corrupt = CORRUPTIONS[kind]
        path = os.path.join(root, "rec", f"bad-{kind}{suffix}")
        intact[path] = corrupt(
            path, [helpers.make_record(f"c{i % 100:03d}".encode(), 0.5, 1.0, 2000 + k) for i in range(150)]
        )
    return intact


@pytest.mark.parametrize("where", ["examples", "records"])
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_file_fails_with_an_error_naming_the_file(tmp_path, where, kind):
    root = str(tmp_path)
    intact = _corrupt_inputs(
        root, [kind] if where == "examples" else [], [kind] if where == "records" else []
    )
    (path,) = intact
    with pytest.raises(tfrecord_files.CorruptFileError, match="corrupt or truncated TFRecord file") as e:
        Run(root, {"train": os.path.join(root, "ex", "*")}, os.path.join(root, "rec", "*"), CurationOptions())
    assert path in str(e.value)
    assert "skip_corrupt_files" in str(e.value)  # the error says how to go on
    assert not os.path.exists(os.path.join(root, "report", "report.json"))  # no report claims success


def test_skip_corrupt_files_counts_and_lists_them_in_the_report(tmp_path):
    root = str(tmp_path)
    intact = _corrupt_inputs(root, list(CORRUPTIONS), list(CORRUPTIONS))
    garbage = os.path.join(root, "ex", "garbage.gz")
    with open(garbage, "wb") as f:
        f.write(np.random.default_rng(0).bytes(5000))
    intact[garbage] = 0
    # the examples of the corrupt files have no forward record: accepted here
    options = CurationOptions(skip_corrupt_files=True, seed=SEED, max_missing_record_rate=1.0)
    run = Run(root, {"train": os.path.join(root, "ex", "*")}, os.path.join(root, "rec", "*"), options)
    examples_read = 100 + sum(n for p, n in intact.items() if "/ex/" in p)
    run.check_accounting({"train": examples_read})
    run.check_rejects(collections.Counter())
    listed = {c["path"]: c for c in run.split("train")["corrupt_files"]}
    listed_records = {c["path"]: c for c in run.report["forward_records"]["corrupt_files"]}
    assert set(listed) | set(listed_records) == set(intact)
    for path, n in intact.items():
        entry = listed.get(path) or listed_records[path]
        assert entry["records_read"] == n, path  # the intact records before the damage are kept
        assert entry["error"]
    assert all(0 < n < 150 for path, n in intact.items() if path != garbage)
    records = run.report["forward_records"]
    assert records["decoded"] == 100 + sum(n for p, n in intact.items() if "/rec/" in p)
    assert records["rejected"] == 0


# ---------------------------------------------------------------------------------------------------------
# Rows: messages that say what happened (issue 12, bug 8)
# ---------------------------------------------------------------------------------------------------------


def _read_error(path: str) -> str:
    with pytest.raises(tfrecord_files.CorruptFileError) as e:
        list(tfrecord_files._ReadFileDoFn(1024, False).process(path))
    return str(e.value)


def test_corrupt_file_error_counts_the_intact_records_and_hides_tensorflow_internals(tmp_path):
    raws = [_example(f"k{i:03d}".encode(), i % 2) for i in range(300)]
    data, ends = _framed(raws)
    data = bytearray(data)
    data[ends[127] + 12 + len(raws[128]) // 2] ^= 0xFF  # record 128 damaged: 128 intact before it
    path = str(tmp_path / "bad.tfrecord")
    open(path, "wb").write(bytes(data))
    message = _read_error(path)
    assert f"corrupt or truncated TFRecord file {path} (after 128 intact records)" in message, message
    assert "{{function_node" not in message and "__wrapped__" not in message, message
    assert "skip_corrupt_files" in message


@pytest.mark.parametrize("gzip, name", [(True, "data.tfrecord"), (False, "data.gz")])
def test_wrong_compression_says_so_and_does_not_suggest_skipping(tmp_path, gzip, name):
    path = helpers.write_tfrecords(str(tmp_path / name), [_example(b"a", 1)] * 10, gzip=gzip)
    message = _read_error(path)
    expected = "is gzip-compressed but not named *.gz" if gzip else "is named *.gz but is not gzip-compressed"
    assert expected in message and "rename it" in message, message
    assert "skip_corrupt_files" not in message  # skipping would drop the whole (intact) file


def test_every_example_rejected_is_noted_as_such_not_as_budget_zero(tmp_path):
    root = str(tmp_path)
    ids = [f"n{i:03d}".encode() for i in range(50)]
    helpers.write_tfrecords(
        os.path.join(root, "ex", "d.gz"), [helpers.make_example(i) for i in ids]
    )  # no label
    helpers.write_tfrecords(os.path.join(root, "rec", "r.gz"), [helpers.make_record(i, 0.3) for i in ids])
    options = CurationOptions(budget=0.1, max_reject_rate=1.0, max_missing_record_rate=1.0)
    run = Run(root, {"train": os.path.join(root, "ex", "*")}, os.path.join(root, "rec", "*"), options)
    notes = run.split("train")["notes"]
    assert "all 50 examples rejected (see rejects_by_reason): nothing to select" in notes, notes
    assert not any("budget 0" in n for n in notes), notes
    # and without accepting it, the run fails naming the reason
    with pytest.raises(ValueError, match="50 of 50 examples rejected \\(missing_label 50\\)"):
        Run(
            str(tmp_path / "again"),
            {"train": os.path.join(root, "ex", "*")},
            os.path.join(root, "rec", "*"),
            CurationOptions(),
        )


def test_conflicting_duplicate_ids_are_rejected_and_counted_in_the_report(tmp_path):
    """Issue 12, bug 9, end to end: every copy rejected with its reason, counted, the accounting holds."""
    root = str(tmp_path)
    ids = [f"d{i:03d}".encode() for i in range(60)]
    examples = [_example(i, k % 2) for k, i in enumerate(ids)]
    examples += [_example(ids[0], 1, extra=b"copy"), _example(ids[1], 1, extra=b"copy")]  # d000: 0 vs 1
    helpers.write_tfrecords(os.path.join(root, "ex", "d.gz"), examples)
    helpers.write_tfrecords(os.path.join(root, "rec", "r.gz"), [helpers.make_record(i, 0.3) for i in ids])
    run = Run(
        root, {"train": os.path.join(root, "ex", "*")}, os.path.join(root, "rec", "*"), CurationOptions()
    )
    split = run.split("train")
    assert split["rejects_by_reason"] == {
        example_keys.CONFLICTING_DUPLICATE: 2,
        example_keys.DUPLICATE_EXAMPLE_ID: 1,
    }
    assert split["accounting"]["examples_read"] == 62 and split["accounting"]["holds"]
    conflicting = {k[3] for k in run.rejects if k[2] == example_keys.CONFLICTING_DUPLICATE}
    assert conflicting == {examples[0], examples[60]}
    assert ids[0] not in run.curated["train"]
    assert run.report["forward_records"]["orphans"] == 1
