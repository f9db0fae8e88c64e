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


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(folder, files: dict) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


OLD = {"Split-train/a.gz": b"old", "report/train/report.json": b"{old}", "Split-eval/e.gz": b"eval"}
NEW = {"Split-train/a.gz": b"new", "report/train/report.json": b"{new}"}


def test_commit_publishes_a_new_folder_and_replaces_an_old_one(tmp_path):
    target = tmp_path / "out"
    staging = publish.stage(str(target))
    assert os.path.dirname(staging) == str(tmp_path) and ".tmp-" in staging
    _write(tmp_path / os.path.basename(staging), NEW)
    publish.commit(staging, str(target))
    assert _tree(target) == NEW and os.listdir(tmp_path) == ["out"]
    # replacing: the other split and its report are carried over, this split's outputs replaced
    _write(target, OLD)
    staging = publish.stage(str(target))
    publish.carry_over(str(target), staging, ["Split-train", "report/train"])
    assert _tree(tmp_path / os.path.basename(staging)) == {"Split-eval/e.gz": b"eval"}
    _write(tmp_path / os.path.basename(staging), NEW)
    publish.commit(staging, str(target))
    assert _tree(target) == {**NEW, "Split-eval/e.gz": b"eval"} and os.listdir(tmp_path) == ["out"]


def test_an_empty_target_folder_is_replaced(tmp_path):
    """The TFX executor's case: the orchestrator created the artifact's folder, empty."""
    target = tmp_path / "7"
    target.mkdir()
    staging = publish.stage(str(target))
    _write(tmp_path / os.path.basename(staging), NEW)
    publish.commit(staging, str(target))
    assert _tree(target) == NEW and os.listdir(tmp_path) == ["7"]


@pytest.mark.parametrize(
    "state, expected",
    [
        ("staging_incomplete", OLD),  # killed while the job ran: the old output stays
        ("staging_complete_target_present", OLD),  # killed just before the first rename
        ("between_renames", NEW),  # killed between the two renames: the complete new output moves in
        ("old_aside_only", OLD),  # (a staging folder deleted by hand): the old output moves back
        ("old_not_deleted", NEW),  # killed while deleting the old output
    ],
)
def test_recover_leaves_the_old_or_the_complete_new_output(tmp_path, state, expected):
    target = tmp_path / "out"
    _write(target, OLD)
    staging = tmp_path / "out.tmp-abc"
    _write(staging, NEW)
    if state == "staging_complete_target_present":
        (staging / publish.COMPLETE_MARKER).write_text("complete\n")
    if state in ("between_renames", "old_aside_only", "old_not_deleted"):
        (staging / publish.COMPLETE_MARKER).write_text("complete\n")
        target.rename(tmp_path / "out.old-def")
    if state == "old_aside_only":
        publish.rmtree(str(staging))
    if state == "old_not_deleted":
        staging.rename(target)
        (target / publish.COMPLETE_MARKER).unlink()
    publish.recover(str(target))
    assert _tree(target) == expected
    assert os.listdir(tmp_path) == ["out"]


def test_discard_and_recover_without_anything_to_do(tmp_path):
    assert publish.recover(str(tmp_path / "absent")) == []
    staging = publish.stage(str(tmp_path / "absent"))
    publish.discard(staging)
    assert os.listdir(tmp_path) == []


def test_a_staging_folder_is_named_before_it_is_created(tmp_path):
    """The CLI's signal handler must know the folder as soon as it exists: name first, then create."""
    target = str(tmp_path / "out")
    name = publish.staging_path(target)
    assert name.startswith(target + publish.TMP_INFIX) and not os.path.exists(name)
    assert publish.stage(target, name) == name and os.path.isdir(name)
    assert publish.staging_path(target) != name  # a new name each time
