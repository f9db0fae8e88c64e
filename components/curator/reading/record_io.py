"""Beam PTransforms that read forward-record files into ``(example_id, record_value)`` pairs.

``ReadForwardRecords`` reads TFRecord files (gzip when the name ends in ``.gz``, else uncompressed:
``CompressionTypes.AUTO``), e.g. a BulkInferrer ``InferenceResult`` (``prediction_logs-*.gz``) or plain
forward-record files, and decodes them with :mod:`prediction_log` or :mod:`plain_format`. ``DecodeForwardRecords`` does the decoding
of a PCollection of serialized records. Both return a ``DoOutputsTuple``::

    outputs = pipeline | ReadForwardRecords(pattern, "predictionlog", RecordConfig())
    records = outputs[RECORDS_TAG]  # (example_id, (prediction, hidden_norm, timestamp, model_version))
    rejects = outputs[REJECT_TAG]  # (raw_bytes, reason)

Every reject is counted with Beam metrics (namespace ``tfx_curator``, counter ``record_reject_<reason>``,
plus ``records_rejected``), every decoded record as ``records_decoded``. A multi-example PredictionLog
with some bad examples yields its good records and one reject (the whole raw log) per bad example.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from tfx_curator.components.curator.reading.plain_format import decode_plain_batch
from tfx_curator.components.curator.reading.prediction_log import decode_prediction_log_lenient
from tfx_curator.components.curator.reading.records import (
    FORMAT_PREDICTION_LOG,
    RECORD_FORMATS,
    RecordConfig,
)

REJECT_TAG = "rejects"
RECORDS_TAG = "records"
METRICS_NAMESPACE = "tfx_curator"
DECODED_COUNTER = "records_decoded"
REJECTED_COUNTER = "records_rejected"
REJECT_COUNTER_PREFIX = "record_reject_"

# Main-output element type, so that Beam picks tuple/bytes/float coders (no pickling).
RecordType = tuple[bytes, tuple[float, float, float, bytes]]

# Plain records are parsed with one tf.io.parse_example call per batch of this many records.
DEFAULT_BATCH_SIZE = 4096


def reject_counter_name(reason: str) -> str:
    return REJECT_COUNTER_PREFIX + reason


class _CountingDoFn(beam.DoFn):
    """Shared counter plumbing: one Beam counter per reject reason, created once per DoFn instance."""

    def __init__(self, config: RecordConfig, as_lists: bool = False):
        self._config = config
        self._as_lists = as_lists  # batch DoFns: one list of the batch's records instead of one element each

    def setup(self):
        self._decoded = Metrics.counter(METRICS_NAMESPACE, DECODED_COUNTER)
        self._rejected = Metrics.counter(METRICS_NAMESPACE, REJECTED_COUNTER)
        self._reject_counters = {}

    def _reject(self, raw: bytes, reason: str):
        counter = self._reject_counters.get(reason)
        if counter is None:
            counter = self._reject_counters[reason] = Metrics.counter(
                METRICS_NAMESPACE, reject_counter_name(reason)
            )
        counter.inc()
        self._rejected.inc()
        return beam.pvalue.TaggedOutput(REJECT_TAG, (raw, reason))


class _DecodePredictionLogDoFn(_CountingDoFn):
    def process(self, raw: bytes):
        records, reasons = decode_prediction_log_lenient(raw, self._config)
        if records:
            self._decoded.inc(len(records))
            yield from records
        for reason in reasons:
            yield self._reject(raw, reason)


class _DecodePredictionLogBatchDoFn(_CountingDoFn):
    def process(self, batch):
        decode, config, decoded, n = decode_prediction_log_lenient, self._config, [], 0
        for raw in batch:
            records, reasons = decode(raw, config)
            n += len(records)
            if self._as_lists:
                decoded.extend(records)
            else:
                yield from records
            for reason in reasons:
                yield self._reject(raw, reason)
        if n:
            self._decoded.inc(n)
        if decoded:
            yield decoded


class _DecodePlainBatchDoFn(_CountingDoFn):
    def process(self, batch):
        records, rejects = decode_plain_batch(batch, self._config)
        if records:
            self._decoded.inc(len(records))
            if self._as_lists:
                yield list(records)
            else:
                yield from records
        for raw, reason in rejects:
            yield self._reject(raw, reason)


def _check_format(record_format: str) -> str:
    fmt = record_format.lower().replace("_", "")
    if fmt not in RECORD_FORMATS:
        raise ValueError(f"record_format must be one of {RECORD_FORMATS}, got {record_format!r}")
    return fmt


class DecodeForwardRecords(beam.PTransform):
    """PCollection[bytes] -> DoOutputsTuple(records=(example_id, record_value), rejects=(raw, reason)).

    Args:
      record_format: "predictionlog" or "plain".
      config: where the record fields live (records.RecordConfig).
      batch_size: plain format: records per tf.io.parse_example call (unbatched input is batched with
        ``beam.BatchElements`` of this fixed size).
      batched: the input elements are already lists of serialized records (e.g. the batches of a
        tf.data reader); they are decoded as they come, without re-batching.
      as_lists: `records` holds one list of (example_id, record_value) per input batch (batched input only).
    """

    def __init__(
        self,
        record_format: str,
        config: RecordConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batched: bool = False,
        as_lists: bool = False,
    ):
        super().__init__()
        if as_lists and not batched:
            raise ValueError("as_lists needs batched input")
        self._as_lists = as_lists
        self._format = _check_format(record_format)
        self._config = config or RecordConfig()
        self._batch_size = batch_size
        self._batched = batched

    def expand(self, serialized):
        if self._format == FORMAT_PREDICTION_LOG:
            label = "DecodePredictionLogs"
            do_fn = (
                _DecodePredictionLogBatchDoFn(self._config, self._as_lists)
                if self._batched
                else _DecodePredictionLogDoFn(self._config)
            )
        else:
            label, do_fn = "DecodePlainRecords", _DecodePlainBatchDoFn(self._config, self._as_lists)
            if not self._batched:
                serialized = serialized | "Batch" >> beam.BatchElements(
                    min_batch_size=self._batch_size, max_batch_size=self._batch_size
                )
        out_type = list[RecordType] if self._as_lists else RecordType
        return serialized | label >> beam.ParDo(do_fn).with_output_types(out_type).with_outputs(
            REJECT_TAG, main=RECORDS_TAG
        )


class ReadForwardRecords(beam.PTransform):
    """Reads forward-record TFRecord files: PBegin -> DoOutputsTuple (see module docstring).

    Args:
      file_pattern: files to read, e.g. ``<InferenceResult uri>/prediction_logs-*.gz``.
      record_format: "predictionlog" (tensorflow_serving PredictionLog protos) or "plain".
      config: where the record fields live (records.RecordConfig).
      batch_size: plain format: records per tf.io.parse_example call.
    """

    def __init__(
        self,
        file_pattern: str,
        record_format: str,
        config: RecordConfig | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        self._file_pattern = file_pattern
        self._format = _check_format(record_format)
        self._config = config or RecordConfig()
        self._batch_size = batch_size

    def expand(self, pbegin):
        serialized = pbegin | "ReadTFRecords" >> beam.io.ReadFromTFRecord(
            self._file_pattern, coder=beam.coders.BytesCoder(), compression_type=CompressionTypes.AUTO
        )
        return serialized | "Decode" >> DecodeForwardRecords(self._format, self._config, self._batch_size)
