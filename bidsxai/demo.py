"""``bidsxai-demo [OUT]``: the whole product on a synthetic cohort, through the real CLI.

synthesise 24 subjects at 2 mm -> participant (preprocess) -> train (3-fold cross-validation) ->
participant --model (classify + Grad-CAM with each subject's out-of-fold model) -> group, with
OUTPUT_DIR under the dataset's derivatives/ as BIDS-Apps conventionally do; then validates the
outputs and prints where the reports are.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from bidsxai import cli, synth


def _step(title, argv):
    print(f"\n== {title}\n$ bidsxai {shlex.join(str(a) for a in argv)}", flush=True)
    start = time.time()
    code = cli.main([str(a) for a in argv])
    print(f"   ({time.time() - start:.0f} s)", flush=True)
    if code != 0:
        sys.exit(code)


def main(argv=None):
    p = argparse.ArgumentParser(prog="bidsxai-demo", description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", type=Path, default=Path("demo_output"))
    p.add_argument("--n-subjects", type=int, default=24)
    p.add_argument("--resolution", type=float, default=2.0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--cv-folds", type=int, default=3)
    p.add_argument("--nprocs", type=int, default=2)
    args = p.parse_args(argv)
    started = time.time()
    bids = args.out / "bids"
    out = bids / "derivatives" / "bidsxai"
    if not (bids / "dataset_description.json").is_file():
        print(
            f"== synthetic cohort: {args.n_subjects} subjects at {args.resolution:g} mm -> {bids}"
        )
        code = synth.main(
            [
                str(bids),
                "--n-subjects",
                str(args.n_subjects),
                "--resolution",
                str(args.resolution),
                "--nprocs",
                str(args.nprocs),
            ]
        )
        if code:
            return code
    common = ["--resolution", args.resolution, "--nprocs", args.nprocs]
    _step("participant level: preprocessing", [bids, out, "participant", *common])
    _step(
        "train",
        [
            bids,
            out,
            "train",
            "--target",
            "group",
            "--epochs",
            args.epochs,
            "--patience",
            4,
            "--cv-folds",
            args.cv_folds,
            "--skip-bids-validation",
            *common,
        ],
    )
    _step(
        "participant level: classify and explain",
        [bids, out, "participant", "--model", "cnn3d_group", "--skip-bids-validation", *common],
    )
    _step("group level", [bids, out, "group", "--skip-bids-validation", *common])
    from bidsxai.validator import validator_errors

    errors = validator_errors(out)
    print(f"\n== BIDS validator on {out}: {len(errors)} error(s)")
    print(
        f"== done in {(time.time() - started) / 60:.1f} min. Open in a browser:\n"
        f"   subject reports  {out}/sub-*.html\n"
        f"   training report  {out}/models/cnn3d_group/report.html\n"
        f"   group report     {out}/group.html"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
