"""Does the default recipe learn what a radiologist sees? The difficulty ladder of
``bidsxai-synth --rung``, each rung a two-class cohort (controls against patients) whose only
difference is one change:

- ``presence``: 1 to 3 white-matter lesions of 4 to 9 mm radius;
- ``site``: every subject has lesions, and the groups differ by where they sit (``--lesion-only``);
- ``distractor``: every subject has lesions at a distractor site, patients also at signal sites;
- ``atrophy``: 20 to 40 % of the grey matter lost in both medial temporal lobes;
- ``ventricles``: ventricles enlarged by 1.5 to 3.3 mm.

Every cohort is written on native anisotropic grids with a bias field and Rician noise (T1w and
FLAIR), preprocessed by the participant level, and trained with ``train``'s default recipe (or the
``--train`` options given). For each run it prints the network's out-of-fold balanced accuracy and
AUC, the simple baseline's balanced accuracy on the same folds (``model.json``'s
``metrics.baseline``), the optimisation failures and each stage's time; then, per rung and cohort
size, the mean +- SD over seeds and the worst seed. Results are appended to ``--results`` as JSON
lines, so a long ladder can run in pieces.

Tune on seeds of your choice; report only on the seeds that docs/benchmarks.md fixes for
reporting, chosen before any of them was run.

Usage: python benchmarks/learnability.py WORK [--rungs presence,atrophy] [--n 40,80]
       [--seeds 7001,7002,7003] [--resolution 2] [--train "--validation inner"] [--nprocs 2]
"""

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

from bidsxai import cli, synth

RUNGS = ("presence", "site", "distractor", "atrophy", "ventricles")


def _run(title, fn, argv, timings):
    start = time.time()
    code = fn([str(a) for a in argv])
    timings[title] = round(time.time() - start, 1)
    if code:
        raise SystemExit(f"{title} failed with exit code {code}: {shlex.join(map(str, argv))}")


def one_run(work, rung, n, seed, args):
    """Synthesise, preprocess and train one cohort; the numbers of its model.json."""
    folder = work / f"{rung}_n{n}_seed{seed}"
    bids, out, timings = folder / "bids", folder / "out", {}
    if not (bids / "participants.tsv").is_file():
        argv = [bids, "--rung", rung, "--n-subjects", n, "--seed", seed]
        argv += ["--resolution", args.resolution, "--contrasts", "T1w,FLAIR"]
        _run("synth", synth.main, [*argv, "--nprocs", args.nprocs], timings)
    common = ["--resolution", args.resolution, "--nprocs", args.nprocs, "--skip-bids-validation"]
    _run("participant", cli.main, [bids, out, "participant", *common], timings)
    model = f"ladder_{rung}"
    train = [bids, out, "train", "--model", model, *common, *shlex.split(args.train)]
    _run("train", cli.main, train, timings)
    meta = json.loads((out / "models" / model / "model.json").read_text())
    network, baseline = meta["metrics"]["cross_validation"], meta["metrics"]["baseline"]
    return {
        "rung": rung,
        "n": n,
        "seed": seed,
        "resolution": args.resolution,
        "train_options": args.train,
        "balanced_accuracy": network["balanced_accuracy"],
        "auc": network["auc"],
        "baseline_balanced_accuracy": baseline["cross_validation"]["balanced_accuracy"],
        "mcnemar_p": baseline["paired"]["p"],
        "optimisation_failures": len(meta["metrics"]["optimisation_failures"]),
        "seconds": timings,
    }


def summary(rows):
    """Mean +- SD and the worst seed of each rung and cohort size."""
    lines = ["| rung | N | seeds | network bal. acc. mean +- SD | worst | baseline mean |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for rung in RUNGS:
        for n in sorted({r["n"] for r in rows if r["rung"] == rung}):
            chosen = [r for r in rows if r["rung"] == rung and r["n"] == n]
            values = [r["balanced_accuracy"] for r in chosen]
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            baseline = statistics.mean(r["baseline_balanced_accuracy"] for r in chosen)
            lines.append(
                f"| {rung} | {n} | {len(chosen)} | {statistics.mean(values):.3f} +- {sd:.3f} | "
                f"{min(values):.3f} | {baseline:.3f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="folder for the cohorts and their outputs")
    parser.add_argument("--rungs", default=",".join(RUNGS))
    parser.add_argument("--n", default="40,80", help="cohort sizes, comma-separated")
    parser.add_argument("--seeds", default="7001,7002,7003", help="cohort seeds, comma-separated")
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--train", default="", help="extra train options, as one string")
    parser.add_argument("--results", type=Path, help="JSON lines file (default WORK/results.jsonl)")
    args = parser.parse_args()
    rungs = [r for r in args.rungs.split(",") if r]
    unknown = [r for r in rungs if r not in RUNGS]
    if unknown:
        parser.error(f"unknown rung {unknown[0]}; choose from {', '.join(RUNGS)}")
    results = args.results or args.work / "results.jsonl"
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for rung in rungs:
        for n in (int(v) for v in args.n.split(",")):
            for seed in (int(v) for v in args.seeds.split(",")):
                row = one_run(args.work, rung, n, seed, args)
                rows.append(row)
                with open(results, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    print(summary(rows))


if __name__ == "__main__":
    sys.exit(main())
