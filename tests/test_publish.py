"""publish.py: inputs kept apart from the output, staging and the publish/recover protocol (no TF, no Beam)."""

import os

import pytest

from tfx_curator.components.curator import publish


@pytest.mark.parametrize(
    "pattern, folder, reaches",
    [
        ("data/*/*.gz", "data/out", True),  # data/out/x.gz would match
        ("data/*.gz", "data/out", False),
        ("data/*", "data/out", True),  # the output folder itself
        ("data/span-07/*.gz", "data/out", False),
        ("data/x.gz", "data/out", False),  # no wildcard
        ("gs://b/data/*/*", "gs://b/data/out", True),
        ("gs://b/data/*/*", "gs://b/other/out", False),
    ],
)
def test_glob_reaches(pattern, folder, reaches, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert publish.glob_reaches(pattern, folder) is reaches


def test_check_apart(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.gz").write_bytes(b"")
    os.symlink(tmp_path / "in", tmp_path / "link")
    publish.check_apart(str(tmp_path / "out"), [("--examples", str(tmp_path / "in" / "a.gz"))])
    for output in (tmp_path / "in", tmp_path, tmp_path / "link", tmp_path / "in" / "a.gz" / "x"):
        with pytest.raises(publish.OutputConflictError, match="never writes where it reads"):
            publish.check_apart(str(output), [("--examples", str(tmp_path / "in" / "a.gz"))])
