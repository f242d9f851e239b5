"""Sessions explained per minute by ``participant --model``, one at a time (``--batch-sessions
1``) and in batches, and the memory each session adds to a batch.

The cohort is the demo's (``bidsxai-demo``: synthetic subjects at 2 mm, preprocessed, a 3D CNN
trained on them), made once with ``--n-subjects``. Each explanation run then reruns
``participant --model`` on it with the same methods (preprocessing is found done and skipped);
its rate is the sessions over the time from the first session started to the last finished in
the explanation stage of the run's log, so the reports written after it do not count.

The memory: one process per batch size loads the bundle's fold-1 model and that many sessions'
inputs, explains them together with the same methods (``explain_sessions``) and reports its
peak resident memory; the slope over batch sizes is the memory a session adds, which
``bidsxai.memory.EXPLANATION_BYTES_PER_VOXEL`` holds per voxel of the model's input box with a
margin.

Usage: python benchmarks/batch_sessions.py [FOLDER] [--n-subjects 40] [--methods gradcam,lrp]
       [--batches 1,4,8] [--memory-batches 1,2,4] [--skip-runs]
"""

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

MEMORY_PROBE = """
import json, resource, sys
import torch
from bidsxai.cli import parse_settings
from bidsxai.models.bundle import BundleModels, member_for
from bidsxai.template import load_template
from bidsxai.training.dataset import load_inputs
from bidsxai.workflows.explain_session import explain_sessions

out, n, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3]
models = BundleModels(f"{out}/models/cnn3d_group", torch.device("cpu"))
meta, spec = models.meta, models.meta["input"]
subjects = sorted(s for s, place in meta["assignments"][0].items() if place == 1)[:n]
x = torch.cat([torch.from_numpy(load_inputs(out, s, None, spec))[None] for s in subjects])
options = parse_settings([".", out, "participant", "--methods", methods]).stage("explanation")
template = load_template(spec["resolution"], spec["space"])
model = models.get(member_for(meta, subjects[0])[0])
explain_sessions(model, x, spec, meta["classes"], options, meta["explain_layer"], "all", template)
crop = [hi - lo for lo, hi in spec["crop"]]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"sessions": len(subjects), "peak_bytes": peak, "crop": crop}))
"""


def explanation_seconds(log):
    """Seconds from the first explanation session started to the last one finished."""
    times = []
    for line in log.read_text().splitlines():
        if "stage=explaining" in line and re.search(r"event=session_(started|finished)", line):
            times.append(datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")))
    return (max(times) - min(times)).total_seconds()


def explain_run(bids, out, batch, methods, n):
    before = set((out / "logs").glob("participant-*.log"))
    argv = [sys.executable, "-m", "bidsxai", str(bids), str(out), "participant"]
    argv += ["--model", "cnn3d_group", "--methods", methods, "--skip-bids-validation"]
    argv += ["--resolution", "2", "--batch-sessions", str(batch)]
    subprocess.run(argv, check=True, capture_output=True)
    (log,) = set((out / "logs").glob("participant-*.log")) - before
    seconds = explanation_seconds(log)
    return {"batch": batch, "seconds": round(seconds, 1), "per_minute": round(60 * n / seconds, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", nargs="?", type=Path, default=Path("batch_sessions_cohort"))
    p.add_argument("--n-subjects", type=int, default=40)
    p.add_argument("--methods", default="gradcam,lrp")
    p.add_argument("--batches", default="1,4,8")
    p.add_argument("--memory-batches", default="1,2,4")
    p.add_argument("--skip-runs", action="store_true", help="only the memory")
    args = p.parse_args()
    bids, out = args.folder / "bids", args.folder / "bids" / "derivatives" / "bidsxai"
    if not (out / "models" / "cnn3d_group" / "model.json").is_file():
        start = time.time()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bidsxai.demo",
                str(args.folder),
                "--n-subjects",
                str(args.n_subjects),
            ],
            check=True,
        )
        print(f"cohort made in {time.time() - start:.0f} s", flush=True)
    results = {"runs": [], "memory": []}
    for batch in [] if args.skip_runs else [int(b) for b in args.batches.split(",")]:
        results["runs"].append(explain_run(bids, out, batch, args.methods, args.n_subjects))
        print(json.dumps(results["runs"][-1]), flush=True)
    for n in [int(b) for b in args.memory_batches.split(",")]:
        probe = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(out), str(n), args.methods],
            check=True,
            capture_output=True,
            text=True,
        )
        results["memory"].append(json.loads(probe.stdout.strip().splitlines()[-1]))
        print(json.dumps(results["memory"][-1]), flush=True)
    first, last = results["memory"][0], results["memory"][-1]
    voxels = first["crop"][0] * first["crop"][1] * first["crop"][2]
    slope = (last["peak_bytes"] - first["peak_bytes"]) / (last["sessions"] - first["sessions"])
    print(f"memory per added session: {slope / 2**20:.0f} MiB = {slope / voxels:.0f} B per voxel")


if __name__ == "__main__":
    main()
