"""Test helpers: build small example and forward-record files with known content."""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

# Wall-clock limits in tests only guard against hangs: CI machines are shared and slow (a loaded 2-core machine
# ran the end-to-end pipeline test in over 5 minutes), so a limit is >= 10x the unloaded time and never < 900 s.
HANG_GUARD_S = 1800


def make_example(example_id: bytes | None, label=None, **features) -> bytes:
    ex = tf.train.Example()
    f = ex.features.feature
    if example_id is not None:
        f["example_id"].bytes_list.value.append(example_id)
    if label is not None:
        f["label"].int64_list.value.append(int(label))
    for name, value in features.items():
        if isinstance(value, bytes):
            f[name].bytes_list.value.append(value)
        elif isinstance(value, int):
            f[name].int64_list.value.append(value)
        else:
            f[name].float_list.value.append(float(value))
    return ex.SerializeToString()


def make_record(
    example_id: bytes,
    prediction: float,
    hidden_norm: float | None = None,
    timestamp: int | None = None,
    model_version: bytes | None = None,
) -> bytes:
    ex = tf.train.Example()
    f = ex.features.feature
    f["example_id"].bytes_list.value.append(example_id)
    f["prediction"].float_list.value.append(prediction)
    if hidden_norm is not None and not math.isnan(hidden_norm):
        f["hidden_norm"].float_list.value.append(hidden_norm)
    if timestamp is not None:
        f["timestamp"].int64_list.value.append(timestamp)
    if model_version is not None:
        f["model_version"].bytes_list.value.append(model_version)
    return ex.SerializeToString()


def write_tfrecords(path: str, records, gzip: bool = True) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP" if gzip else None) as w:
        for r in records:
            w.write(r)
    return path


def read_tfrecords(pattern: str) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    out = []
    for f in files:
        out.extend(
            r.numpy()
            for r in tf.data.TFRecordDataset(f, compression_type="GZIP" if f.endswith(".gz") else "")
        )
    return out


def synthetic_split(n: int, seed: int = 0, missing: float = 0.0):
    """(ids, labels, predictions float32-exact, hidden norms; NaN prediction where the record is missing)."""
    rng = np.random.default_rng(seed)
    ids = [f"ex-{seed}-{i:07d}".encode() for i in range(n)]
    preds = rng.beta(1, 3, n).astype(np.float32).astype(np.float64)
    labels = (rng.random(n) < preds).astype(np.float64)
    norms = rng.gamma(2.0, 1.0, n).astype(np.float32).astype(np.float64)
    drop = rng.random(n) < missing
    preds[drop] = np.nan
    return ids, labels, preds, norms


def write_synthetic(root: str, n: int, seed: int = 0, missing: float = 0.0, splits=("train",)):
    """Examples per split + one plain forward-record file; returns {split: (ids, labels, preds, norms)}."""
    data, records = {}, []
    for k, split in enumerate(splits):
        ids, labels, preds, norms = synthetic_split(n, seed + k, missing)
        data[split] = (ids, labels, preds, norms)
        write_tfrecords(
            os.path.join(root, "examples", f"Split-{split}", "data.gz"),
            [make_example(i, y, x=float(j)) for j, (i, y) in enumerate(zip(ids, labels))],
        )
        records += [
            make_record(i, p, h, 1000, b"1") for i, p, h in zip(ids, preds, norms) if not math.isnan(p)
        ]
    write_tfrecords(os.path.join(root, "records", "records.gz"), records)
    return data


def curated_weights(pattern: str, weight_feature: str = "sample_weight") -> dict:
    """{example_id: weight} of curated examples."""
    out = {}
    for raw in read_tfrecords(pattern):
        f = tf.train.Example.FromString(raw).features.feature
        out[f["example_id"].bytes_list.value[0]] = f[weight_feature].float_list.value[0]
    return out


def expected_selection(options, split_data) -> dict:
    """{example_id: float32 weight} the pure library selects for synthetic split data (loss signal)."""
    from tfx_curator.components.curator.policy import plan, signals

    ids, labels, preds, norms = split_data
    has = ~np.isnan(preds)
    scores = np.full(len(ids), np.nan)
    scores[has] = signals.compute_scores("loss", preds[has], labels[has], "binary", hidden_norm=norms[has])
    keep, weight, _ = plan.reference_selection(options, ids, scores, labels)
    return {ids[i]: np.float32(weight[i]) for i in np.flatnonzero(keep)}
