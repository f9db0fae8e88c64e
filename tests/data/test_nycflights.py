"""The embedded demo data: real nycflights13 rows, leak-free features, valid against the shipped schema."""

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv

from tfx_curator.data import nycflights
from tfx_curator.schemas import FLIGHTS_SCHEMA, load_schema


def _read(path):
    return [
        tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type="GZIP")
    ]


def test_full_year_table_is_leak_free_with_unique_ids():
    df = nycflights.load_flights()
    assert len(df) == 327_346  # flights with a known arr_delay
    assert df[nycflights.ID_FEATURE].is_unique
    assert not set(nycflights.LEAKY_COLUMNS) & set(df.columns)
    assert abs(df[nycflights.LABEL_FEATURE].mean() - 0.237) < 0.005
    assert df[nycflights.TIME_FEATURE].is_monotonic_increasing


def test_cancelled_label_keeps_unlabelled_rows():
    df = nycflights.load_flights("cancelled")
    assert len(df) == 336_776
    assert abs(df[nycflights.LABEL_FEATURE].mean() - 0.0245) < 0.001


def test_spans_are_written_by_month_and_valid(flights_spans):
    assert [s.month for s in flights_spans] == [1, 7]
    for span in flights_spans:
        examples = _read(span.path)
        assert len(examples) == span.rows == 1500
        months = {e.features.feature["month"].int64_list.value[0] for e in examples}
        assert months == {span.month}
        labels = np.array([e.features.feature["label"].int64_list.value[0] for e in examples])
        assert np.isclose(labels.mean(), span.positive_rate)
    for path, anomalies in nycflights.validate_spans([s.path for s in flights_spans]):
        assert not anomalies.anomaly_info, f"{path}: {anomalies}"


def test_schema_catches_out_of_domain_values(tmp_path):
    bad = tf.train.Example()
    bad.features.feature["example_id"].bytes_list.value.append(b"x")
    bad.features.feature["month"].int64_list.value.append(13)
    bad.features.feature["carrier"].bytes_list.value.append(b"ZZ")
    path = str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        w.write(bad.SerializeToString())
    stats = tfdv.generate_statistics_from_tfrecord(path)
    anomalies = tfdv.validate_statistics(stats, load_schema(FLIGHTS_SCHEMA))
    assert {"month", "carrier", "label"} <= set(anomalies.anomaly_info)
