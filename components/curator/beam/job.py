"""Run one curation Beam job and write everything it produces.

Shared by the TFX executor and the `tfx-curator curate` CLI, so both write exactly the same things:

    <curated_uri>/Split-<split>/data_tfrecord-*.gz      kept examples: original bytes + the weight feature
    <report_uri>/report.json, report.html               served model's quality and drift, accounting, selection
                                                        figures, unbiasedness checks
    <report_uri>/rejects/rejects-*.tfrecord.gz          every rejected input: split index, source, reason, payload
    <report_uri>/statistics/Split-<split>/*.pb          TFDV statistics: raw, curated unweighted, curated weighted
    <report_uri>/_job/figures.json                      the job's raw figures (report.json is built from them)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

import apache_beam as beam
from absl import logging

from tfx_curator.components.curator.beam import transforms
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reading import example_keys
from tfx_curator.components.curator.reporting import data_quality, monitoring, quality
from tfx_curator.components.curator.reporting import report as report_lib

REJECTS_DIR = "rejects"
RAW_FIGURES_DIR = "_job"
STATS_BATCH_SIZE = 1000


def build(
    pipeline: beam.Pipeline,
    example_patterns: Mapping[str, str],
    record_pattern: str,
    options: CurationOptions,
    curated_uri: str,
    report_uri: str,
    compute_statistics: bool | None = None,
) -> None:
    """Add the whole job to `pipeline`: one pipeline for all curated splits.

    compute_statistics: None follows options.compute_statistics."""
    if compute_statistics is None:
        compute_statistics = options.compute_statistics
    splits = list(example_patterns)
    out = transforms.curate(pipeline, [example_patterns[s] for s in splits], record_pattern, options)
    for i, split in enumerate(splits):
        _ = out["curated"][i] | f"WriteCurated[{split}]" >> transforms.write_split(
            transforms.split_dir(curated_uri, split)
        )
        if compute_statistics:
            _statistics(
                out["raw_batches"][i],
                f"{split}-raw",
                report_lib.stats_path(report_uri, split, report_lib.RAW),
                batched=True,
                parser=example_keys.ExampleKeyParser(options.id_feature, options.label_feature, options.task),
            )
            _statistics(
                out["curated"][i],
                f"{split}-unweighted",
                report_lib.stats_path(report_uri, split, report_lib.UNWEIGHTED),
            )
            _statistics(
                out["curated"][i],
                f"{split}-weighted",
                report_lib.stats_path(report_uri, split, report_lib.WEIGHTED),
                options.weight_feature,
            )
    _ = (
        out["rejects"]
        | "RejectToExample" >> beam.Map(transforms.reject_example)
        | "WriteRejects"
        >> beam.io.WriteToTFRecord(
            os.path.join(report_uri, REJECTS_DIR, "rejects"),
            file_name_suffix=".tfrecord.gz",
            coder=beam.coders.BytesCoder(),
        )
    )
    reject_counts = (
        out["rejects"]
        | "RejectKey" >> beam.Map(lambda r: ((r[0], r[1], r[2]), 1))
        | "CountRejects" >> beam.CombinePerKey(sum)
    )
    _ = (
        pipeline
        | "OnceReport" >> beam.Create([None])
        | "RawFigures"
        >> beam.Map(
            _raw_figures,
            splits,
            options,
            stats=beam.pvalue.AsDict(out["stats"]),
            served=beam.pvalue.AsDict(out["quality"]),
            counts=beam.pvalue.AsDict(out["counts"]),
            events=beam.pvalue.AsList(out["events"]),
            rejects=beam.pvalue.AsList(reject_counts),
            corrupt=beam.pvalue.AsList(out["corrupt_files"]),
            plans=beam.pvalue.AsSingleton(out["plans"]),
        )
        | "WriteRawFigures"
        >> beam.io.WriteToText(
            os.path.join(report_uri, RAW_FIGURES_DIR, "figures"),
            file_name_suffix=".json",
            shard_name_template="",
            num_shards=1,
        )
    )


def _statistics(
    serialized, label: str, path: str, weight_feature: str | None = None, batched: bool = False, parser=None
) -> None:
    """TFDV statistics of serialized examples (or of lists of them when `batched`), inside the same Beam job.

    With `parser` (an ExampleKeyParser) only the examples the curation accepts are described: the rejects are
    in rejects/, and one unparseable or ill-typed example would make tfx_bsl's decoder fail the whole job."""
    import tensorflow_data_validation as tfdv
    from tfx_bsl.coders import example_coder

    options = tfdv.StatsOptions(
        weight_feature=weight_feature, num_quantiles_histogram_buckets=20, num_rank_histogram_buckets=200
    )
    if not batched:
        serialized = serialized | f"StatsBatch[{label}]" >> beam.BatchElements(
            min_batch_size=STATS_BATCH_SIZE, max_batch_size=STATS_BATCH_SIZE
        )
    _ = (
        serialized
        | f"ToRecordBatch[{label}]"
        >> beam.FlatMap(_decode_batch, example_coder.ExamplesToRecordBatchDecoder(), parser)
        | f"Statistics[{label}]" >> tfdv.GenerateStatistics(options)
        | f"WriteStatistics[{label}]" >> tfdv.WriteStatisticsToBinaryFile(path)
    )


