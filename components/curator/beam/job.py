"""Run one curation Beam job and write everything it produces.

Shared by the TFX executor and the `tfx-curator curate` CLI, so both write exactly the same things: the curated
splits, rejects, statistics and figures (writers.py), then report.json and report.html built from the figures:
served model's quality and drift, accounting, selection figures, unbiasedness checks.

    job -> curate (Curate) -> join, transforms, measure -> rows
    job -> writers, figures -> rows
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

import apache_beam as beam
from absl import logging

from tfx_curator.components.curator.beam import curate as curate_lib
from tfx_curator.components.curator.beam import figures as figures_lib
from tfx_curator.components.curator.beam import writers
from tfx_curator.components.curator.beam.rows import QUALITY_CURATED, QUALITY_FULL, Reject, RejectKey
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reporting import data_quality, monitoring, quality, unbiasedness
from tfx_curator.components.curator.reporting import report as report_lib


def build(
    pipeline: beam.Pipeline,
    example_patterns: Mapping[str, str],
    record_pattern: str,
    options: CurationOptions,
    curated_uri: str,
    report_uri: str,
    compute_statistics: bool | None = None,
    raw_statistics: Mapping[str, str] | None = None,
) -> None:
    """Add the whole job to `pipeline`: one pipeline for all curated splits.

    compute_statistics: None follows options.compute_statistics; raw_statistics: {split: FeatureStats.pb} of
    a StatisticsGen output, read by the unbiasedness check instead of computing the split's raw statistics."""
    if compute_statistics is None:
        compute_statistics = options.compute_statistics
    splits = list(example_patterns)
    out = pipeline | "Curate" >> curate_lib.Curate(
        [example_patterns[s] for s in splits], record_pattern, options
    )
    # the statistics: one TFDV pass for the curated splits (weighted: TFDV keeps the unweighted statistics beside
    # the weighted ones), one for the samples of accepted raw examples KeyExamples emits (of the splits the
    # statistics input does not have); slices named "<split>/<raw|curated>"
    stats_inputs = {report_lib.CURATED: {}, report_lib.RAW: {}}
    for i, split in enumerate(splits):
        _ = out.curated[i] | f"WriteCurated[{split}]" >> writers.write_split(
            writers.split_dir(curated_uri, split)
        )
        if not compute_statistics:
            continue
        stats_inputs[report_lib.CURATED][f"{split}/{report_lib.CURATED}"] = out.curated[i]
        if split not in (raw_statistics or {}):
            stats_inputs[report_lib.RAW][f"{split}/{report_lib.RAW}"] = out.accepted_batches[i]
    for kind, inputs in stats_inputs.items():
        if inputs:
            _ = inputs | f"Statistics[{kind}]" >> writers.WriteStatistics(
                {name: report_lib.stats_path(report_uri, *name.rsplit("/", 1)) for name in inputs},
                options.weight_feature if kind == report_lib.CURATED else None,
                batched=list(inputs) if kind == report_lib.RAW else (),
            )
    _ = out.rejects | "WriteRejects" >> writers.WriteRejects(report_uri)
    reject_counts = (
        out.rejects
        | "RejectKey" >> beam.Map(_reject_key).with_output_types(tuple[RejectKey, int])
        | "CountRejects" >> beam.CombinePerKey(sum)
    )
    _ = (
        pipeline
        | "OnceReport" >> beam.Create([None])
        | "Figures"
        >> beam.Map(
            _figures,
            splits,
            options,
            stats=beam.pvalue.AsDict(out.stats),
            served=beam.pvalue.AsDict(out.quality),
            counts=beam.pvalue.AsDict(out.counts),
            events=beam.pvalue.AsList(out.events),
            rejects=beam.pvalue.AsList(reject_counts),
            corrupt=beam.pvalue.AsList(out.corrupt_files),
            plans=beam.pvalue.AsSingleton(out.plans),
        )
        | "WriteFigures" >> writers.WriteFigures(report_uri)
    )


def _figures(_, splits: list[str], options: CurationOptions, **measured) -> figures_lib.JobFigures:
    return figures_lib.measured(splits, options, **measured)


def _reject_key(reject: Reject) -> tuple[RejectKey, int]:
    return RejectKey(reject.split, reject.source, reject.reason), 1


def read_raw_figures(report_uri: str) -> figures_lib.JobFigures:
    """The figures the job wrote under `report_uri`."""
    return figures_lib.read(report_uri)


def read_previous_report(path: str, split: str | None = None) -> dict:
    """A previous run's report.json: `path` is the file or a folder holding it (directly, in `<split>/`, in
    `report/<split>/` as the CLI writes it, or in `report/` as older CLI outputs did)."""
    from tensorflow.io import gfile

    candidates = [path, os.path.join(path, "report.json")]
    if split:
        candidates += [
            os.path.join(path, split, "report.json"),
            os.path.join(path, "report", split, "report.json"),
        ]
    candidates.append(os.path.join(path, "report", "report.json"))
    for candidate in candidates:
        if gfile.exists(candidate) and not gfile.isdir(candidate):
            with gfile.GFile(candidate, "r") as f:
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
            for k in (QUALITY_FULL, QUALITY_CURATED)
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
    raw_statistics: Mapping[str, str] | None = None,
) -> dict:
    """After the job ran: build and write the report, then enforce the accounting invariant and the data-quality
    limits (data_quality.py). format_detection: how an "auto" record format was resolved; previous_report: the
    previous run's report.json, for the served model's drift check; raw_statistics: as given to `build`."""
    job_figures = figures_lib.read(report_uri)
    figures = job_figures.to_dict()
    given = raw_statistics or {}
    unbiased = {
        s: unbiasedness.check(
            report_uri, s, f.summary["ess"], options, f.counts["n"], given.get(s), raw_statistics is not None
        )
        for s, f in job_figures.splits.items()
    }
    served = served_model_sections(figures, previous_report)
    report = report_lib.build_report(
        figures, job_figures.examples_read(), {s: u for s, u in unbiased.items() if u}, served_model=served
    )
    report["forward_records"]["format"] = options.record_format
    report["forward_records"]["format_detection"] = format_detection or "given"
    report_lib.write_report(report_uri, report, figures)
    for split, u in unbiased.items():
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
    raw_statistics: Mapping[str, str] | None = None,
) -> dict:
    """Build and run the job with a pipeline from `make_pipeline`, then write the report. Returns report.json.

    previous_report: the previous run's report.json (read_previous_report), for the drift check;
    raw_statistics: {split: FeatureStats.pb} of a StatisticsGen output for these examples (None: no such input;
    a curated split it lacks gets its raw statistics computed, and the report says so)."""
    options, detection = curate_lib.resolve_record_format(options, record_pattern)
    for split in example_patterns:
        if raw_statistics is not None and split not in raw_statistics:
            logging.info("split %s not in the statistics input: its raw statistics are computed", split)
    with make_pipeline() as pipeline:
        build(
            pipeline,
            example_patterns,
            record_pattern,
            options,
            curated_uri,
            report_uri,
            compute_statistics,
            raw_statistics,
        )
    return finish(report_uri, options, detection, previous_report, raw_statistics)
