"""The record model: RecordConfig, the value checks (scalar and vectorised agree), format detection."""

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from record_builders import classify_log, plain, regress_log

from tfx_curator.components.curator.reading import parsing, records
from tfx_curator.components.curator.reading.records import RecordConfig, RecordError

BINARY = RecordConfig()
REGRESSION = RecordConfig(task="regression")


def test_record_config_validation():
    with pytest.raises(ValueError):
        RecordConfig(task="multiclass")
    with pytest.raises(ValueError):
        RecordConfig(prediction_key="timestamp")
    with pytest.raises(ValueError):
        RecordConfig(id_feature="x", prediction_key="x")


def test_reject_reasons_are_unique_and_hold_the_id_codes():
    assert len(set(records.REJECT_REASONS)) == len(records.REJECT_REASONS)
    assert set(parsing.ID_REASONS) <= set(records.REJECT_REASONS)


def _outcome(check, *args):
    try:
        return check(*args) is not None
    except RecordError as e:
        assert e.reason in records.REJECT_REASONS
        return False


_FLOATS = st.one_of(st.floats(), st.sampled_from([0.0, 1.0, -0.0, math.nan, math.inf, -1.0, 1e-45]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_FLOATS, max_size=10), st.sampled_from([BINARY, REGRESSION]))
def test_vectorised_value_checks_agree_with_the_scalar_ones(values, config):
    array = np.asarray(values, dtype=np.float64)
    assert records.predictions_ok(array, config).tolist() == [
        _outcome(records.check_prediction, v, config) for v in values
    ]
    assert records.hidden_norms_ok(array).tolist() == [_outcome(records.check_hidden_norm, v) for v in values]


def test_model_version_limit():
    versions = [b"", b"v" * parsing.MAX_ID_BYTES, b"v" * (parsing.MAX_ID_BYTES + 1)]
    assert records.model_versions_ok(versions).tolist() == [True, True, False]
    with pytest.raises(RecordError, match="model_version_too_long"):
        records.check_model_version(versions[2])


def test_format_detection():
    logs = [classify_log([b"a"], [0.5]).SerializeToString(), regress_log([b"b"], [0.5]).SerializeToString()]
    plains = [plain(example_id=b"a", prediction=0.5), plain(example_id=b"b", prediction=0.1)]
    assert all(map(records.is_prediction_log, logs)) and not any(map(records.is_prediction_log, plains))
    assert not records.is_prediction_log(b"\xff\xff")
    assert records.detect_format(logs + plains[:1]) == records.FORMAT_PREDICTION_LOG
    assert records.detect_format(logs + plains) == records.FORMAT_PLAIN  # a tie is not "most"
    assert records.detect_format([]) is None


def test_import_does_not_load_tensorflow():
    """The record model is light at import time: TensorFlow loads with the decoders."""
    code = (
        "import sys; from tfx_curator.components.curator.reading import records; "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_serving') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
