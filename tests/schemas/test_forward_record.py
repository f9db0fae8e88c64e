"""The forward-record TFDV schema (schemas/forward_record.pbtxt): it matches the plain format, and validates."""

import os

from record_builders import plain, write_tfrecords
from tensorflow_metadata.proto.v0 import anomalies_pb2 as anomaly_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from tfx_curator.components.curator.reading.plain_format import PLAIN_FEATURES
from tfx_curator.components.curator.reading.records import RecordConfig
from tfx_curator.schemas import forward_record


def test_schema_matches_plain_features():
    schema = forward_record.forward_record_schema()
    by_name = {f.name: f for f in schema.feature}
    kinds = {"bytes_list": schema_pb2.BYTES, "float_list": schema_pb2.FLOAT, "int64_list": schema_pb2.INT}
    assert list(by_name) == [name for name, *_ in PLAIN_FEATURES]
    for name, kind, _, required, _ in PLAIN_FEATURES:
        assert by_name[name].type == kinds[kind], name
        assert (by_name[name].presence.min_fraction == 1.0) == required, name
    renamed = forward_record.forward_record_schema(
        RecordConfig(id_feature="uid", hidden_norm_key=None, task="regression")
    )
    names = {f.name for f in renamed.feature}
    assert "uid" in names and "hidden_norm" not in names
    assert not {f.name: f for f in renamed.feature}["prediction"].float_domain.HasField("max")


def anomaly_types(anomalies) -> dict:
    return {
        name: {anomaly_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}
        for name, info in anomalies.anomaly_info.items()
    }


def test_validate_plain_records_with_tfdv(tmp_path):
    good = [
        plain(example_id=b"id%d" % i, prediction=i / 20, timestamp=1_700_000_000 + i, hidden_norm=1.0)
        for i in range(20)
    ]
    files = {
        "good": good,
        # 3 records without an id, one NaN prediction, one negative hidden norm
        "bad_values": good[:10]
        + [plain(prediction=0.5) for _ in range(3)]
        + [plain(example_id=b"i", prediction=float("nan"), hidden_norm=-1.0)],
        "wrong_type": [plain(example_id=b"id%d" % i, prediction=1) for i in range(5)],  # int64 prediction
    }
    for name, raws in files.items():
        write_tfrecords(str(tmp_path / f"{name}.gz"), raws)
    assert anomaly_types(forward_record.validate_plain_records(str(tmp_path / "good.gz"))) == {}
    bad_values = anomaly_types(forward_record.validate_plain_records(str(tmp_path / "bad_values.gz")))
    assert bad_values["example_id"] == {"FEATURE_TYPE_LOW_FRACTION_PRESENT"}  # missing id
    assert set(bad_values) == {"example_id", "prediction", "hidden_norm"}
    assert anomaly_types(forward_record.validate_plain_records(str(tmp_path / "wrong_type.gz"))) == {
        "prediction": {"UNEXPECTED_DATA_TYPE"}
    }


def test_schema_file_is_shipped():
    assert os.path.exists(forward_record.forward_record_schema_path())


def test_file_names_are_the_record_config_defaults():
    defaults = RecordConfig()
    assert {attr: getattr(defaults, attr) for attr in forward_record.FILE_NAMES} == forward_record.FILE_NAMES
    assert forward_record.forward_record_schema(defaults) == forward_record.forward_record_schema()


def test_mixed_feature_kinds_are_an_anomaly(tmp_path):
    path = write_tfrecords(
        str(tmp_path / "mixed.gz"),
        [plain(example_id=b"a", prediction=0.5), plain(example_id=b"b", prediction=1), b"\xff\xff"],
    )
    kinds, where, unparseable = forward_record.feature_kinds([path])
    assert kinds["prediction"] == {"float_list": 1, "int64_list": 1} and unparseable == 1
    assert where["prediction"]["int64_list"] == (path, 1)
    anomalies = forward_record.feature_kind_anomalies([path])
    assert set(anomalies.anomaly_info) == {"prediction", "(records)"}
