"""Crash-safe outputs: inputs kept apart from the output, results staged in a sibling folder, published by rename.

The output-committer pattern (Hadoop/Spark): a run writes everything (curated splits, report, rejects,
statistics) into `<target>.tmp-<id>` next to the target, on the same filesystem, and only after the accounting
check passed publishes it:

    1. target absent (or an empty folder): one rename, `<target>.tmp-<id>` -> `<target>`;
    2. target present: `<target>` -> `<target>.old-<id>`, `<target>.tmp-<id>` -> `<target>`, delete the old one.

A kill at any moment therefore leaves the old output or the complete new one at `<target>`, except between the
two renames of case 2, where `<target>` is absent for an instant: `<target>.tmp-<id>` is then complete (it holds
the `_COMPLETE` marker written just before the first rename) and `recover` (run by the next run, before anything
else) moves it in; an `.old-*` sibling without a complete `.tmp-*` one is moved back. Then every other `.tmp-*`
and `.old-*` sibling of the target is deleted: they are what a killed run left behind (one writer per output).

Local paths use `os` (atomic renames on one filesystem, and no TensorFlow import); other schemes (gs://, ...) go
through `tf.io.gfile`, whose directory renames copy object by object: not atomic there (the TFX executor still
publishes the report artifact before the curated one, and MLMD records neither before Do returns).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from collections.abc import Iterable

TMP_INFIX = ".tmp-"
OLD_INFIX = ".old-"
COMPLETE_MARKER = "_COMPLETE"


class OutputConflictError(ValueError):
    """The output folder and an input path overlap: publishing would replace (or read) the inputs."""


# ---------------------------------------------------------------------------------------------------------
# File systems: local paths through os (no TensorFlow), others through tf.io.gfile
# ---------------------------------------------------------------------------------------------------------


def is_local(path: str) -> bool:
    return "://" not in path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else _gfile().exists(path)


def isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else _gfile().isdir(path)


def listdir(path: str) -> list[str]:
    return sorted(os.listdir(path) if is_local(path) else (p.rstrip("/") for p in _gfile().listdir(path)))


def makedirs(path: str) -> None:
    os.makedirs(path, exist_ok=True) if is_local(path) else _gfile().makedirs(path)


def rename(src: str, dst: str) -> None:
    os.rename(src, dst) if is_local(src) else _gfile().rename(src, dst, overwrite=False)


def rmtree(path: str) -> None:
    if not exists(path):
        return
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    else:
        _gfile().rmtree(path) if _gfile().isdir(path) else _gfile().remove(path)


def copy_tree(src: str, dst: str) -> None:
    """Copy a folder (hard links where the filesystem allows: the files are never modified afterwards)."""
    if is_local(src):
        shutil.copytree(src, dst, copy_function=_link_or_copy)
        return
    gfile = _gfile()
    for root, _, files in gfile.walk(src):
        rel = posixpath.relpath(root, src)
        target = dst if rel == "." else posixpath.join(dst, rel)
        gfile.makedirs(target)
        for name in files:
            gfile.copy(posixpath.join(root, name), posixpath.join(target, name))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _join(folder: str, name: str) -> str:
    return os.path.join(folder, name) if is_local(folder) else posixpath.join(folder, name)


# ---------------------------------------------------------------------------------------------------------
# Inputs apart from the output
# ---------------------------------------------------------------------------------------------------------


def normalize(path: str) -> str:
    """Absolute path with symlinks resolved (local), or the normalised URI (other schemes)."""
    if is_local(path):
        return os.path.realpath(path)
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def _contains(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _split_glob(pattern: str) -> tuple[str, list[str]]:
    """(base folder, the path components from the first one holding a wildcard on)."""
    sep = os.sep if is_local(pattern) else "/"
    parts = pattern.split(sep)
    first = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    return sep.join(parts[:first]) or sep, parts[first:]


def glob_reaches(pattern: str, folder: str) -> bool:
    """Whether `pattern` can match `folder` itself or a path inside it (so a re-run would read it)."""
    import fnmatch

    base, wild = _split_glob(pattern)
    if not wild:
        return False
    base, folder = normalize(base), normalize(folder)
    if not _contains(base, folder) or base == folder:
        return False
    rel = folder[len(base.rstrip("/")) + 1 :].split("/")
    return len(wild) >= len(rel) and all(fnmatch.fnmatchcase(r, w) for r, w in zip(rel, wild))


def check_apart(
    output: str, inputs: Iterable[tuple[str, str]], patterns: Iterable[tuple[str, str]] = ()
) -> None:
    """Raise OutputConflictError when `output` contains, equals or lies inside an input path, or an input glob
    can match the output folder or something in it (a re-run would read its own output).

    inputs: (what, path) pairs, e.g. ("--examples", a file or folder a glob matched); patterns: (what, glob).
    Symlinks are resolved, so a link to the output folder (or from it) is caught too.
    """
    out = normalize(output)
    for what, path in inputs:
        p = normalize(path)
        if _contains(out, p) or _contains(p, out):
            where = "is inside the output folder" if _contains(out, p) else "contains the output folder"
            raise OutputConflictError(
                f"{what} path {path} {where} {output}: a run never writes where it reads; "
                "choose an --output outside the inputs"
            )
    for what, pattern in patterns:
        if glob_reaches(pattern, output):
            raise OutputConflictError(
                f"{what} {pattern!r} would match the output folder {output} or files in it: a run never writes "
                "where it reads; choose an --output outside the inputs"
            )


# ---------------------------------------------------------------------------------------------------------
# Staging and publishing
# ---------------------------------------------------------------------------------------------------------


def _parent_and_name(target: str) -> tuple[str, str]:
    target = target.rstrip("/") or "/"
    split = os.path.split if is_local(target) else posixpath.split
    return split(target)


def _siblings(target: str, infix: str) -> list[str]:
    parent, name = _parent_and_name(target)
    if not exists(parent):
        return []
    return [_join(parent, n) for n in listdir(parent) if n.startswith(name + infix)]


def staging_path(target: str) -> str:
    """A new staging folder's name `<target>.tmp-<id>` next to `target` (same filesystem: renames are cheap).

    Name it before creating it (`stage`), so that a signal handler that cleans up knows it as soon as it exists.
    """
    return f"{target.rstrip('/')}{TMP_INFIX}{uuid.uuid4().hex[:12]}"


def stage(target: str, staging: str | None = None) -> str:
    """Create the empty staging folder `staging` (default: a new `staging_path(target)`); returns it."""
    staging = staging or staging_path(target)
    makedirs(staging)
    return staging


def carry_over(target: str, staging: str, replaced: Iterable[str]) -> None:
    """Copy what `target` holds into `staging`, except the `replaced` relative paths (and their contents).

    Lets a run that writes part of a folder (one split of a multi-split output) still publish the whole folder
    with one rename: the parts it does not replace are hard-linked (or copied) from the current output.
    """
    replaced = {r.strip("/") for r in replaced}
    parents = {posixpath.dirname(r) for r in replaced} - {""}

    def walk(rel: str) -> None:
        src = _join(target, rel) if rel else target
        for name in listdir(src):
            child = posixpath.join(rel, name) if rel else name
            if child in replaced:
                continue
            if child in parents and isdir(_join(target, child)):
                makedirs(_join(staging, child))
                walk(child)
            elif isdir(_join(target, child)):
                copy_tree(_join(target, child), _join(staging, child))
            else:
                _copy_file(_join(target, child), _join(staging, child))

    if exists(target):
        walk("")


def _copy_file(src: str, dst: str) -> None:
    if is_local(src):
        _link_or_copy(src, dst)
    else:
        _gfile().copy(src, dst)


def commit(staging: str, target: str) -> None:
    """Publish the complete `staging` folder as `target` (see the module docstring for what a kill leaves)."""
    marker = _join(staging, COMPLETE_MARKER)
    _write_marker(marker)
    if exists(target) and isdir(target) and not listdir(target):
        _remove_empty_dir(target)
    if exists(target):
        old = f"{target.rstrip('/')}{OLD_INFIX}{uuid.uuid4().hex[:12]}"
        rename(target, old)
        rename(staging, target)
        rmtree(old)
    else:
        rename(staging, target)
    rmtree(_join(target, COMPLETE_MARKER))


def discard(staging: str | None, busy: bool = False) -> None:
    """Delete a staging folder (a failed or interrupted run); nothing was published.

    busy: threads may still be writing into it (a signal stops the run mid-job). Locally the folder is first
    renamed and a file put in its place, so that they fail instead of re-creating it while it is deleted.
    """
    if not staging or not exists(staging):
        return
    if busy and is_local(staging) and os.path.isdir(staging):
        dead = staging + ".discarded"
        os.rename(staging, dead)
        with open(staging, "w", encoding="utf-8"):
            pass
        shutil.rmtree(dead, ignore_errors=True)
        os.remove(staging)
        return
    rmtree(staging)


def recover(target: str) -> list[str]:
    """Repair what a killed run left next to `target`; returns the paths it deleted or moved.

    `target` absent with a complete `.tmp-*` sibling (killed between the two renames of a publish): that new
    output is moved in; else an `.old-*` sibling is moved back. Every other `.tmp-*` / `.old-*` sibling is deleted.
    """
    tmps, olds = _siblings(target, TMP_INFIX), _siblings(target, OLD_INFIX)
    touched = []
    if not exists(target):
        complete = [t for t in tmps if exists(_join(t, COMPLETE_MARKER))]
        if complete:
            rename(complete[0], target)
            rmtree(_join(target, COMPLETE_MARKER))
            touched.append(complete[0])
            tmps.remove(complete[0])
        elif olds:
            rename(olds[0], target)
            touched.append(olds[0])
            olds.remove(olds[0])
    for leftover in tmps + olds:
        rmtree(leftover)
        touched.append(leftover)
    return touched


def _write_marker(path: str) -> None:
    if is_local(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write("complete\n")
    else:
        with _gfile().GFile(path, "w") as f:
            f.write("complete\n")


def _remove_empty_dir(path: str) -> None:
    os.rmdir(path) if is_local(path) else _gfile().rmtree(path)
