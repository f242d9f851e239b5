"""Compare two bidsxai output trees file by file: every NIfTI (data and affine), TSV, JSON sidecar
and model file, so that a change that should not alter results can show that it did not.

    python scripts/compare_outputs.py REFERENCE NEW [--tolerance 0]

Timestamps, software versions and the run's command are not compared; HTML reports and run logs
are skipped (they hold the time of the run). Prints one line per difference and a summary; exits 1
when anything differs.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

IGNORED_KEYS = {
    "SoftwareVersions",
    "Version",
    "GeneratedBy",
    "created",
    "generated",
    "command",
    "bidsxai_version",
    "versions",
}
SKIPPED_SUFFIXES = (".html", ".toml", ".md", ".bib", ".txt")
SKIPPED_FOLDERS = {"logs", "cache"}


def files_of(root):
    return {
        p.relative_to(root).as_posix()
        for p in Path(root).rglob("*")
        if p.is_file()
        and not SKIPPED_FOLDERS & set(p.relative_to(root).parts)
        and not p.name.endswith(SKIPPED_SUFFIXES)
    }


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _json_differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            where = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{where}: only in {'new' if key in b else 'reference'}")
            else:
                out += _json_differences(a[key], b[key], where)
        return out
    if isinstance(a, float) and isinstance(b, float) and np.isclose(a, b, rtol=0, atol=0):
        return []
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]


def compare_file(reference, new, tolerance):
    """[] when equal, else a list of short descriptions."""
    name = reference.name
    if name.endswith((".nii", ".nii.gz")):
        ra, na = nib.load(reference), nib.load(new)
        if ra.shape != na.shape:
            return [f"shape {ra.shape} != {na.shape}"]
        out = [] if np.array_equal(ra.affine, na.affine) else ["affine differs"]
        diff = np.abs(np.asarray(ra.dataobj, np.float64) - np.asarray(na.dataobj, np.float64))
        if np.nanmax(diff, initial=0) > tolerance:
            out.append(
                f"data: max |difference| {np.nanmax(diff):.3g} in {(diff > tolerance).sum()} voxels"
            )
        return out
    if name.endswith(".tsv"):
        if not reference.read_text().strip() or not new.read_text().strip():  # a table without rows
            return [] if reference.read_text() == new.read_text() else ["one table is empty"]
        ra, na = (pd.read_csv(p, sep="\t") for p in (reference, new))
        if list(ra.columns) != list(na.columns) or len(ra) != len(na):
            return [
                f"columns/rows {list(ra.columns)} x {len(ra)} != {list(na.columns)} x {len(na)}"
            ]
        out = []
        for column in ra.columns:
            x, y = ra[column], na[column]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                gap = np.nanmax(np.abs(x.to_numpy(float) - y.to_numpy(float)), initial=0)
                same_nan = (x.isna() == y.isna()).all()
                if gap > tolerance or not same_nan:
                    out.append(f"column {column}: max |difference| {gap:.3g}")
            elif not x.astype(str).equals(y.astype(str)):
                out.append(f"column {column}: text differs")
        return out
    if name.endswith(".json"):
        ra, na = (_strip(json.loads(p.read_text())) for p in (reference, new))
        return _json_differences(ra, na)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (reference, new)]
    return [] if digest[0] == digest[1] else ["bytes differ"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest absolute difference of numbers taken as equal (default 0)",
    )
    args = parser.parse_args(argv)
    ref_files, new_files = files_of(args.reference), files_of(args.new)
    differing = 0
    for rel in sorted(ref_files - new_files):
        print(f"only in reference: {rel}")
    for rel in sorted(new_files - ref_files):
        print(f"only in new: {rel}")
    for rel in sorted(ref_files & new_files):
        problems = compare_file(args.reference / rel, args.new / rel, args.tolerance)
        if problems:
            differing += 1
            print(
                f"differs: {rel}: "
                + "; ".join(problems[:4])
                + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else "")
            )
    print(
        f"{len(ref_files & new_files)} files compared, {differing} differ, "
        f"{len(ref_files - new_files)} only in reference, {len(new_files - ref_files)} only in new"
    )
    return 1 if differing or ref_files != new_files else 0


if __name__ == "__main__":
    sys.exit(main())