def _decode_batch(batch, decoder, parser=None):
    """At most one RecordBatch: the accepted examples (with `parser`) that tfx_bsl can decode.

    TensorFlow's parser, which decides acceptance, takes a few examples tfx_bsl's protobuf parser refuses (a
    feature name that is not UTF-8): those are left out of the statistics, one by one.
    """
    if parser is not None:
        rejected = {i for i, _ in parser.parse(batch)[2]}
        batch = [raw for i, raw in enumerate(batch) if i not in rejected] if rejected else batch
    try:
        decoded = decoder.DecodeBatch(batch) if len(batch) else None
    except RuntimeError:
        batch = [raw for raw in batch if _decodes(decoder, raw)]
        decoded = decoder.DecodeBatch(batch) if batch else None
    if decoded is not None:
        yield decoded


def _decodes(decoder, raw: bytes) -> bool:
    try:
        decoder.DecodeBatch([raw])
    except RuntimeError:
        return False
    return True


def _raw_figures(_, splits, options, stats, served, counts, events, rejects, plans, corrupt) -> str:
    """Everything the Beam job measured, as one JSON line (report.py turns it into the report)."""
    import dataclasses

    from tfx_curator.components.curator.reporting.report_stats import SplitStats

    per_split = {}
    for i, name in enumerate(splits):
        s = stats.get(i, SplitStats.empty())
        p = plans[i]
        per_split[name] = {
            "counts": dict(zip(("n", "n_scored", "n_positive"), counts.get(i, (0, 0, 0)))),
            "stats": s.to_dict(),
            "summary": s.summary(p.rate),
            "plan": {k: v for k, v in dataclasses.asdict(p).items() if k != "lams"},
            "lambdas": {str(k): v for k, v in sorted(p.lams.items())},
            "events": {event: n for (split, event), n in events if split == i},
            "rejects": {f"{src}:{reason}": n for (split, src, reason), n in rejects if split == i},
            "corrupt_files": sorted([path, n, error] for split, path, n, error in corrupt if split == i),
            "served_model": {
                kind: served[(i, kind)].to_dict()
                for kind in (transforms.QUALITY_FULL, transforms.QUALITY_CURATED)
                if (i, kind) in served
            },
        }
    return json.dumps(
        {
            "options": json.loads(options.to_json()),
            "splits": per_split,
            "records": {
                "events": {name: n for (split, name), n in events if split == transforms.RECORDS_SPLIT},
                "rejects": {
                    reason: n for (split, _, reason), n in rejects if split == transforms.RECORDS_SPLIT
                },
                "corrupt_files": sorted(
                    [path, n, error] for split, path, n, error in corrupt if split == transforms.RECORDS_SPLIT
                ),
            },
        },
        default=_json_default,
    )


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_raw_figures(report_uri: str) -> dict:
    from tfx.dsl.io import fileio

    with fileio.open(os.path.join(report_uri, RAW_FIGURES_DIR, "figures.json"), "r") as f:
        return json.loads(f.read())


def _unbiasedness(report_uri: str, split: str, figures: dict, options: CurationOptions) -> dict | None:
    import tensorflow_data_validation as tfdv
    from tfx.dsl.io import fileio

    paths = {
        w: report_lib.stats_path(report_uri, split, w)
        for w in (report_lib.RAW, report_lib.UNWEIGHTED, report_lib.WEIGHTED)
    }
    if not all(fileio.exists(p) for p in paths.values()):
        return None
    loaded = {w: tfdv.load_stats_binary(p) for w, p in paths.items()}
    if any(not s.datasets or not s.datasets[0].num_examples for s in loaded.values()):
        return {"features": [], "note": "no examples in the raw or curated split: nothing to compare"}
    ess = figures["splits"][split]["summary"]["ess"]
    n_raw = loaded[report_lib.RAW].datasets[0].num_examples
    rows = report_lib.compare_statistics(
        loaded[report_lib.RAW].datasets[0],
        loaded[report_lib.UNWEIGHTED].datasets[0],
        loaded[report_lib.WEIGHTED].datasets[0],
        n_raw,
        ess,
        skip=(options.id_feature, options.weight_feature),
    )
    return {
        "features": rows,
        "mismatched": [r["feature"] for r in rows if r["mismatch"]],
        "statistics": {w: p for w, p in paths.items()},
    }


