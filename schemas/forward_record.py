"""The TFDV schema of the plain forward-record format (forward_record.pbtxt) and validation against it.

Record files are checked with TFDV statistics; a feature whose type differs between records, which TFDV cannot
compute statistics of, is found by a plain Python scan and reported as an anomaly too. TensorFlow and TFDV are
imported only when a function runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tfx_curator.schemas import FORWARD_RECORD_SCHEMA, schema_file

# Each renamable feature of forward_record.pbtxt: the RecordConfig attribute naming it -> its name in the file
# (RecordConfig's defaults).
FILE_NAMES = {"id_feature": "example_id", "prediction_key": "prediction", "hidden_norm_key": "hidden_norm"}


def forward_record_schema_path() -> str:
    """Path of forward_record.pbtxt (installed as package data of tfx_curator.schemas)."""
    return schema_file(FORWARD_RECORD_SCHEMA)


def forward_record_schema(config=None):
    """The TFDV schema (tensorflow_metadata Schema proto) of the plain format for `config`.

    `config` is a ``RecordConfig`` (or anything with its ``id_feature``, ``prediction_key``,
    ``hidden_norm_key`` and ``task``); None: the file as it is (default names, binary task). Feature names
    follow `config`, the [0, 1] prediction range is dropped for task "regression", and hidden_norm is dropped
    when ``hidden_norm_key`` is None.
    """
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(forward_record_schema_path())
    if config is None:
        return schema
    renames = {name: getattr(config, attribute) for attribute, name in FILE_NAMES.items()}
    for feature in list(schema.feature):
        if feature.name in renames:
            if renames[feature.name] is None:
                schema.feature.remove(feature)
                continue
            if feature.name == FILE_NAMES["prediction_key"] and config.task == "regression":
                feature.float_domain.ClearField("min")
                feature.float_domain.ClearField("max")
            feature.name = renames[feature.name]
    return schema


def validate_plain_records(file_pattern: str, config=None, stats_options=None):
    """Computes TFDV statistics of plain-format TFRecord files and validates them against the schema.

    `config` as for :func:`forward_record_schema`. Gzip files are recognised by a ``.gz`` suffix. Returns a
    tensorflow_metadata ``Anomalies`` proto (``anomalies.anomaly_info`` is empty when the records conform),
    keyed by feature name. Runs a small Beam pipeline (DirectRunner) to compute the statistics. A feature whose
    type differs between records (one int64 ``prediction`` among floats), which TFDV cannot compute statistics
    of, is reported as an anomaly too.
    """
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    schema = forward_record_schema(config)
    beam_log = logging.getLogger("apache_beam.runners.common")  # it logs the failure with its traceback
    level = beam_log.level
    beam_log.setLevel(logging.CRITICAL)
    try:
        stats = tfdv.generate_statistics_from_tfrecord(
            data_location=file_pattern, stats_options=stats_options or tfdv.StatsOptions()
        )
    except Exception:  # noqa: BLE001 - TFDV's decoder fails the whole job on the first mixed type
        anomalies = feature_kind_anomalies(tf.io.gfile.glob(file_pattern))
        if not anomalies.anomaly_info:
            raise
        return anomalies
    finally:
        beam_log.setLevel(level)
    return tfdv.validate_statistics(stats, schema)


def feature_kinds(paths: Sequence[str]) -> tuple[dict, dict, int]:
    """({feature: {kind: records}}, {feature: (kind, path, index) of its first record of a minority kind},
    unparseable records) over every record of the files (plain Python: slow, for diagnosis only)."""
    from collections import Counter, defaultdict

    import tensorflow as tf
    from google.protobuf import message as pb_message
    from tensorflow.core.example import example_pb2

    kinds: dict = defaultdict(Counter)
    where: dict = defaultdict(dict)
    unparseable = 0
    for path in paths:
        compression = "GZIP" if path.endswith(".gz") else ""
        for index, raw in enumerate(
            tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()
        ):
            example = example_pb2.Example()
            try:
                example.ParseFromString(raw)
            except (pb_message.DecodeError, RuntimeError, ValueError):
                unparseable += 1
                continue
            for name, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind") or "empty"
                kinds[name][kind] += 1
                where[name].setdefault(kind, (path, index))
    return dict(kinds), dict(where), unparseable


def feature_kind_anomalies(paths: Sequence[str]):
    """An Anomalies proto with one entry per feature holding values of several types (and unparseable records)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    kinds, where, unparseable = feature_kinds(paths)
    anomalies = anomalies_pb2.Anomalies()
    for name, counts in sorted(kinds.items()):
        typed = {k: n for k, n in counts.items() if k != "empty"}
        if len(typed) < 2:
            continue
        major = max(typed, key=typed.get)
        minor = ", ".join(
            f"{k} in {n} record(s) (first: {where[name][k][0]} record {where[name][k][1]})"
            for k, n in sorted(typed.items())
            if k != major
        )
        info = anomalies.anomaly_info[name]
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = "Mixed types"
        info.description = f"{major} in {typed[major]} record(s), {minor}: one type per feature"
    if unparseable:
        info = anomalies.anomaly_info["(records)"]
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = "Unparseable records"
        info.description = f"{unparseable} record(s) are not tf.Examples"
    return anomalies
