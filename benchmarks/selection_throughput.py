"""Micro-benchmark of the selection library on one core (not a test).

Measures scores/s for water-filling, hashing + Poisson sampling, the mini-batch (window) mode and the
global-mode summary (add + solve), at 10^6 and 10^7 scores; prints a markdown table and writes it to
benchmarks/results/selection_throughput.md.

    .venv/bin/python benchmarks/selection_throughput.py [--sizes 1000000 10000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan, sampling, summary, waterfill

RESULTS = Path(__file__).resolve().parent / "results" / "selection_throughput.md"
TARGET_WATER_FILL = 5e6  # scores/s, from issue 3


def machine() -> dict:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    return {"nproc": os.cpu_count(), "ram_gib": mem_kb / 2**20, "cpu": cpu}


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cases(n: int, window: int, chunk: int) -> list[tuple[str, object]]:
    """The operations to time at size n, as (name, zero-argument callable)."""
    rng = np.random.default_rng(0)
    scores = rng.lognormal(0.0, 2.0, n)
    scores[rng.random(n) < 0.05] = 0.0
    budget = 0.1 * n
    ids = [b"example-%012d" % i for i in range(n)]
    p = waterfill.water_fill(scores, budget).p

    def summary_add_solve():
        merged = summary.ScoreSummary()
        for start in range(0, n, chunk):
            merged.add(scores[start : start + chunk])
        return merged.solve_lambda(budget)

    def window_thresholds():  # the job's window mode: hashed windows, one water-filling per window
        options = CurationOptions(budget=0.1, window_size=window)
        w = plan.windows_of(ids, options, n)
        order = np.argsort(w, kind="stable")
        bounds = np.searchsorted(w[order], np.arange(w.max() + 2))
        thresholds = {}
        for k in range(bounds.size - 1):
            at = order[bounds[k] : bounds[k + 1]]
            thresholds.update(plan.solve_window(options, 0.1, k, scores[at], None))
        return thresholds

    return [
        ("water_fill (sort + cumsum)", lambda: waterfill.water_fill(scores, budget)),
        ("hash_uniform", lambda: sampling.hash_uniform(ids, 7)),
        ("hash_uniform + poisson_sample", lambda: sampling.poisson_sample(ids, p, 7)),
        (f"window thresholds, hashed windows (W={window})", window_thresholds),
        (f"ScoreSummary add ({chunk} per add) + solve_lambda", summary_add_solve),
    ]


def run(sizes: list[int], repeats: int, window: int, chunk: int) -> list[tuple[str, int, float]]:
    rows = []
    for n in sizes:
        for name, fn in cases(n, window, chunk):
            seconds = best_time(fn, repeats)
            rows.append((name, n, seconds))
            print(f"{name:50s} n={n:>10,d} {seconds:8.3f} s {n / seconds / 1e6:8.2f} M scores/s", flush=True)
    return rows


def table(rows, info: dict, repeats: int) -> str:
    lines = [
        "# Selection library throughput (one core)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={info['nproc']}, RAM {info['ram_gib']:.1f} GiB, CPU {info['cpu']}",
        f"- Python {platform.python_version()}, numpy {np.__version__}; process pinned to one core",
        f"- load average at the end (1/5/15 min): {info['load']} (a shared machine: other jobs ran too)",
        f"- best of {repeats} runs; scores: lognormal(0, 2) with 5% zeros, budget 10%; ids b'example-%012d'",
        "- command: `.venv/bin/python benchmarks/selection_throughput.py`",
        "",
        "| operation | n | best time (s) | scores/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, n, seconds in rows:
        lines.append(f"| {name} | {n:,d} | {seconds:.3f} | {n / seconds / 1e6:.2f} M |")
    water = [n / s for name, n, s in rows if name.startswith("water_fill")]
    verdict = "met" if water and min(water) >= TARGET_WATER_FILL else "NOT met"
    lines += ["", f"Target >= {TARGET_WATER_FILL / 1e6:g} M scores/s for water_fill: {verdict}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=100_000, help="scores per ScoreSummary.add")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    info = machine()
    rows = run(args.sizes, args.repeats, args.window, args.chunk)
    info["load"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    text = table(rows, info, args.repeats)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
