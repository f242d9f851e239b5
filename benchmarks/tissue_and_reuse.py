"""What --tissue-maps adds to a session and what reusing sMRIPrep's anatomy saves, on scans as
scanners write them (1 mm sagittal T1w with neck and shoulders, axial FLAIR; 2 mm model grid, one
session at a time on 2 cores).

Per session and run: wall-clock seconds, preprocessing seconds and peak memory (as in
scanner_like.py). With --tissue-maps: the correlation of the T1w-space GM map with the true GM
(the template's GM in the subject's true pose), and how far the modulated GM's volume is from the
T1w-space GM volume, against the unmodulated map's. With --derivatives smriprep=...: the
sMRIPrep-shaped test fixture (tests/smriprep_fixture.py: sMRIPrep's names, the true transform as
an ANTs composite file).

    python benchmarks/tissue_and_reuse.py --subjects 3 --work /tmp/tissue_and_reuse
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scanner_like import RESOLUTION, run_session

from bidsxai.outputs import label_mask_path, model_input_path, probseg_path, sidecar_path
from bidsxai.synth import CohortSpec, sample_into, synthesise
from bidsxai.template import load_template

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from smriprep_fixture import write_fixture  # noqa: E402


def grey_matter(bids, out, subject, template):
    """(correlation of the T1w-space GM with the truth, modulated and unmodulated GM volume error
    in % of the T1w-space GM volume)."""
    truth = label_mask_path(bids / "derivatives" / "groundtruth", subject, None, "lesion")
    pose = np.array(json.loads(sidecar_path(truth).read_text())["TemplateToScanner"])
    native = nib.load(probseg_path(out, subject, None, "GM", None, None))
    gm = native.get_fdata()
    fine = load_template(1.0)
    true_gm = sample_into(fine.gm, fine.affine, native.shape, native.affine, pose)
    near = true_gm > 0.01
    volume = gm.sum() * np.prod(native.header.get_zooms()[:3])
    errors = []
    for name in ("GMmod", "GM"):
        moved = nib.load(model_input_path(out, subject, None, name, RESOLUTION, template.space))
        errors.append(100 * (moved.get_fdata().sum() * RESOLUTION**3 / volume - 1))
    return float(np.corrcoef(gm[near], true_gm[near])[0, 1]), *errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tissue_and_reuse"))
    args = parser.parse_args()
    template = load_template(RESOLUTION)
    bids = args.work / "bids"
    shutil.rmtree(args.work, ignore_errors=True)
    spec = CohortSpec(
        n_subjects=args.subjects,
        groups=("HC", "RRMS"),
        contrasts=("T1w", "FLAIR"),
        resolution=RESOLUTION,
        scanner_like=True,
        seed=11,
    )
    synthesise(bids, spec, nprocs=2)
    subjects = [f"{i:02d}" for i in range(1, args.subjects + 1)]
    fixture = write_fixture(bids, args.work / "smriprep", RESOLUTION, subjects)
    runs = {
        "bidsxai": [],
        "bidsxai --tissue-maps": ["--tissue-maps"],
        "sMRIPrep's anatomy": ["--derivatives", f"smriprep={fixture}"],
    }
    rows = {name: [] for name in runs}
    tissue = []
    for subject in subjects:
        for name, options in runs.items():
            out = args.work / name.replace(" ", "_").replace("'", "")
            rows[name].append(run_session(bids, out, subject, *options))
            print(f"sub-{subject} {name}: {rows[name][-1]}", flush=True)
            if "--tissue-maps" in options:
                tissue.append(grey_matter(bids, out, subject, template))
                print(f"  GM r, modulated %, unmodulated %: {tissue[-1]}", flush=True)
    print(
        "\n| run | sessions | s per session (mean, max) | preprocessing s (mean) | peak GB (max) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, values in rows.items():
        r = np.array(values)
        print(
            f"| {name} | {len(r)} | {r[:, 0].mean():.1f}, {r[:, 0].max():.1f} | "
            f"{r[:, 1].mean():.1f} | {r[:, 2].max():.2f} |"
        )
    r, modulated, unmodulated = np.array(tissue).T
    modulated, unmodulated = np.abs(modulated), np.abs(unmodulated)
    print(
        f"\nGM in T1w space vs the truth: r = {r.min():.3f} to {r.max():.3f}; volume error of "
        f"modulated GM {modulated.mean():.1f} % (max {modulated.max():.1f}), "
        f"of unmodulated GM {unmodulated.mean():.1f} % (max {unmodulated.max():.1f})"
    )


if __name__ == "__main__":
    main()
