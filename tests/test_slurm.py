"""The SLURM examples on a real scheduler: a one-node cluster (Debian's slurm-wlm and munge,
started by tests/slurm/start_cluster.sh) runs examples/slurm/submit.sh on a tiny cohort: the
participant array, training after it, the explaining array and the group level, chained with
afterok. Needs root to start the daemons; it fails rather than skips without them."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidsxai.synth import CohortSpec, synthesise

ROOT = Path(__file__).resolve().parents[1]
RES = "6"


@pytest.fixture
def cluster(tmp_path):
    folder = tmp_path / "slurm"
    started = subprocess.run(
        [str(ROOT / "tests" / "slurm" / "start_cluster.sh"), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert started.returncode == 0, started.stderr
    env = dict(os.environ, SLURM_CONF=started.stdout.strip().splitlines()[-1])
    yield env
    subprocess.run([str(ROOT / "tests" / "slurm" / "stop_cluster.sh"), str(folder)], check=False)


def _wait_for_the_queue(env, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i %T %r"], env=env, capture_output=True, text=True
        ).stdout
        if not queue.strip():
            return
        if "DependencyNeverSatisfied" in queue:
            raise AssertionError(f"a job failed, so its dependants never run:\n{queue}")
        time.sleep(2)
    raise AssertionError("the jobs did not finish in time")


def test_the_slurm_examples_run_the_study_on_a_real_scheduler(cluster, tmp_path):
    bids, out = tmp_path / "bids", tmp_path / "derivatives" / "bidsxai"
    synthesise(bids, CohortSpec(n_subjects=4, groups=("HC", "MS"), resolution=float(RES), seed=2))
    common = f"--resolution {RES} --skip-bids-validation"
    env = dict(
        cluster,
        BIDSXAI=str(Path(sys.executable).parent / "bidsxai"),
        BIDSXAI_EXEC="",
        GPU_REQUEST="",
        SBATCH_OPTIONS="--cpus-per-task=1 --mem=2G",
        PARTICIPANT_ARGS=common,
        TRAIN_ARGS=f"{common} --epochs 1 --cv-folds 2 --test-fraction 0",
        GROUP_ARGS=f"{common} --n-perm 0",
    )
    submitted = subprocess.run(
        [str(ROOT / "examples" / "slurm" / "submit.sh"), str(bids), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    _wait_for_the_queue(env, timeout=900)
    logs = out / "logs"
    for subject in ("01", "02", "03", "04"):
        assert list((out / f"sub-{subject}" / "anat").glob("*method-gradcam*_heatmap.nii.gz"))
        assert (out / f"sub-{subject}.html").is_file()
    assert (out / "group.html").is_file()
    assert (out / "models" / "cnn3d_group" / "model.json").is_file()
    # Each array task ran once, left its own run log naming its task id, and nothing collided.
    tasks = sorted(
        line.split("slurm_array_task_id=")[1].split()[0]
        for log in logs.glob("participant-*.log")
        for line in log.read_text().splitlines()
        if "event=run_started" in line
    )
    assert tasks == sorted(["1", "2", "3", "4"] * 2)  # the preprocessing and explaining arrays
    task_outputs = sorted(p.name for p in (logs / "slurm").glob("bidsxai-participant-*_*.out"))
    assert len(task_outputs) == 8
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]
    assert not list(logs.glob("crash-*/*"))
