"""Decode cost per record of the reading room's parsers (no Beam), optionally against an older git revision.

Times, on in-memory batches of 4096 valid records: ``plain_format.decode_plain_batch``,
``prediction_log.decode_prediction_log_lenient`` (classify and predict logs, one example each) and
``ExampleKeyParser.parse``. With ``--against REV`` the same inputs go through the modules of that revision too
(``git show REV:components/curator/reading/{records,example_keys}.py``, loaded from a temporary folder), in
interleaved rounds, so that a refactoring can be checked for a slowdown on a loaded machine: the report gives
the best wall time of each (the least disturbed round) and the
median of per-round ratios new/old of CPU time.

Usage: python benchmarks/reading_decode_speed.py [--rounds 7] [--against bc0baba]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402

from tfx_curator.components.curator.reading import example_keys, plain_format, prediction_log  # noqa: E402
from tfx_curator.components.curator.reading.records import RecordConfig  # noqa: E402

BATCH = 4096
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _feature(value) -> tf.train.Feature:
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def _example(**features) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={k: _feature(v) for k, v in features.items()}))


def inputs(n: int) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(0)
    ids = [b"id-%08d" % i for i in range(n)]
    p = rng.random(n).astype(np.float32).tolist()
    out = {"plain": [], "classify": [], "predict": [], "examples": []}
    for i in range(n):
        row = dict(example_id=ids[i], x=float(i), carrier=b"UA", hour=i % 24)
        out["examples"].append(_example(**row, label=i % 2).SerializeToString())
        out["plain"].append(
            _example(
                example_id=ids[i], prediction=p[i], model_version=b"1", timestamp=1_700_000_000 + i
            ).SerializeToString()
        )
        log = prediction_log_pb2.PredictionLog()
        log.classify_log.request.input.example_list.examples.add().CopyFrom(_example(**row))
        c = log.classify_log.response.result.classifications.add()
        c.classes.add(label="0", score=1 - p[i])
        c.classes.add(label="1", score=p[i])
        out["classify"].append(log.SerializeToString())
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.inputs["examples"].CopyFrom(
            tf.make_tensor_proto([_example(**row).SerializeToString()], dtype=tf.string)
        )
        log.predict_log.response.outputs["prediction"].CopyFrom(
            tf.make_tensor_proto([[p[i]]], dtype=tf.float32)
        )
        out["predict"].append(log.SerializeToString())
    return out


def decoders(decode_plain, decode_log, parser) -> dict:
    config = RecordConfig()
    return {
        "plain": lambda batch: decode_plain(batch, config),
        "classify": lambda batch: [decode_log(raw, config) for raw in batch],
        "predict": lambda batch: [decode_log(raw, config) for raw in batch],
        "examples": parser.parse,
    }


def old_decoders(rev: str) -> dict:
    folder = tempfile.mkdtemp(prefix="reading_old_")
    modules = {}
    for name in ("records", "example_keys"):
        source = subprocess.run(
            ["git", "-C", ROOT, "show", f"{rev}:components/curator/reading/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = os.path.join(folder, f"old_{name}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = modules[name]
        spec.loader.exec_module(modules[name])
    parser = modules["example_keys"].ExampleKeyParser("example_id", "label", "binary")
    return decoders(
        modules["records"].decode_plain_batch, modules["records"].decode_prediction_log_lenient, parser
    )


def timed(fn, batch) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--against", default=None, help="git revision to compare with")
    args = parser.parse_args()
    data = inputs(BATCH)
    new = decoders(
        plain_format.decode_plain_batch,
        prediction_log.decode_prediction_log_lenient,
        example_keys.ExampleKeyParser("example_id", "label", "binary"),
    )
    old = old_decoders(args.against) if args.against else None
    for fns in (new, old or {}):  # warm-up: TensorFlow builds its kernels on first use
        for name, fn in fns.items():
            fn(data[name])
    print(f"{BATCH} records per batch, {args.rounds} rounds; load {os.getloadavg()}")
    print("best wall time per record (robust to load), and the median per-round ratio of CPU time new/old")
    for name in new:
        rounds = [
            (timed(new[name], data[name]), timed(old[name], data[name]) if old else None)
            for _ in range(args.rounds)
        ]
        best_new = min(n[0] for n, _ in rounds) / BATCH * 1e6
        line = f"{name:9s} {best_new:7.2f} us/record"
        if old:
            best_old = min(o[0] for _, o in rounds) / BATCH * 1e6
            cpu = statistics.median(n[1] / o[1] for n, o in rounds)
            line += (
                f"   old {best_old:7.2f} us/record   new/old wall {best_new / best_old:.3f}, CPU {cpu:.3f}"
            )
        print(line)


if __name__ == "__main__":
    main()
