"""Can the pipeline produce explanations that find the lesions? A cohort whose groups differ only
by where their lesions sit, the default training recipe, every participant explained and its maps
evaluated against the planted lesions, then the group's method comparison.

Usage: python benchmarks/lesion_only.py OUT [--n-subjects 48] [--cv-folds 3] [--epochs 20]
Prints the cross-validated balanced accuracy, each method's localisation AUROC (median and mean
with its bootstrap interval) and pointing rate over the subjects' true-class maps, and the ranking.
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from bidsxai import cli, synth


def _step(title, argv):
    start = time.time()
    code = cli.main([str(a) for a in argv])
    print(f"{title}: {time.time() - start:.0f} s", flush=True)
    if code:
        sys.exit(code)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--n-subjects", type=int, default=48)
    p.add_argument("--cv-folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--methods", default="gradcam,gradcampp,saliency")
    args = p.parse_args()
    bids, groups = args.out / "bids", "occipital,frontal,parietal"
    out = bids / "derivatives" / "bidsxai"
    if not bids.is_dir():
        synth.main(
            [
                str(bids),
                "--n-subjects",
                str(args.n_subjects),
                "--resolution",
                "2",
                "--lesion-only",
                "--groups",
                groups,
                "--nprocs",
                "2",
            ]
        )
    common = ["--skip-bids-validation", "--nprocs", 2]
    _step("preprocessing", [bids, out, "participant", *common])
    _step(
        "training",
        [
            bids,
            out,
            "train",
            "--target",
            "group",
            "--cv-folds",
            args.cv_folds,
            "--epochs",
            args.epochs,
            "--patience",
            6,
            *common,
        ],
    )
    _step(
        "explaining and evaluating",
        [
            bids,
            out,
            "participant",
            "--model",
            "cnn3d_group",
            "--methods",
            args.methods,
            "--evaluate",
            "localisation",
            "--derivatives",
            f"masks={bids / 'derivatives' / 'groundtruth'}",
            *common,
        ],
    )
    _step("group", [bids, out, "group", "--n-perm", 0, *common])
    truth = pd.read_csv(bids / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    rows = []
    for path in sorted(out.glob("sub-*/anat/*_evaluation.tsv")):
        subject = path.name.split("_")[0]
        table = pd.read_csv(path, sep="\t")
        rows.append(table[table["target"] == truth[subject]])
    own = pd.concat(rows)
    print(
        own.groupby("method")[["auroc_lesion", "pointing_lesion"]].agg(["median", "mean"]).round(3)
    )
    print((out / "group" / "method_comparison.tsv").read_text())


if __name__ == "__main__":
    main()
