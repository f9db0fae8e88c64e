"""Curator executor: resolve artifacts, validate options, run one Beam job for all curated splits, report."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tfx_curator.components.curator import publish
from tfx_curator.components.curator.beam import job, writers
from tfx_curator.components.curator.reporting import unbiasedness
from tfx_curator.components.curator.spec import (
    CURATED_EXAMPLES_KEY,
    CURATION_REPORT_KEY,
    EXAMPLES_KEY,
    FORWARD_RECORDS_KEY,
    INFERENCE_RESULT_KEY,
    PREVIOUS_REPORT_KEY,
    STATISTICS_KEY,
    options_from_exec_properties,
)

CURATED_FILE_FORMAT = "tfrecords_gzip"
# Headline figures of the served model set as custom properties of the CurationReport (ML Metadata, Kubeflow UI).
SERVED_PROPERTIES = ("auc", "log_loss", "calibration", "label_rate", "rmse", "mae")


def split_file_patterns(examples: types.Artifact, splits) -> dict[str, str]:
    return {s: io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], s)) for s in splits}


def record_file_pattern(input_dict: dict[str, list[types.Artifact]]) -> str:
    """All files holding forward records: an InferenceResult's folder, or every split of an Examples artifact."""
    if input_dict.get(INFERENCE_RESULT_KEY):
        return io_utils.all_files_pattern(artifact_utils.get_single_uri(input_dict[INFERENCE_RESULT_KEY]))
    records = artifact_utils.get_single_instance(input_dict[FORWARD_RECORDS_KEY])
    splits = artifact_utils.decode_split_names(records.split_names)
    if not splits:
        raise ValueError(f"forward_records artifact {records.uri} has no split_names")
    if len(splits) == 1:
        return io_utils.all_files_pattern(artifact_utils.get_split_uri([records], splits[0]))
    return os.path.join(records.uri, "Split-*", "*")


def raw_statistics_paths(input_dict: dict[str, list[types.Artifact]], splits) -> dict[str, str] | None:
    """{split: FeatureStats.pb} of the `statistics` input (StatisticsGen's layout) for the curated `splits` it
    holds; None without that input."""
    if not input_dict.get(STATISTICS_KEY):
        return None
    statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
    held = (
        artifact_utils.decode_split_names(statistics.split_names) or splits
    )  # no split_names: look for files
    paths = unbiasedness.statistics_gen_paths(statistics.uri, [s for s in splits if s in held])
    missing = [s for s in splits if s not in paths]
    logging.info(
        "Raw statistics from %s for splits %s (computed for %s)", statistics.uri, sorted(paths), missing
    )
    return paths


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the curation Beam job (beam/job.py) and finalises the output artifacts."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        options = options_from_exec_properties(exec_properties)
        if bool(input_dict.get(INFERENCE_RESULT_KEY)) == bool(input_dict.get(FORWARD_RECORDS_KEY)):
            raise ValueError("Curator needs exactly one of inference_result or forward_records")
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        curated = artifact_utils.get_single_instance(output_dict[CURATED_EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[CURATION_REPORT_KEY])
        all_splits = artifact_utils.decode_split_names(examples.split_names)
        if not all_splits:
            raise ValueError(f"examples artifact {examples.uri} has no split_names: nothing to curate")
        unknown = [s for s in options.splits if s not in all_splits]
        if unknown:
            raise ValueError(f"splits {unknown} not in the examples artifact's splits {all_splits}")
        payload_format = examples_utils.get_payload_format(examples)
        if payload_format != examples_utils.example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE:
            raise ValueError(
                "Curator reads tf.Example payloads only, got "
                f"{examples_utils.get_payload_format_string(examples)}"
            )

        record_pattern = record_file_pattern(input_dict)
        previous = None
        if input_dict.get(PREVIOUS_REPORT_KEY):
            previous_uri = artifact_utils.get_single_uri(input_dict[PREVIOUS_REPORT_KEY])
            previous = job.read_previous_report(previous_uri)
            logging.info("Drift check against the previous report %s", previous_uri)
        logging.info("Curating splits %s of %s with records %s", options.splits, examples.uri, record_pattern)
        # Nothing partial in the artifacts: everything is written into staging folders next to their uris and
        # moved into place only once the report is written and its accounting check passed (publish.py).
        for uri in (curated.uri, report.uri):
            publish.recover(uri)
        curated_staging, report_staging = publish.stage(curated.uri), publish.stage(report.uri)
        try:
            result = job.run(
                self._make_beam_pipeline,
                split_file_patterns(examples, options.splits),
                record_pattern,
                options,
                curated_staging,
                report_staging,
                previous_report=previous,
                raw_statistics=raw_statistics_paths(input_dict, options.splits),
            )
            for split in all_splits:
                if split not in options.splits:
                    copy_split(examples, split, writers.split_dir(curated_staging, split))
            publish.commit(report_staging, report.uri)  # the report first: no curated file without it
            publish.commit(curated_staging, curated.uri)
        except BaseException:
            publish.discard(curated_staging)
            publish.discard(report_staging)
            raise
        curated.split_names = artifact_utils.encode_split_names(all_splits)
        examples_utils.set_payload_format(curated, payload_format)
        examples_utils.set_file_format(curated, CURATED_FILE_FORMAT)
        totals = {
            k: sum(s["accounting"][k] for s in result["splits"].values())
            for k in ("examples_read", "selected", "rejected")
        }
        for key, value in totals.items():
            report.set_int_custom_property(key, int(value))
        set_served_model_properties(report, result, options.splits)
        logging.info("Curation done: %s; report at %s", totals, os.path.join(report.uri, "report.html"))


def set_served_model_properties(report: types.Artifact, result: dict, splits) -> None:
    """`served_<figure>` (suffixed `_<split>` when several splits are curated) and `served_drift_flags`: the
    served model's headline figures on this span, where ML Metadata and the Kubeflow UI show them."""
    flags = []
    for split in splits:
        section = result["splits"][split].get("served_model")
        if not section:
            continue
        suffix = "" if len(splits) == 1 else f"_{split}"
        for name in SERVED_PROPERTIES:
            value = section["all"].get(name)
            if value is not None:
                report.set_float_custom_property(f"served_{name}{suffix}", float(value))
        report.set_int_custom_property(f"served_examples{suffix}", int(section["examples_scored"]))
        flags += [f"{split}: {flag}" for flag in section["flags"]]
    report.set_int_custom_property("served_drift_flags", len(flags))
    if flags:
        report.set_string_custom_property("served_drift", "; ".join(flags))


def copy_split(source: types.Artifact, split: str, dst: str) -> None:
    """Copy an uncurated split's files unchanged into the folder `dst`."""
    src = artifact_utils.get_split_uri([source], split)
    tf.io.gfile.makedirs(dst)
    for name in tf.io.gfile.listdir(src):
        path = os.path.join(src, name)
        if not tf.io.gfile.isdir(path):
            tf.io.gfile.copy(path, os.path.join(dst, name), overwrite=True)
