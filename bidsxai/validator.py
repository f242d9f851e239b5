"""The official BIDS validator (bids-validator-deno, runs offline) as a Python call."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bidsxai.errors import InvalidBidsError, UsageError


def find_validator():
    """The validator installed beside this Python (a venv used without activation), else on PATH."""
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return str(beside) if beside.is_file() else shutil.which("bids-validator-deno")


def validator_errors(dataset_dir, recursive=False):
    """Error issues of the official validator, as ``[(code, location)]``; [] means valid."""
    exe = find_validator()
    if exe is None:
        raise UsageError(
            "bids-validator-deno is not installed; install it (pip install "
            "bids-validator-deno) or pass --skip-bids-validation"
        )
    cmd = [exe, str(dataset_dir), "--format", "json", "--ignoreWarnings"]
    if recursive:
        cmd.append("--recursive")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise InvalidBidsError(
            f"{dataset_dir}: the BIDS validator failed: "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        ) from None
    return [
        (i.get("code"), i.get("location", ""))
        for i in report["issues"]["issues"]
        if i.get("severity") == "error"
    ]


def require_valid(dataset_dir):
    errors = validator_errors(dataset_dir)
    if errors:
        codes = sorted({code for code, _ in errors})
        raise InvalidBidsError(
            f"{dataset_dir}: the BIDS validator found {len(errors)} error(s) "
            f"({', '.join(codes[:5])}); fix them or pass --skip-bids-validation"
        )
