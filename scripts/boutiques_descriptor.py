"""Write boutiques/bidsxai.json, the Boutiques descriptor of the command line, from the parser
itself, so that it cannot drift from the options (a test regenerates it and compares).

Usage: python scripts/boutiques_descriptor.py [--check]
  --check: exit 1 if the committed descriptor differs from the parser's.
"""

import argparse
import json
import sys
from pathlib import Path

from bidsxai import __version__
from bidsxai.cli import build_parser
from bidsxai.config import _positive
from bidsxai.errors import EXIT_CODES, EXIT_NO_INPUT, EXIT_USAGE

DESCRIPTOR = Path(__file__).resolve().parents[1] / "boutiques" / "bidsxai.json"

# Per session, from docs/benchmarks.md: the slowest session measured at the participant level took
# 60.9 s (1 mm inputs with --tissue-maps, 2 cores) and peaked at 1.93 GB; --mem plans 3.5 GB a
# session. Twice the time and the planned memory rounded up leave room for slower machines.
SUGGESTED_RESOURCES = {"cpu-cores": 2, "ram": 4, "walltime-estimate": 120}

# Invocations that need no dataset; tests/test_boutiques.py runs each and checks its exit code.
TESTS = [
    {
        "name": "a BIDS_DIR that does not exist",
        "invocation": {"bids_dir": "missing-dataset", "output_dir": "out", "level": "participant"},
        "assertions": {"exit-code": EXIT_NO_INPUT},
    },
    {
        "name": "no worker processes",
        "invocation": {
            "bids_dir": "missing-dataset",
            "output_dir": "out",
            "level": "participant",
            "nprocs": 0,
        },
        "assertions": {"exit-code": EXIT_USAGE},
    },
]


def _input(action):
    """One Boutiques input for one argparse action."""
    key = action.dest.upper()
    entry = {
        "id": action.dest,
        "name": action.dest.replace("_", " "),
        "description": (action.help or action.dest).replace("%%", "%"),
        "value-key": f"[{key}]",
        "optional": bool(action.option_strings),
    }
    if action.option_strings:
        entry["command-line-flag"] = max(action.option_strings, key=len)
    if action.nargs == 0:  # store_true and count
        entry["type"] = "Flag"
        return entry
    integer = action.type is int or getattr(action.type, "__name__", "") == "integer"
    number = integer or action.type is float or action.type is _positive
    entry["type"] = "File" if action.dest == "bids_dir" else "Number" if number else "String"
    if integer:
        entry["integer"] = True
    if action.choices:
        entry["value-choices"] = [str(c) for c in action.choices]
    if action.nargs not in (None, "?"):
        entry["list"] = True
        if isinstance(action.nargs, int):
            entry["min-list-entries"] = entry["max-list-entries"] = action.nargs
    return entry


def descriptor():
    parser = build_parser().complete()
    actions = [
        a
        for a in parser._actions
        if a.dest not in ("help", "version", "list_architectures") and a.dest != argparse.SUPPRESS
    ]
    inputs = [_input(a) for a in actions]
    positional = [i["value-key"] for i in inputs if not i["optional"]]
    options = [i["value-key"] for i in inputs if i["optional"]]
    return {
        "name": "bidsxai",
        "tool-version": __version__,
        "description": parser.description,
        "schema-version": "0.5",
        "command-line": " ".join(["bidsxai", *positional, *options]),
        "container-image": {"type": "docker", "image": f"bidsxai/bidsxai:{__version__}"},
        "inputs": inputs,
        "output-files": [
            {
                "id": "output_dataset",
                "name": "output dataset",
                "description": "the BIDS-Derivatives dataset: outputs, reports and logs",
                "path-template": "[OUTPUT_DIR]",
            }
        ],
        "error-codes": [
            {"code": code, "description": meaning} for code, meaning in EXIT_CODES.items()
        ],
        "suggested-resources": SUGGESTED_RESOURCES,
        "tests": TESTS,
        "tags": {"domain": ["neuroinformatics", "mri", "explainable-ai"]},
    }


def text():
    return json.dumps(descriptor(), indent=2) + "\n"


def main():
    if "--check" in sys.argv[1:]:
        same = DESCRIPTOR.is_file() and DESCRIPTOR.read_text() == text()
        print("boutiques/bidsxai.json is " + ("up to date" if same else "out of date"))
        sys.exit(0 if same else 1)
    DESCRIPTOR.parent.mkdir(exist_ok=True)
    DESCRIPTOR.write_text(text())
    print(f"wrote {DESCRIPTOR}")


if __name__ == "__main__":
    main()
