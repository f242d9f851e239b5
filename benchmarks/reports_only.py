"""``group --reports-only`` against the group run whose report it rewrites, side by side in one run.

Given the output folder of a finished run (``make demo`` writes one), each repeat copies it, runs
the group level again on the copy, then rewrites the copy's group report with ``--reports-only``;
both as a user runs them (the ``bidsxai`` command, so each includes Python's start and imports).
The report-only run reads the tables and maps on disk and recomputes no statistic; the ratio says
how much of a group run a report change costs.

Usage: python benchmarks/reports_only.py BIDS_DIR OUTPUT_DIR [--repeats 2] [--nprocs 2]
(``make demo``: BIDS_DIR demo_output/bids, OUTPUT_DIR demo_output/bids/derivatives/bidsxai)
"""

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv):
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args()
    if not (args.output_dir / "group.html").is_file():
        sys.exit(f"{args.output_dir}: no group.html; run the group level there first")
    command = [str(Path(sys.executable).with_name("bidsxai")), str(args.bids_dir)]
    common = ["group", "--skip-bids-validation", "--nprocs", str(args.nprocs)]
    runs, reports = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "out"
            shutil.copytree(args.output_dir, out)
            runs.append(timed([*command, str(out), *common]))
            reports.append(timed([*command, str(out), *common, "--reports-only"]))
    run, report = min(runs), min(reports)
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()})")
    print(f"group run: best {run:.1f} s of {', '.join(f'{t:.1f}' for t in runs)}")
    print(f"group --reports-only: best {report:.1f} s of {', '.join(f'{t:.1f}' for t in reports)}")
    print(f"ratio: {report / run:.3f}")


if __name__ == "__main__":
    main()