def read_previous_report(path: str, split: str | None = None) -> dict:
    """A previous run's report.json: `path` is the file or a folder holding it (directly, in `<split>/`, in
    `report/<split>/` as the CLI writes it, or in `report/` as older CLI outputs did)."""
    from tfx.dsl.io import fileio

    candidates = [path, os.path.join(path, "report.json")]
    if split:
        candidates += [
            os.path.join(path, split, "report.json"),
            os.path.join(path, "report", split, "report.json"),
        ]
    candidates.append(os.path.join(path, "report", "report.json"))
    for candidate in candidates:
        if fileio.exists(candidate) and not fileio.isdir(candidate):
            with fileio.open(candidate, "r") as f:
                try:
                    return json.loads(f.read())
                except json.JSONDecodeError as e:
                    raise ValueError(f"previous report {candidate} is not valid JSON: {e}") from None
    raise FileNotFoundError(f"no previous report.json at {path} (looked for {candidates})")


def served_model_sections(figures: dict, previous_report: dict | None = None) -> dict[str, dict]:
    """The served-model section of each split (monitoring.py) from the job's raw figures."""
    out = {}
    for split, fig in figures["splits"].items():
        served = fig.get("served_model", {})
        full, curated = (
            quality.QualityStats.from_dict(served[k]) if k in served else None
            for k in (transforms.QUALITY_FULL, transforms.QUALITY_CURATED)
        )
        previous, note = monitoring.previous_stats(previous_report, split)
        out[split] = monitoring.section(
            full, curated, fig["summary"]["ess"], figures["options"], previous, note
        )
    return out


def finish(
    report_uri: str,
    options: CurationOptions,
    format_detection: str | None = None,
    previous_report: dict | None = None,
) -> dict:
    """After the job ran: build and write the report, then enforce the accounting invariant and the data-quality
    limits (data_quality.py). format_detection: how an "auto" record format was resolved; previous_report: the
    previous run's report.json, for the served model's drift check."""
    figures = read_raw_figures(report_uri)
    examples_read = {s: f["events"].get(transforms.EXAMPLES_READ, 0) for s, f in figures["splits"].items()}
    unbiasedness = {s: _unbiasedness(report_uri, s, figures, options) for s in figures["splits"]}
    served = served_model_sections(figures, previous_report)
    report = report_lib.build_report(
        figures, examples_read, {s: u for s, u in unbiasedness.items() if u}, served_model=served
    )
    report["forward_records"]["format"] = options.record_format
    report["forward_records"]["format_detection"] = format_detection or "given"
    report_lib.write_report(report_uri, report, figures)
    for split, u in unbiasedness.items():
        if u and u.get("mismatched"):
            logging.warning(
                "split %s: weighted curated data differs from the raw data on %s (see report.html)",
                split,
                u["mismatched"],
            )
    for split, section in served.items():
        for flag in section["flags"]:
            logging.warning("split %s: served model: %s", split, flag)
        if section["curated_cross_check"]["mismatched"]:
            logging.warning(
                "split %s: weighted curated sample disagrees with the full span on the served model's %s",
                split,
                section["curated_cross_check"]["mismatched"],
            )
    report_lib.check_accounting(report)
    data_quality.check(report, options)
    return report


def run(
    make_pipeline: Callable[[], beam.Pipeline],
    example_patterns: Mapping[str, str],
    record_pattern: str,
    options: CurationOptions,
    curated_uri: str,
    report_uri: str,
    compute_statistics: bool | None = None,
    previous_report: dict | None = None,
) -> dict:
    """Build and run the job with a pipeline from `make_pipeline`, then write the report. Returns report.json.

    previous_report: the previous run's report.json (read_previous_report), for the drift check."""
    options, detection = transforms.resolve_record_format(options, record_pattern)
    with make_pipeline() as pipeline:
        build(
            pipeline, example_patterns, record_pattern, options, curated_uri, report_uri, compute_statistics
        )
    return finish(report_uri, options, detection, previous_report)
