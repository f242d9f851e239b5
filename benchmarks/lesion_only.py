"""Can the pipeline produce explanations that find the lesions? A cohort whose groups differ only
by where their lesions sit, ``train`` with its default recipe, every participant explained and its
maps evaluated against the planted lesions, a sanity check (cascading randomisation) on a few
subjects, then the group's method comparison.

Usage: python benchmarks/lesion_only.py OUT [--n-subjects 48] [--sanity-subjects 02 05 ...]
Each subject is explained for its predicted class; a bundle already trained is reused. Prints
each step's time, the cross-validated balanced accuracy, each method's localisation AUROC and
pointing rate over the subjects' true-class maps (median and mean), the sanity check's Spearman
rho per method and subject, and the method-comparison table.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from bidsxai import cli, synth

METHODS = "gradcam,gradcampp,saliency,smoothgrad,ig,lrp"


def _step(title, argv):
    start = time.time()
    code = cli.main([str(a) for a in argv])
    print(f"{title}: {time.time() - start:.0f} s", flush=True)
    if code:
        sys.exit(code)


def _true_class_rows(out, truth):
    rows = []
    for path in sorted(out.glob("sub-*/anat/*_evaluation.tsv")):
        subject = path.name.split("_")[0]
        table = pd.read_csv(path, sep="\t")
        rows.append(table[table["target"] == truth[subject]].assign(subject=subject))
    return pd.concat(rows)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--n-subjects", type=int, default=48)
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--sanity-subjects", nargs="*", default=["02", "05", "09", "14", "27", "40"])
    args = p.parse_args()
    bids, groups = args.out / "bids", "occipital,frontal,parietal"
    out = bids / "derivatives" / "bidsxai"
    masks = f"masks={bids / 'derivatives' / 'groundtruth'}"
    if not bids.is_dir():
        synth.main(
            [str(bids), "--n-subjects", str(args.n_subjects), "--resolution", "2"]
            + ["--lesion-only", "--groups", groups, "--nprocs", "2"]
        )
    common = ["--skip-bids-validation", "--nprocs", 2]
    _step("preprocessing", [bids, out, "participant", *common])
    if (out / "models" / "cnn3d_group" / "model.json").is_file():
        print("training: the bundle exists, not trained again", flush=True)
    else:
        _step("training", [bids, out, "train", "--target", "group", *common])
    explain = [bids, out, "participant", "--model", "cnn3d_group", "--derivatives", masks]
    explain += ["--targets", "predicted"]  # with a perfect classifier, the true class
    _step(
        "explaining and localising",
        [*explain, "--methods", args.methods, "--evaluate", "localisation", *common],
    )
    truth = pd.read_csv(bids / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    localised = _true_class_rows(out, truth)
    if args.sanity_subjects:
        _step(
            "sanity check",
            [*explain, "--methods", args.methods, "--evaluate", "localisation,sanity"]
            + ["--participant-label", *args.sanity_subjects, *common],
        )
    _step("group", [bids, out, "group", "--n-perm", 0, *common])
    model = json.loads((out / "models" / "cnn3d_group" / "model.json").read_text())
    validation = model["metrics"]["cross_validation"]
    print(f"cross-validated balanced accuracy: {validation['balanced_accuracy']:.3f}")
    print(
        localised.groupby("method")[["auroc_lesion", "pointing_lesion"]]
        .agg(["median", "mean"])
        .round(3)
    )
    if args.sanity_subjects:
        checked = _true_class_rows(out, truth)
        checked = checked[checked["subject"].isin([f"sub-{s}" for s in args.sanity_subjects])]
        print(checked.pivot(index="method", columns="subject", values="sanity_spearman").round(2))
    print((out / "group" / "method_comparison.tsv").read_text())


if __name__ == "__main__":
    main()
