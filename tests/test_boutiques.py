"""The Boutiques descriptor: generated from the parser, valid under ``bosh validate``, and the
command lines Boutiques builds from it are ones bidsxai's own parser reads back."""

import importlib.util
import json
import shlex
from pathlib import Path

import boutiques
import pytest

from bidsxai.cli import build_parser, main, parse_settings
from bidsxai.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = ROOT / "boutiques" / "bidsxai.json"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen", ROOT / "scripts" / "boutiques_descriptor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_descriptor_is_the_parsers():
    assert DESCRIPTOR.read_text() == _generator().text(), (
        "run python scripts/boutiques_descriptor.py"
    )
    ids = {i["id"] for i in json.loads(DESCRIPTOR.read_text())["inputs"]}
    options = {a.dest for a in build_parser()._actions} - {"help", "version", "list_architectures"}
    assert ids == options


def test_bosh_validates_the_descriptor():
    boutiques.bosh(["validate", str(DESCRIPTOR)])  # raises on an invalid descriptor


def test_a_boutiques_command_line_parses_back_to_the_invocation(tmp_path):
    invocation = {
        "bids_dir": "/data",
        "output_dir": "/out",
        "level": "participant",
        "participant_label": ["01", "02"],
        "nprocs": 2,
        "stop_on_first_crash": True,
        "methods": "gradcam,lrp",
        "tolerance_mm": 4.5,
        "groups": ["HC", "MS"],
        "derivatives": ["masks=/data/derivatives/masks"],
    }
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    command = boutiques.bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(path)]).shell_command
    settings = parse_settings(shlex.split(command)[1:])
    assert settings.participant_label == ["01", "02"] and settings.nprocs == 2
    assert settings.stop_on_first_crash and settings.methods == ["gradcam", "lrp"]
    assert settings.tolerance_mm == pytest.approx(4.5) and settings.groups == ["HC", "MS"]
    assert settings.derivatives == {"masks": Path("/data/derivatives/masks")}


def _command(invocation, tmp_path):
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    return boutiques.bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(path)]).shell_command


def test_the_descriptors_tests_pass(tmp_path, monkeypatch, capsys):
    """Each test case in the descriptor, built into a command line by Boutiques and run here."""
    tests = json.loads(DESCRIPTOR.read_text())["tests"]
    assert tests
    monkeypatch.chdir(tmp_path)
    for case in tests:
        argv = shlex.split(_command(case["invocation"], tmp_path))[1:]
        assert main(argv) == case["assertions"]["exit-code"], case["name"]
        assert len(capsys.readouterr().err.strip().splitlines()) == 1, case["name"]


def test_the_error_codes_are_the_exit_code_table():
    described = json.loads(DESCRIPTOR.read_text())["error-codes"]
    assert {e["code"]: e["description"] for e in described} == EXIT_CODES
    usage = (ROOT / "docs" / "usage.md").read_text().split("## Exit codes")[1].split("\n## ")[0]
    documented = set()
    for row in usage.splitlines():
        first = row.split("|")[1].strip() if row.startswith("| ") else ""
        documented |= {int(c) for c in first.split(",") if c.strip().isdigit()}
    assert documented == set(EXIT_CODES) | {0}
