"""TFRecord files read with tf.data inside a DoFn: listing, sampling, and damaged files named, never shortened."""

import gzip
import zlib

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from record_builders import write_tfrecords

from tfx_curator.components.curator.reading import tfrecord_files

RECORDS = [b"record-%d" % i for i in range(10)]


def test_list_files_is_sorted_and_refuses_folders(tmp_path):
    for name in ("b.gz", "a.gz"):
        write_tfrecords(str(tmp_path / name), RECORDS[:1])
    assert tfrecord_files.list_files(str(tmp_path / "*.gz")) == [
        str(tmp_path / "a.gz"),
        str(tmp_path / "b.gz"),
    ]
    (tmp_path / "folder").mkdir()
    with pytest.raises(tfrecord_files.InputFilesError, match="matches 1 folder"):
        tfrecord_files.list_files(str(tmp_path / "*"))
    assert tfrecord_files.list_files(str(tmp_path / "none-*")) == []


def test_first_records_in_order_across_files(tmp_path):
    a = write_tfrecords(str(tmp_path / "a.gz"), RECORDS[:3])
    b = write_tfrecords(str(tmp_path / "b"), RECORDS[3:])
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not a tfrecord file")
    assert tfrecord_files.first_records([str(broken), a, b], 5) == RECORDS[:5]  # the broken file passed over
    assert tfrecord_files.first_records([a], 0) == []


def test_compression_follows_the_name(tmp_path):
    assert tfrecord_files.compression_of("x.gz") == tfrecord_files.compression_of("x.gzip") == "GZIP"
    assert tfrecord_files.compression_of("x.tfrecord") == ""
    plain = write_tfrecords(str(tmp_path / "plain"), RECORDS)
    zipped = write_tfrecords(str(tmp_path / "zipped.gz"), RECORDS)
    assert tfrecord_files.compression_problem(plain) is None
    assert tfrecord_files.compression_problem(zipped) is None
    (tmp_path / "fake.gz").write_bytes((tmp_path / "plain").read_bytes())
    assert "not gzip-compressed" in tfrecord_files.compression_problem(str(tmp_path / "fake.gz"))
    (tmp_path / "hidden").write_bytes((tmp_path / "zipped.gz").read_bytes())
    assert "not named *.gz" in tfrecord_files.compression_problem(str(tmp_path / "hidden"))


def _framed_size(records) -> int:
    return sum(len(r) + 16 for r in records)


def test_gzip_stream_problem(tmp_path):
    path = write_tfrecords(str(tmp_path / "ok.gz"), RECORDS)
    assert tfrecord_files.gzip_stream_problem(path, _framed_size(RECORDS)) is None
    # two concatenated gzip members (e.g. `cat a.gz b.gz`) hold every record: complete
    data = (tmp_path / "ok.gz").read_bytes()
    (tmp_path / "two.gz").write_bytes(data + data)
    assert tfrecord_files.gzip_stream_problem(str(tmp_path / "two.gz"), 2 * _framed_size(RECORDS)) is None
    # a stream cut where tf.data happens to see a record boundary: only the trailer tells
    content = gzip.decompress(data)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    cut = compressor.compress(content) + compressor.flush(zlib.Z_SYNC_FLUSH)  # no trailer
    (tmp_path / "cut.gz").write_bytes(cut)
    assert "truncated gzip stream" in tfrecord_files.gzip_stream_problem(
        str(tmp_path / "cut.gz"), len(content)
    )


def test_clean_message_drops_tensorflow_internals():
    error = tf.errors.DataLossError(
        None, None, "corrupted record at 12 {{function_node __inference_x}} more\nstack"
    )
    assert tfrecord_files.clean_message(error) == "corrupted record at 12 more"
    assert tfrecord_files.clean_message(ValueError("")) == ""


def test_read_file_dofn_keeps_the_intact_records_of_a_damaged_file_when_skipping(tmp_path):
    path = write_tfrecords(str(tmp_path / "damaged"), RECORDS)
    data = bytearray((tmp_path / "damaged").read_bytes())
    data[-3] ^= 0xFF  # the CRC of the last record
    (tmp_path / "damaged").write_bytes(bytes(data))
    out = list(tfrecord_files._ReadFileDoFn(4, skip_corrupt_files=True).process(path))
    batches = [o for o in out if isinstance(o, list)]
    corrupt = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)]
    assert [r for b in batches for r in b] == RECORDS[:-1]
    assert len(corrupt) == 1 and corrupt[0][:2] == (path, 9) and "DataLossError" in corrupt[0][2]
    with pytest.raises(tfrecord_files.CorruptFileError, match="after 9 intact records"):
        list(tfrecord_files._ReadFileDoFn(4, skip_corrupt_files=False).process(path))


def test_read_tfrecord_files_batches_every_file(tmp_path):
    files = [
        write_tfrecords(str(tmp_path / "a.gz"), RECORDS[:7]),
        write_tfrecords(str(tmp_path / "b"), RECORDS[7:]),
    ]
    with BeamTestPipeline() as pipeline:
        read = pipeline | tfrecord_files.ReadTFRecordFiles(files, batch_size=3)
        assert_that(read["batches"] | beam.FlatMap(lambda b: b), equal_to(RECORDS), label="Records")
        assert_that(read["batches"] | beam.Map(len), equal_to([3, 3, 1, 3]), label="Batches")
        assert_that(read[tfrecord_files.CORRUPT_FILES], equal_to([]), label="NoCorrupt")


@pytest.mark.parametrize("name", ["damaged", "damaged.gz", "truncated.gz"])
def test_count_records_counts_what_the_reader_emits_when_skipping(tmp_path, name):
    path = write_tfrecords(str(tmp_path / name), RECORDS)
    data = bytearray((tmp_path / name).read_bytes())
    if name == "truncated.gz":
        data = data[: len(data) // 2]
    else:
        data[-3 if name == "damaged" else len(data) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    out = tfrecord_files._ReadFileDoFn(4, skip_corrupt_files=True).process(path)
    emitted = sum(len(o) for o in out if isinstance(o, list))
    assert emitted < len(RECORDS)
    assert tfrecord_files.count_records(path) == emitted


def test_count_records_sums_the_files_of_each_key_and_counts_empty_keys(tmp_path):
    a = write_tfrecords(str(tmp_path / "a.gz"), RECORDS[:7])
    b = write_tfrecords(str(tmp_path / "b"), RECORDS[7:])
    with BeamTestPipeline() as pipeline:
        counts = pipeline | tfrecord_files.CountRecords([(0, [a, b]), (1, [b]), (2, [])])
        assert_that(counts, equal_to([(0, 10), (1, 3), (2, 0)]))
