"""Read TFRecord files inside a DoFn with tf.data: fast, and a corrupt file is named, not a mystery.

Beam's own TFRecord source spends about half of a curation job in per-record Python; tf.data reads a file in
C++ and hands over batches. Each file is one unit of work, which suits ExampleGen's and BulkInferrer's sharded
outputs. A corrupt or truncated file (tf.data's DataLossError and friends) fails the job with an error that
names the file, or, with `skip_corrupt_files`, ends that file's reading: the records before the damage are kept
and counted, and the file is listed (CORRUPT_FILES output) with the number of records read and the error.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

CORRUPT_FILES = "corrupt_files"
NAMESPACE = "tfx_curator"
# Records and files read to the end by the readers of this process: progress for the command line (an
# in-process runner, DirectRunner's default; workers in other processes leave it at 0). Approximate by design.
PROGRESS = {"records": 0, "files": 0}
COUNT_BATCH = 4096  # records per step of count_records (a reduce per record costs ten times more)


class CorruptFileError(IOError):
    """A TFRecord file could not be read to the end."""


class InputFilesError(ValueError):
    """An input glob matches a folder: reading it would fail with `Is a directory` (or skip its files silently)."""


def list_files(file_pattern: str) -> list[str]:
    """Files matching a glob (local, gs://, ... as TensorFlow's filesystems support), sorted.

    A glob that matches a folder is an error (InputFilesError naming it), in the CLI's check as in the job."""
    import tensorflow as tf

    paths = sorted(tf.io.gfile.glob(file_pattern))
    folders = [p for p in paths if tf.io.gfile.isdir(p)]
    if folders:
        raise InputFilesError(
            f"{file_pattern!r} matches {len(folders)} folder(s), e.g. {folders[0]}: input globs must match "
            f"TFRecord files only (e.g. '{folders[0].rstrip('/')}/*'); narrow the pattern"
        )
    return paths


def first_records(paths: list[str], n: int) -> list[bytes]:
    """Up to `n` records from the start of the files, in order (a file that cannot be read is passed over: the
    job itself reports it)."""
    import tensorflow as tf

    out: list[bytes] = []
    for path in paths:
        if len(out) >= n:
            break
        try:
            dataset = tf.data.TFRecordDataset(path, compression_type=compression_of(path))
            out.extend(r.numpy() for r in dataset.take(n - len(out)))
        except (tf.errors.OpError, OSError):
            continue
    return out


def compression_of(path: str) -> str:
    return "GZIP" if path.endswith(".gz") or path.endswith(".gzip") else ""


def gzip_stream_problem(path: str, decompressed_size: int) -> str | None:
    """Why a gzip file that tf.data read to its end without an error is incomplete after all; None if it is not.

    tf.data ends silently when a truncated gzip file happens to stop on a record boundary. A complete gzip
    member ends with its uncompressed size mod 2**32 (ISIZE): comparing those 4 bytes with the size of the
    records read is the cheap check; on a mismatch (damage, or several concatenated gzip members) the whole
    file is decompressed to decide.
    """
    import zlib

    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        file_size = f.size()
        if file_size == 0:
            return None
        f.seek(max(file_size - 4, 0))
        if int.from_bytes(f.read(4), "little") == decompressed_size % 2**32:
            return None
        f.seek(0)
        inflater, fed, total, data = zlib.decompressobj(16 + zlib.MAX_WBITS), False, 0, b""
        while data or (data := f.read(1 << 20)):
            try:
                total += len(inflater.decompress(data, 1 << 24))
            except zlib.error as e:
                return f"bad gzip data: {e}"
            fed = True
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if inflater.eof:  # the next gzip member, if any
                inflater, fed = zlib.decompressobj(16 + zlib.MAX_WBITS), False
    if fed:
        return f"truncated gzip stream (ends without its trailer after {total} bytes)"
    if total != decompressed_size:
        return f"gzip stream holds {total} bytes, its records {decompressed_size}"
    return None


class _ReadFileDoFn(beam.DoFn):
    def __init__(self, batch_size: int, skip_corrupt_files: bool):
        self._batch_size = batch_size
        self._skip = skip_corrupt_files
        self._corrupt = Metrics.counter(NAMESPACE, "corrupt_files")

    def process(self, path: str):
        import tensorflow as tf

        read, size, gzip = 0, 0, compression_of(path) == "GZIP"
        dataset = tf.data.TFRecordDataset(path, compression_type=compression_of(path), buffer_size=1 << 20)
        try:
            for batch in dataset.batch(self._batch_size).as_numpy_iterator():
                read += len(batch)
                PROGRESS["records"] += len(batch)
                records = batch.tolist()
                if gzip:  # framing: 8 bytes length + 4 CRC before each record, 4 CRC after
                    size += sum(map(len, records)) + 16 * len(records)
                yield records
            problem = gzip_stream_problem(path, size) if gzip else None
            if problem:
                raise CorruptFileError(problem)
            PROGRESS["files"] += 1
        except (tf.errors.OpError, OSError) as e:
            message = f"{type(e).__name__}: {clean_message(e)}"
            # The failed batch held the intact records just before the damage: read them one by one (kept when
            # skipping, and counted in the error either way).
            tail = []
            try:
                for record in dataset.skip(read).as_numpy_iterator():
                    tail.append(record)
            except (tf.errors.OpError, OSError):
                pass
            wrong = compression_problem(path)
            if not self._skip:
                if wrong:
                    raise CorruptFileError(f"TFRecord file {path} cannot be read: {wrong}") from None
                raise CorruptFileError(
                    f"corrupt or truncated TFRecord file {path} (after {read + len(tail)} intact records): "
                    f"{message}; set skip_corrupt_files to keep the records before the damage, skip the rest of "
                    "such files and list them in the report"
                ) from None
            if tail:
                read += len(tail)
                yield tail
            self._corrupt.inc()
            yield beam.pvalue.TaggedOutput(
                CORRUPT_FILES, (path, read, f"{wrong}; {message}" if wrong else message)
            )


def count_records(path: str) -> int:
    """The records the reader (`_ReadFileDoFn`) emits for the file at `path` when it reads to the end or skips
    corrupt files: all of them, or those before the damage. Counted in C++ (tf.data), one by one after damage.

    Without skip_corrupt_files a damaged file fails the reader; the count does not matter then."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(path, compression_type=compression_of(path), buffer_size=1 << 20)
    try:
        sizes = dataset.batch(COUNT_BATCH).map(lambda batch: tf.shape(batch, out_type=tf.int64)[0])
        return int(sizes.reduce(np.int64(0), lambda n, size: n + size))
    except (tf.errors.OpError, OSError):
        n = 0
        try:
            for _ in dataset.as_numpy_iterator():
                n += 1
        except (tf.errors.OpError, OSError):
            pass
        return n


class CountRecords(beam.PTransform):
    """PBegin -> (key, records in `files`) for each (key, files) of `groups`, by `count_records` per file: no
    record leaves the counting step."""

    def __init__(self, groups: list[tuple[int, list[str]]]):
        super().__init__()
        self._pairs = [(key, path) for key, files in groups for path in files]
        self._keys = [key for key, _ in groups]

    def expand(self, pbegin):
        pair = tuple[int, int]
        counts = (
            pbegin
            | "Files" >> beam.Create(self._pairs)
            | "Distribute" >> beam.Reshuffle()
            | "Count" >> beam.MapTuple(lambda key, path: (key, count_records(path))).with_output_types(pair)
        )
        zeros = pbegin | "Zeros" >> beam.Create([(key, 0) for key in self._keys]).with_output_types(pair)
        return (
            (counts, zeros)
            | "Flatten" >> beam.Flatten().with_output_types(pair)
            | "Sum" >> beam.CombinePerKey(sum).with_output_types(pair)
        )


GZIP_MAGIC = b"\x1f\x8b"


def compression_problem(path: str) -> str | None:
    """Why a file's compression does not match its name (gzip iff it ends in .gz), or None."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(2)
    except (tf.errors.OpError, OSError):
        return None
    named_gzip = compression_of(path) == "GZIP"
    if named_gzip and head and head != GZIP_MAGIC:
        return (
            "it is named *.gz but is not gzip-compressed (compression is chosen by the .gz suffix): rename it "
            "without .gz if it holds uncompressed TFRecords"
        )
    if not named_gzip and head == GZIP_MAGIC:
        return (
            "it is gzip-compressed but not named *.gz (compression is chosen by the .gz suffix): rename it to "
            "end in .gz"
        )
    return None


def clean_message(error: BaseException) -> str:
    """The first line of an error's message without TensorFlow's `{{function_node ...}}` internals."""
    import re

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return re.sub(r"\s*\{\{function_node [^}]*\}\}\s*", " ", text).strip()


class ReadTFRecordFiles(beam.PTransform):
    """PBegin -> DoOutputsTuple: main = lists of serialized records (batches), CORRUPT_FILES = (path, read, error).

    `files` are resolved when the pipeline is built (see list_files); an empty list reads nothing.
    """

    def __init__(self, files: list[str], batch_size: int = 1024, skip_corrupt_files: bool = False):
        super().__init__()
        self._files = list(files)
        self._batch_size = batch_size
        self._skip = skip_corrupt_files

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "Distribute" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(_ReadFileDoFn(self._batch_size, self._skip)).with_outputs(
                CORRUPT_FILES, main="batches"
            )
        )
