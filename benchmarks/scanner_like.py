"""The participant level on scans as scanners write them against the 2 mm synthetic cohort.

Both cohorts have T1w and FLAIR and are preprocessed onto the 2 mm model grid, one session at a
time on 2 cores. Per session: wall-clock seconds of the whole run and of preprocessing, peak
resident memory of the process tree, the quality gate, the T1w-to-template registration error
against the synthetic truth, and where deepbet made the brain mask (1 mm input) its Dice with the
true brain (the template's brain mask in the subject's true pose).

    python benchmarks/scanner_like.py --subjects 4 --work /tmp/scanner_like
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsxai.evaluate.registration import registration_error_mm
from bidsxai.outputs import brain_mask_path, label_mask_path, preproc_path, sidecar_path
from bidsxai.synth import CohortSpec, sample_into, synthesise
from bidsxai.template import load_template

RESOLUTION = 2.0


def run_session(bids, out, subject, *options):
    """(wall seconds, preprocessing seconds, peak RSS in GB) of one participant-level run, with
    ``options`` added to its command line."""
    command = [
        "/usr/bin/time", "-f", "%e %M",
        sys.executable, "-m", "bidsxai", str(bids), str(out), "participant",
        "--participant-label", subject, "--resolution", f"{RESOLUTION:g}",
        "--nprocs", "1", "--omp-nthreads", "2", "--skip-bids-validation", "-v", *options,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    wall, peak_kb = result.stderr.strip().splitlines()[-1].split()
    found = re.search(r"stage=preprocessing session=\S+ seconds=([\d.]+)", result.stderr)
    return float(wall), float(found[1]) if found else float("nan"), float(peak_kb) / 1024**2


def brain_dice(bids, out, subject):
    """Dice of the subject's own (deepbet) brain mask with the true brain; nan without one."""
    path = brain_mask_path(out, subject, None, None, None)
    if not path.is_file():
        return float("nan")
    truth = label_mask_path(bids / "derivatives" / "groundtruth", subject, None, "lesion")
    pose = np.array(json.loads(sidecar_path(truth).read_text())["TemplateToScanner"])
    own = nib.load(path)
    fine = load_template(1.0)
    brain = sample_into(
        fine.brain_mask.astype(np.float32), fine.affine, own.shape, own.affine, pose
    )
    brain, mask = brain > 0.5, np.asarray(own.dataobj) > 0
    return float(2 * (brain & mask).sum() / (brain.sum() + mask.sum()))


def measure(name, spec, work, template):
    bids, out = work / name / "bids", work / name / "out"
    shutil.rmtree(work / name, ignore_errors=True)
    synthesise(bids, spec, nprocs=2)
    rows = []
    for i in range(1, spec.n_subjects + 1):
        subject = f"{i:02d}"
        wall, preprocessing, peak = run_session(bids, out, subject)
        t1w = preproc_path(out, subject, None, "T1w", RESOLUTION, template.space)
        gate = json.loads(sidecar_path(t1w).read_text())["QualityGate"]
        error = registration_error_mm(out, bids, subject, None, template)
        dice = brain_dice(bids, out, subject)
        rows.append(
            (wall, preprocessing, peak, gate["TemplateCorrelation"], gate["Passed"], error, dice)
        )
        print(
            f"{name} sub-{subject}: {wall:.1f} s (preprocessing {preprocessing:.1f} s), "
            f"peak {peak:.2f} GB, template correlation {gate['TemplateCorrelation']:.3f}, "
            f"registration error {error:.2f} mm, brain mask Dice {dice:.3f}",
            flush=True,
        )
    return np.array(rows, float)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scanner_like"))
    args = parser.parse_args()
    template = load_template(RESOLUTION)
    common = dict(
        n_subjects=args.subjects, groups=("HC", "RRMS"), contrasts=("T1w", "FLAIR"), seed=11
    )
    results = {
        "scanner-like 1 mm": measure(
            "scanner",
            CohortSpec(resolution=RESOLUTION, scanner_like=True, **common),
            args.work,
            template,
        ),
        "synthetic 2 mm": measure(
            "standard", CohortSpec(resolution=RESOLUTION, **common), args.work, template
        ),
    }
    print(
        "\n| input | sessions | s per session (mean, max) | preprocessing s | peak GB (max) "
        "| gate passed | registration error mm (mean, max) | brain mask Dice (min) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        lowest_dice = f"{np.nanmin(r[:, 6]):.3f}" if np.isfinite(r[:, 6]).any() else "template mask"
        print(
            f"| {name} | {len(r)} | {r[:, 0].mean():.1f}, {r[:, 0].max():.1f} | "
            f"{r[:, 1].mean():.1f} | {r[:, 2].max():.2f} | {int(r[:, 4].sum())}/{len(r)} | "
            f"{r[:, 5].mean():.2f}, {r[:, 5].max():.2f} | {lowest_dice} |"
        )
    scanner, standard = results.values()
    print(f"\ntime ratio 1 mm / 2 mm: {scanner[:, 0].mean() / standard[:, 0].mean():.2f}")


if __name__ == "__main__":
    main()
