"""Untrusted data (issue 8, SECURITY.md): nothing read is ever unpickled, evaluated or used to name a file.

- A static scan of components/: no pickle / marshal / shelve / dill / yaml loading, no eval / exec / compile /
  __import__, no numpy or pandas loaders that unpickle, no subprocess or os.system. Beam pickles the pipeline's
  own code (DoFns), never the data read; that is not in components/' source and not covered here.
- A run on hostile content (path-like ids and model versions, HTML in feature names and values): every file
  written is one of the job's fixed names under the two output folders, and report.html escapes the content.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import apache_beam as beam
import helpers

from tfx_curator.components.curator.beam import job
from tfx_curator.components.curator.options import CurationOptions

COMPONENTS = Path(__file__).resolve().parents[2] / "components"

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "yaml",
                     "joblib", "subprocess", "pty", "code", "codeop"}  # fmt: skip
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}
FORBIDDEN_ATTRIBUTES = {  # module-qualified calls that unpickle, run code or start processes
    ("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execve"), ("os", "spawnv"),
    ("importlib", "import_module"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
    ("torch", "load"), ("yaml", "load"), ("yaml", "unsafe_load"),
}  # fmt: skip


def _findings(path: Path, root: Path = COMPONENTS.parent) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            out += [
                f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            out.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                out.append(f"{where} {f.id}(...)")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if (f.value.id, f.attr) in FORBIDDEN_ATTRIBUTES:
                    out.append(f"{where} {f.value.id}.{f.attr}(...)")
            for kw in node.keywords:  # np.load(..., allow_pickle=True) and friends
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    out.append(f"{where} allow_pickle")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("loads", "load")
            and isinstance(node.value, ast.Name)
        ):
            if node.value.id in FORBIDDEN_MODULES:
                out.append(f"{where} {node.value.id}.{node.attr}")
    return out


def test_components_never_unpickle_evaluate_or_execute_anything():
    files = sorted(COMPONENTS.rglob("*.py"))
    assert len(files) > 10  # the scan sees the code
    findings = [f for path in files for f in _findings(path)]
    assert findings == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "components" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import pickle\nfrom yaml import load\nimport numpy as np\n"
        "def f(raw, p):\n    eval(raw)\n    exec(raw)\n    np.load(p, allow_pickle=True)\n"
        "    import os\n    os.system(raw)\n    return pickle.loads(raw)\n"
    )
    found = " ".join(_findings(bad, tmp_path))
    for what in ("import pickle", "from yaml", "eval(", "exec(", "allow_pickle", "os.system", "pickle.loads"):
        assert what in found, what


# ---------------------------------------------------------------------------------------------------------
# Hostile content
# ---------------------------------------------------------------------------------------------------------

HOSTILE_IDS = [
    b"../../escape",
    b"/tmp/absolute",
    b"Split-evil/../../x",
    b"..",
    b"%s%n{0}",
    b"a\x00b",
    b"\xff\xfe",
]
SCRIPT = "<script>alert(1)</script>"
ALLOWED = [
    r"curated/Split-train/data_tfrecord-\d{5}-of-\d{5}\.gz",
    r"report/report\.(json|html)",
    r"report/rejects/rejects-\d{5}-of-\d{5}\.tfrecord\.gz",
    r"report/_job/figures\.json",
    r"report/statistics/Split-train/(raw|curated)\.pb",
]


def test_hostile_content_never_names_a_file_and_is_escaped_in_the_html(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    ids = HOSTILE_IDS + [f"id-{i}".encode() for i in range(60)]
    examples = [
        helpers.make_example(i, k % 2, **{SCRIPT: b"<b>x</b>", "x": float(k)}) for k, i in enumerate(ids)
    ]
    examples.append(helpers.make_example(b"../" * 400, 1))  # over 1 KiB: rejected, its bytes in rejects/
    records = [helpers.make_record(i, 0.3, 1.0, 1000, b"../../version") for i in ids]
    helpers.write_tfrecords(str(inputs / "ex" / "data.gz"), examples)
    helpers.write_tfrecords(str(inputs / "rec" / "data.gz"), records)
    report = job.run(
        beam.Pipeline,
        {"train": str(inputs / "ex" / "*")},
        str(inputs / "rec" / "*"),
        CurationOptions(budget=1.0, seed=1),
        str(out / "curated"),
        str(out / "report"),
        compute_statistics=True,
    )
    assert report["splits"]["train"]["accounting"]["selected"] == len(ids)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written and all(any(re.fullmatch(a, w) for a in ALLOWED) for w in written), written
    assert sorted(str(p.relative_to(inputs)) for p in inputs.rglob("*") if p.is_file()) == [
        os.path.join("ex", "data.gz"),
        os.path.join("rec", "data.gz"),
    ]
    html = (out / "report" / "report.html").read_text()
    assert SCRIPT in str(report["splits"]["train"]["unbiasedness"]["features"])  # the feature is reported...
    assert SCRIPT not in html and "&lt;script&gt;" in html  # ... and escaped in the HTML
