"""Per-batch CPU of what the served-model monitoring adds to the curation job (1,024 examples per batch).

    .venv/bin/python -m benchmarks.served_quality_microbench [--repeats 200]

Times `QualityStats.add` on one batch, pickling an accumulator, and Beam's FastPrimitivesCoder encoding and
decoding a scored batch without (before) and with (after) its predictions and model versions, the extra
fields the sampling stage now receives. CPU time (time.process_time), averaged over the repeats.
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np


def _cpu_ms(fn, repeats: int) -> float:
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    from apache_beam.coders import coders

    from tfx_curator.components.curator.reporting import quality

    n, rng = 1024, np.random.default_rng(0)
    ids = [f"id-{i:08d}".encode() for i in range(n)]
    raws = [rng.bytes(250) for _ in range(n)]
    labels, scores, preds = (rng.random(n) < 0.25).astype(float), rng.random(n), rng.random(n)
    before = (np.zeros(n, np.int64), ids, raws, labels, scores)
    after = (*before, preds, [b"1"] * n)
    coder = coders.FastPrimitivesCoder()
    acc = quality.QualityStats().add(preds, labels, after[-1])
    rows = {
        "batch encode + decode, before (ms)": _cpu_ms(
            lambda: coder.decode(coder.encode(before)), args.repeats
        ),
        "batch encode + decode, after (ms)": _cpu_ms(lambda: coder.decode(coder.encode(after)), args.repeats),
        "QualityStats.add, full span (ms)": _cpu_ms(
            lambda: quality.QualityStats().add(preds, labels, after[-1]), args.repeats
        ),
        "QualityStats.add, weighted (ms)": _cpu_ms(
            lambda: quality.QualityStats(weighted=True).add(preds, labels, after[-1], 1.0 / (scores + 0.1)),
            args.repeats,
        ),
        "pickle + unpickle one accumulator (ms)": _cpu_ms(
            lambda: pickle.loads(pickle.dumps(acc)), args.repeats
        ),
    }
    for name, ms in rows.items():
        print(f"{name}: {ms:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
