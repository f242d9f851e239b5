"""docs/architecture.md says what is so: its file table lists every module there is (and nothing
that is not), and every structural claim in it names the test that checks it."""

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _table_paths():
    """The paths the file table names (a cell may name several, or a pattern)."""
    section = DOC.split("## Files", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| (.+?) \|", section, re.M)
    return [p for cell in cells for p in re.findall(r"`([^`]+)`", cell) if p != "file"]


def _is_empty_package(path):
    """An ``__init__.py`` holding at most a docstring: a package marker, not a module to list."""
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
    )


def _listed(relative, paths):
    names = {relative, f"bidsxai/{relative}"}
    return any(p in names or fnmatch(relative, p.removeprefix("bidsxai/")) for p in paths)


def test_the_file_table_lists_every_module():
    paths = _table_paths()
    package = ROOT / "bidsxai"
    missing = [
        str(p.relative_to(package))
        for p in sorted(package.rglob("*.py"))
        if not _is_empty_package(p) and not _listed(str(p.relative_to(package)), paths)
    ]
    assert missing == []


def test_the_file_table_names_nothing_that_is_not_there():
    absent = []
    for path in _table_paths():
        candidates = [ROOT / path, ROOT / "bidsxai" / path]
        found = any(c.exists() for c in candidates) or any(
            list(ROOT.glob(path)) + list((ROOT / "bidsxai").glob(path))
        )
        if not found:
            absent.append(path)
    assert absent == []


def test_every_claim_names_a_test_that_exists():
    """Each "(checked by tests/test_x.py::name)" of the document names a test function there."""
    cited = re.findall(r"checked by\s+`?(tests/[\w/]+\.py)::(\w+)`?", DOC)
    assert len(cited) >= 8
    missing = []
    for file, name in cited:
        source = (ROOT / file).read_text() if (ROOT / file).is_file() else ""
        if not re.search(rf"^def {name}\(", source, re.M):
            missing.append(f"{file}::{name}")
    assert missing == []


def test_every_fact_kind_names_its_record_and_its_test():
    section = DOC.split("## Where each kind of fact lives", 1)[1].split("\n## ", 1)[0]
    items = [i for i in re.split(r"\n- ", section) if i.startswith("**")]
    assert len(items) >= 8
    for item in items:
        assert re.search(r"checked by\s", item), item.split("**")[1]


def test_computation_imports_no_report_builder():
    """Compute, then write, then report: the computing packages never load a report builder."""
    import subprocess
    import sys

    modules = [
        "bidsxai." + str(p.relative_to(ROOT / "bidsxai").with_suffix("")).replace("/", ".")
        for folder in ("evaluate", "explain", "group", "training", "preprocess")
        for p in sorted((ROOT / "bidsxai" / folder).glob("*.py"))
        if p.name != "__init__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('bidsxai.reports')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
