"""Run one curation Beam job and write its outputs: curated splits, rejects and the report's raw figures.

Shared by the TFX executor and the `tfx-curator curate` CLI, so both write exactly the same things:

    <curated_uri>/Split-<split>/data_tfrecord-*.gz     kept examples, original bytes + the weight feature
    <report_uri>/rejects/rejects-*.tfrecord.gz         every rejected input: split, source, reason, payload
    <report_uri>/report.json, report.html              see report.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import apache_beam as beam

from tfx_curator.components.curator import transforms
from tfx_curator.components.curator.options import CurationOptions

REJECTS_DIR = "rejects"
RAW_FIGURES_DIR = "_job"


def build(
    pipeline: beam.Pipeline,
    example_patterns: Mapping[str, str],
    record_pattern: str,
    options: CurationOptions,
    curated_uri: str,
    report_uri: str,
) -> None:
    """Add the whole job to `pipeline`: one pipeline for all curated splits."""
    splits = list(example_patterns)
    out = transforms.curate(pipeline, [example_patterns[s] for s in splits], record_pattern, options)
    _ = out["curated"] | "WriteCurated" >> transforms.WriteBySplit(
        [transforms.split_dir(curated_uri, s) for s in splits], transforms.CURATED_FILE_PREFIX
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
            counts=beam.pvalue.AsDict(out["counts"]),
            events=beam.pvalue.AsList(out["events"]),
            rejects=beam.pvalue.AsList(reject_counts),
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


def _raw_figures(_, splits, options, stats, counts, events, rejects, plans) -> str:
    """Everything the Beam job measured, as one JSON line (report.py turns it into the report)."""
    import dataclasses

    from tfx_curator.components.curator.report_stats import SplitStats

    per_split = {}
    for i, name in enumerate(splits):
        s = stats.get(i, SplitStats.empty())
        p = plans[i]
        per_split[name] = {
            "counts": dict(zip(("n", "n_scored", "n_positive"), counts.get(i, (0, 0, 0)))),
            "stats": s.to_dict(),
            "summary": s.summary(p.rate),
            "plan": {
                k: (dict(v) if isinstance(v, Mapping) else v)
                for k, v in dataclasses.asdict(p).items()
                if k != "lams"
            },
            "lambdas": {str(k): v for k, v in sorted(p.lams.items())},
            "events": {name_: n for (split, name_), n in events if split == i},
            "rejects": {f"{src}:{reason}": n for (split, src, reason), n in rejects if split == i},
        }
    return json.dumps(
        {
            "options": json.loads(options.to_json()),
            "splits": per_split,
            "records": {
                "events": {name: n for (split, name), n in events if split == transforms.RECORDS_SPLIT},
                "rejects": {
                    reason: n for (split, src, reason), n in rejects if split == transforms.RECORDS_SPLIT
                },
            },
        },
        default=_json_default,
        allow_nan=True,
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
