"""Everything the job writes: curated splits, rejects, TFDV statistics and the job's figures.

<curated_uri>/Split-<split>/data_tfrecord-*.gz      kept examples: original bytes + the weight feature
<report_uri>/rejects/rejects-*.tfrecord.gz          every rejected input: split index, source, reason, payload
<report_uri>/statistics/Split-<split>/*.pb          TFDV statistics: raw (a sample, or none), curated (weighted)
<report_uri>/_job/figures.json                      the job's figures (figures.py)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Mapping

import apache_beam as beam
import numpy as np

from tfx_curator.components.curator.beam import figures as figures_lib
from tfx_curator.components.curator.beam.rows import Reject

CURATED_FILE_PREFIX = "data_tfrecord"
REJECTS_DIR = "rejects"
STATS_BATCH_SIZE = 1000


def split_dir(output_uri: str, split: str) -> str:
    return os.path.join(output_uri, f"Split-{split}")


def write_split(directory: str, prefix: str = CURATED_FILE_PREFIX) -> beam.PTransform:
    """Serialized examples -> gzip TFRecords `<directory>/<prefix>-*.gz` (ExampleGen's layout)."""
    return beam.io.WriteToTFRecord(
        os.path.join(directory, prefix), file_name_suffix=".gz", coder=beam.coders.BytesCoder()
    )


def reject_example(reject: Reject) -> bytes:
    """A reject as a tf.Example: split, source, reason and the untouched payload bytes."""
    from tensorflow.core.example import example_pb2

    ex = example_pb2.Example()
    f = ex.features.feature
    f["split_index"].int64_list.value.append(reject.split)
    f["source"].bytes_list.value.append(reject.source.encode())
    f["reason"].bytes_list.value.append(reject.reason.encode())
    f["payload"].bytes_list.value.append(reject.payload)
    return ex.SerializeToString()


class WriteRejects(beam.PTransform):
    """Reject -> `<report_uri>/rejects/rejects-*.tfrecord.gz`, one tf.Example each."""

    def __init__(self, report_uri: str):
        super().__init__()
        self._report_uri = report_uri

    def expand(self, rejects):
        return (
            rejects
            | "RejectToExample" >> beam.Map(reject_example)
            | "WriteRejects"
            >> beam.io.WriteToTFRecord(
                os.path.join(self._report_uri, REJECTS_DIR, "rejects"),
                file_name_suffix=".tfrecord.gz",
                coder=beam.coders.BytesCoder(),
            )
        )


def write_file(path: str, content: bytes) -> str:
    """`content` -> the file at `path`: written beside it under a temporary name, then renamed over it (a reader
    never sees a partial file; a retried bundle rewrites the same bytes). Returns `path`."""
    from tensorflow.io import gfile

    gfile.makedirs(os.path.dirname(path))
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    with gfile.GFile(temp, "wb") as f:
        f.write(content)
    gfile.rename(temp, path, overwrite=True)
    return path


class WriteOneFile(beam.PTransform):
    """A PCollection of one element -> the file at `path` holding `encode(element)` (`write_file`).

    For the job's single results (figures, statistics): one step, where a file sink (WriteToText) adds an
    initialise, a write, a shuffle and a finalise stage with their side inputs to the job."""

    def __init__(self, path: str, encode):
        super().__init__()
        self._path = path
        self._encode = encode

    def expand(self, one):
        path, encode = self._path, self._encode
        return one | "WriteFile" >> beam.Map(lambda element: write_file(path, encode(element)))


class WriteFigures(beam.PTransform):
    """A single JobFigures -> `<report_uri>/_job/figures.json` (one JSON line)."""

    def __init__(self, report_uri: str):
        super().__init__()
        self._report_uri = report_uri

    def expand(self, figures):
        return figures | "Write" >> WriteOneFile(figures_lib.path(self._report_uri), _figures_json)


def _figures_json(figures: figures_lib.JobFigures) -> bytes:
    return (figures.to_json() + "\n").encode()


class WriteStatistics(beam.PTransform):
    """{name: serialized examples, or lists of them for the names in `batched`} -> the TFDV statistics of each
    name's examples in the binary stats file `paths[name]`, all from one TFDV pass (one slice per name).

    `weight_feature`: the names in `weighted` are described unweighted and weighted by it; the others unweighted
    only: their examples are weighted 1 in the pass (TFDV weighs every slice by the same feature), then their
    files keep neither the weighted statistics nor that feature. Each file holds one dataset, as
    tfdv.GenerateStatistics writes it (no name; an empty input gives an empty dataset).

    One pass instead of one GenerateStatistics per name: TFDV's pipeline is ~20 steps and ~0.6 s to build, so
    the raw split's and the curated split's statistics share it (tfdv's GenerateSlicedStatisticsImpl, the
    implementation behind GenerateStatistics, on slices keyed here: GenerateStatistics' own slicing would add a
    slice of all the examples, which doubles the work).

    The raw split's statistics describe the examples the curation accepts (KeyExamples' accepted batches): the
    rejects are in rejects/, and one unparseable or ill-typed example would make tfx_bsl's decoder fail the job.

    Top values and rank histograms come from TFDV's sketches (Misra-Gries, 1,024 counters; KMV for the unique
    count): exact for a feature of up to 1,024 distinct values, else each frequency is low by at most 1/1,025 of
    the examples, below the unbiasedness check's noise level for any effective sample size under ~500k. The
    exact generator emits one (feature, value) count per value and record batch across a shuffle: 501k elements
    and ~10 s of encoding and decoding at 1M flights-3m rows on DirectRunner (measured by timing the SDK's data
    coders, 2026-12-02)."""

    def __init__(
        self,
        paths: Mapping[str, str],
        weight_feature: str | None = None,
        weighted: Collection[str] = (),
        batched: Collection[str] = (),
    ):
        super().__init__()
        self._paths = dict(paths)
        self._weight_feature = weight_feature
        self._unweighted = [n for n in self._paths if n not in weighted] if weight_feature else []
        self._batched = set(batched)

    def expand(self, inputs: Mapping[str, beam.PCollection]):
        import tensorflow_data_validation as tfdv
        from tensorflow_data_validation.statistics import stats_impl
        from tfx_bsl.coders import example_coder

        options = tfdv.StatsOptions(
            weight_feature=self._weight_feature,
            num_quantiles_histogram_buckets=20,
            num_rank_histogram_buckets=200,
            use_sketch_based_topk_uniques=True,
        )
        decoder = example_coder.ExamplesToRecordBatchDecoder()
        sliced = []
        for name, serialized in inputs.items():
            label = name.replace("/", ":")  # a "/" in a step's label reads as nesting
            if name not in self._batched:
                serialized = serialized | f"StatsBatch[{label}]" >> beam.BatchElements(
                    min_batch_size=STATS_BATCH_SIZE, max_batch_size=STATS_BATCH_SIZE
                )
            ones = self._weight_feature if name in self._unweighted else None
            sliced.append(
                serialized | f"ToRecordBatch[{label}]" >> beam.FlatMap(_decode_batch, decoder, name, ones)
            )
        paths, unweighted, weight = self._paths, self._unweighted, self._weight_feature
        return (
            sliced
            | "Slices" >> beam.Flatten()
            | "Statistics" >> stats_impl.GenerateSlicedStatisticsImpl(options, is_slicing_enabled=True)
            | "Files" >> beam.FlatMap(_stats_files, paths, unweighted, weight)
            | "WriteStatistics" >> beam.MapTuple(write_file)
        )


def _stats_files(stats, paths: dict[str, str], unweighted: list[str], weight_feature: str | None):
    """The one DatasetFeatureStatisticsList of all slices -> (path, serialized list of one dataset) per name."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    by_name = {d.name: d for d in stats.datasets}
    for name, path in paths.items():
        dataset = statistics_pb2.DatasetFeatureStatistics()
        if name in by_name:
            dataset.CopyFrom(by_name[name])
        dataset.ClearField("name")
        if name in unweighted:
            _drop_weighted(dataset)
            kept = [f for f in dataset.features if list(f.path.step) != [weight_feature]]
            del dataset.features[:]
            dataset.features.extend(kept)
        yield path, statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset]).SerializeToString()


def _drop_weighted(message) -> None:
    """Clear every `weighted_*` field of a statistics proto, at any depth."""
    for field, value in message.ListFields():
        if field.name.startswith("weighted_"):
            message.ClearField(field.name)
        elif field.type == field.TYPE_MESSAGE:
            for item in value if field.label == field.LABEL_REPEATED else [value]:
                _drop_weighted(item)


def _decode_batch(batch, decoder, name: str, ones_weight: str | None = None):
    """At most one (name, RecordBatch): the examples of `batch` that tfx_bsl can decode, with a column
    `ones_weight` of 1.0s when given (replacing one of that name).

    TensorFlow's parser, which decides acceptance, takes a few examples tfx_bsl's protobuf parser refuses (a
    feature name that is not UTF-8): those are left out of the statistics, one by one.
    """
    try:
        decoded = decoder.DecodeBatch(batch) if len(batch) else None
    except RuntimeError:
        batch = [raw for raw in batch if _decodes(decoder, raw)]
        decoded = decoder.DecodeBatch(batch) if batch else None
    if decoded is None:
        return
    if ones_weight is not None:
        decoded = _with_ones(decoded, ones_weight)
    yield name, decoded


def _with_ones(record_batch, column: str):
    """`record_batch` with `column` = [1.0] in every row (replacing a column of that name)."""
    import pyarrow as pa

    n = record_batch.num_rows
    ones = pa.LargeListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int64)), pa.array(np.ones(n, dtype=np.float32))
    )
    names = record_batch.schema.names
    arrays = [record_batch.column(i) for i, c in enumerate(names) if c != column]
    return pa.RecordBatch.from_arrays([*arrays, ones], [c for c in names if c != column] + [column])


def _decodes(decoder, raw: bytes) -> bool:
    try:
        decoder.DecodeBatch([raw])
    except RuntimeError:
        return False
    return True
