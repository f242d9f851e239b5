"""Fault injection: killed and terminated processes, lost workers, a full disk, corrupt bundles,
odd class names, concurrent runs. Each ends in success or a documented exit code with one line,
never in lost or wrong results, and the next run completes."""

import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import RES, messages, run_cli

from bidsxai.config import Settings
from bidsxai.errors import (
    EXIT_CANNOT_CREATE_OUTPUT,
    EXIT_NO_INPUT,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    NoInputError,
)
from bidsxai.models.bundle import sha256_of
from bidsxai.scratch import TEMP_FILE_PREFIX, WORK_PREFIX
from bidsxai.synth import CohortSpec, synthesise
from bidsxai.workflows.sessions import run_sessions

COMMON = ["--resolution", RES, "--skip-bids-validation"]


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    """4 subjects at 6 mm, for runs that are killed part way."""
    root = tmp_path_factory.mktemp("small") / "bids"
    synthesise(root, CohortSpec(n_subjects=4, resolution=RES, seed=3), nprocs=2)
    return root


def _cli(bids, out, *argv, work=None):
    """The CLI as its own process group, so a test can kill it like a scheduler would."""
    env = dict(os.environ, TMPDIR=str(work)) if work else None
    command = [sys.executable, "-m", "bidsxai", str(bids), str(out), *map(str, argv)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for_workers(process, n=2, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(_children(process.pid)) >= n and process.poll() is None:
            time.sleep(1.0)  # let them start on their sessions
            return _children(process.pid)
        time.sleep(0.2)
    raise AssertionError("the run never started its workers")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


def _every_output_opens(out):
    images = list(Path(out).rglob("*.nii.gz"))
    for path in images:
        nib.load(path).get_fdata()
    for path in Path(out).rglob("*.json"):
        json.loads(path.read_text())
    return len(images)


def _dead_pid():
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_what_a_zombie_left_is_removed(tmp_path):
    """A killed run's worker may stay a zombie until its new parent reaps it: it can write
    nothing more, so its files count as left behind."""
    from bidsxai.scratch import remove_leftovers

    child = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    deadline = time.time() + 30
    while _alive(child.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert Path(f"/proc/{child.pid}").exists()  # still in the process table
    (tmp_path / "out" / "sub-01").mkdir(parents=True)
    (tmp_path / "out" / "sub-01" / f"{TEMP_FILE_PREFIX}{child.pid}-x.nii.gz").write_bytes(b"")
    (tmp_path / "work" / f"{WORK_PREFIX}{child.pid}-sub-01-abc").mkdir(parents=True)
    assert remove_leftovers(tmp_path / "out", tmp_path / "work") == 2
    child.wait()


def test_killed_main_process_takes_its_workers_and_the_rerun_cleans_up(small_cohort, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    run = _cli(small_cohort, out, "participant", "--nprocs", 2, *COMMON, work=work)
    workers = _wait_for_workers(run)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "workers outlived their main process"
    # A kill while writing leaves a hidden temporary file named for its (dead) process.
    anat = out / "sub-01" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    stale = anat / f"{TEMP_FILE_PREFIX}{_dead_pid()}-sub-01_T1w.abc.nii.gz"
    stale.write_bytes(b"")
    rerun = _cli(small_cohort, out, "participant", "--nprocs", 2, *COMMON, work=work)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert not list(out.rglob(f"{TEMP_FILE_PREFIX}*"))
    assert not list(work.glob(f"{WORK_PREFIX}*"))
    assert _every_output_opens(out) >= 4 * 4  # 3 contrasts and a mask per subject


def test_sigterm_stops_everything_within_seconds_and_the_run_resumes(small_cohort, tmp_path):
    out, pending = tmp_path / "out", tmp_path / "pending.txt"
    argv = ["participant", "--nprocs", 2, "--write-pending", pending, *COMMON]
    run = _cli(small_cohort, out, *argv)
    workers = _wait_for_workers(run)
    started = time.time()
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(timeout=30) == 143
    assert time.time() - started < 15
    assert "SIGTERM" in run.stderr.read()
    time.sleep(1.0)
    assert not any(_alive(w) for w in workers)
    left = [line for line in pending.read_text().splitlines() if not line.startswith("#")]
    assert left and set(left) <= {f"sub-0{i}" for i in range(1, 5)}
    # The resubmission reads the subjects left from the file and leaves none.
    assert run_cli(small_cohort, out, *argv, "--participant-label", pending) == 0
    assert [line for line in pending.read_text().splitlines() if not line.startswith("#")] == []
    assert _every_output_opens(out) >= 4 * len(left)


def test_the_pending_list_keeps_the_subjects_whose_last_stage_has_not_passed(tmp_path):
    from bidsxai.bids import SessionInputs
    from bidsxai.workflows.pending import PendingList
    from bidsxai.workflows.sessions import Outcome

    sessions = [SessionInputs("01", "a"), SessionInputs("01", "b"), SessionInputs("02", None)]
    path = tmp_path / "pending.txt"
    pending = PendingList(path, sessions, "run-x", "explaining")
    assert path.read_text().splitlines()[1:] == ["sub-01  # ses-a ses-b", "sub-02"]
    pending.finished("preprocessing", Outcome("sub-02"))  # not its last stage
    pending.finished("explaining", Outcome("sub-01_ses-a"))
    pending.finished("explaining", Outcome("sub-01_ses-b", message="failed", exit_code=66))
    assert path.read_text().splitlines()[1:] == ["sub-01  # ses-b", "sub-02"]
    pending.finished("explaining", Outcome("sub-02"), passed=False)  # failed its quality gate
    assert path.read_text().splitlines()[1:] == ["sub-01  # ses-b", "sub-02"]


@dataclass
class _Item:
    key: str


def _kills_its_worker_for_sub_03(item):
    time.sleep(0.2)
    if item.key == "sub-03":
        os.kill(os.getpid(), signal.SIGKILL)
    return item.key


def test_a_lost_worker_fails_only_its_session(tmp_path, capsys):
    items = [_Item(f"sub-0{i}") for i in range(1, 7)]
    outcomes = run_sessions(_kills_its_worker_for_sub_03, items, (), tmp_path, nprocs=2)
    assert [o.ok for o in outcomes] == [True, True, False, True, True, True]
    assert outcomes[2].exit_code == EXIT_TEMPFAIL  # worth resubmitting
    assert [o.value for o in outcomes if o.ok] == ["sub-01", "sub-02", "sub-04", "sub-05", "sub-06"]
    err = messages(capsys.readouterr().err)
    assert len(err) == 1 and "sub-03" in err[0] and "out-of-memory" in err[0]


def _fails_for_sub_02(item):
    time.sleep(0.3 if item.key != "sub-02" else 0.0)
    if item.key == "sub-02":
        raise NoInputError("sub-02: broken on purpose")
    return item.key


@pytest.mark.parametrize("nprocs", [1, 2])
def test_stop_on_first_crash_runs_no_session_after_the_failure(tmp_path, capsys, nprocs):
    items = [_Item(f"sub-0{i}") for i in range(1, 7)]
    outcomes = run_sessions(_fails_for_sub_02, items, (), tmp_path, nprocs=nprocs, stop=True)
    assert outcomes[1].message == "sub-02: broken on purpose" and outcomes[1].exit_code == 66
    skipped = [o for o in outcomes if not o.ok and "not run" in o.message]
    assert len(skipped) >= 6 - 1 - nprocs - 1  # at most the sessions already running finish
    assert all(o.exit_code == 66 and "sub-02 failed first" in o.message for o in skipped)
    assert outcomes[0].ok and outcomes[-1].message is not None
    without = run_sessions(_fails_for_sub_02, items, (), tmp_path, nprocs=nprocs)
    assert [o.ok for o in without] == [True, False, True, True, True, True]


def _threads(item):
    import torch

    return os.environ["OMP_NUM_THREADS"], torch.get_num_threads()


def test_each_worker_is_capped_at_its_share_of_the_threads(tmp_path):
    items = [_Item("sub-01"), _Item("sub-02")]
    capped = run_sessions(_threads, items, (), tmp_path, nprocs=2, threads=3)
    assert [o.value for o in capped] == [("3", 3), ("3", 3)]


def test_a_full_disk_is_exit_73_for_that_session_and_the_others_complete(
    small_cohort, tmp_path, monkeypatch, capsys
):
    import bidsxai.preprocess.pipeline as pipeline

    real = pipeline.save_nifti

    def full_for_sub_02(img, path):
        if "sub-02" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(img, path)

    monkeypatch.setattr(pipeline, "save_nifti", full_for_sub_02)
    out = tmp_path / "out"
    assert (
        run_cli(small_cohort, out, "participant", "--nprocs", 1, *COMMON)
        == EXIT_CANNOT_CREATE_OUTPUT
    )
    err = capsys.readouterr().err
    assert "sub-02: no space left on the device" in err and "Traceback" not in err
    assert "participant level done" not in err
    for subject in ("01", "03", "04"):
        assert (out / f"sub-{subject}.html").is_file()


def test_a_crash_log_that_cannot_be_written_does_not_spread(tmp_path, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the crash folder should be")

    def broken(item):
        if item.key == "sub-01":
            raise RuntimeError("a bug")
        return item.key

    outcomes = run_sessions(broken, [_Item("sub-01"), _Item("sub-02")], (), blocked / "crash")
    assert [o.ok for o in outcomes] == [False, True]
    assert "no traceback written" in outcomes[0].message


def test_a_pickle_renamed_to_safetensors_is_a_bundle_error(pipeline, cohort, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(pipeline["out"] / "models" / "cnn3d_group", bundle)
    meta = json.loads((bundle / "model.json").read_text())
    for entry in meta["members"].values():
        weights = bundle / entry["weights"]
        weights.write_bytes(pickle.dumps({"not": "tensors"}))
        entry["sha256"] = sha256_of(weights)
    (bundle / "model.json").write_text(json.dumps(meta))
    code = run_cli(
        cohort,
        tmp_path / "out",
        "participant",
        "--participant-label",
        "01",
        "--model",
        bundle,
        *COMMON,
    )
    assert code == EXIT_NO_INPUT
    err = capsys.readouterr().err
    assert "unreadable" in err and "Traceback" not in err


def test_class_names_that_share_a_file_label_are_refused(pipeline, cohort_copy, tmp_path, capsys):
    participants = cohort_copy / "participants.tsv"
    table = participants.read_text().replace("\tRRMS\t", "\tMS+\t").replace("\tSPMS\t", "\tMS-\t")
    participants.write_text(table)
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    code = run_cli(
        cohort_copy, out, "train", "--model", "odd", "--epochs", 1, "--cv-folds", 2, *COMMON
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'MS+' and 'MS-'" in err and "'MS'" in err
    assert not (out / "models" / "odd").exists()
    bundle = out / "models" / "cnn3d_group"  # a bundle from before such sets were refused
    meta = json.loads((bundle / "model.json").read_text())
    meta["classes"] = ["HC", "MS+", "MS-"]
    (bundle / "model.json").write_text(json.dumps(meta))
    assert run_cli(cohort_copy, out, "participant", "--model", "cnn3d_group", *COMMON) == EXIT_USAGE
    assert "'MS+' and 'MS-'" in capsys.readouterr().err


def test_one_failed_subject_does_not_block_training(pipeline, cohort, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    for path in (out / "sub-04" / "anat").glob("*desc-preproc_T1w*"):
        path.unlink()  # as if its participant level had failed
    code = run_cli(
        cohort, out, "train", "--model", "without04", "--epochs", 1, "--cv-folds", 2, *COMMON
    )
    assert code == 0
    assert "left out sub-04" in capsys.readouterr().err
    meta = json.loads((out / "models" / "without04" / "model.json").read_text())
    assert [row["session"] for row in meta["excluded"]] == ["sub-04"]
    assert "04" not in meta["assignments"][0]
    assert "sub-04" in (out / "models" / "without04" / "report.html").read_text()


def test_two_concurrent_runs_on_one_output_folder(small_cohort, tmp_path):
    out = tmp_path / "out"
    runs = [
        _cli(
            small_cohort,
            out,
            "participant",
            "--participant-label",
            "01",
            "02",
            "--nprocs",
            1,
            *COMMON,
        ),
        _cli(
            small_cohort,
            out,
            "participant",
            "--participant-label",
            "03",
            "04",
            "--nprocs",
            1,
            *COMMON,
        ),
    ]
    assert [r.wait(timeout=300) for r in runs] == [0, 0]
    assert len(list((out / "logs").glob("participant-*.toml"))) == 2
    assert not list(out.rglob(f"{TEMP_FILE_PREFIX}*"))
    assert _every_output_opens(out) >= 16


def test_runs_started_in_the_same_second_keep_their_own_settings(tmp_path):
    paths = {
        Settings(bids_dir=tmp_path, output_dir=tmp_path, level="train").save() for _ in range(5)
    }
    assert len(paths) == 5


def test_output_dir_must_not_be_the_derivatives_folder_itself(cohort_copy, capsys):
    code = run_cli(cohort_copy, cohort_copy / "derivatives", "participant", *COMMON)
    assert code == EXIT_USAGE
    assert "derivatives/bidsxai" in capsys.readouterr().err


def test_layer_maps_carry_the_model_provenance(pipeline):
    for sidecar in pipeline["out"].rglob("*desc-layers*_heatmap.json"):
        entries = json.loads(sidecar.read_text())
        assert entries["ModelMember"] and entries["ModelSha256"] and entries["Sources"]


def test_a_practically_empty_t1w_fails_the_quality_gate(pipeline, cohort_copy, tmp_path, capsys):
    t1w = cohort_copy / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    image = nib.load(t1w)
    data = np.zeros(image.shape, np.float32)
    data[tuple(s // 2 for s in image.shape)] = 100.0
    nib.Nifti1Image(data, image.affine).to_filename(str(t1w))
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    measures = out / "sub-02" / "anat" / "sub-02_measures.tsv"
    classified_before = measures.stat().st_mtime_ns
    argv = ["--participant-label", "01", "02", "--model", "cnn3d_group", "--nprocs", 1, *COMMON]
    assert run_cli(cohort_copy, out, "participant", *argv) == EXIT_NO_INPUT
    err = capsys.readouterr().err
    assert "sub-02: failed the quality gate (" in err and "Traceback" not in err
    assert measures.stat().st_mtime_ns == classified_before  # not classified again
    report = (out / "sub-02.html").read_text()
    assert re.search("failed: [^<]*TemplateCorrelation", report) and "not classified" in report
    sidecar = json.loads(next((out / "sub-02" / "anat").glob("*desc-preproc_T1w.json")).read_text())
    assert sidecar["QualityGate"]["Passed"] is False
    assert run_cli(cohort_copy, out, "participant", *argv, "--qc-override") == 0
    assert measures.stat().st_mtime_ns != classified_before


def test_every_session_of_the_synthetic_cohort_passes_the_quality_gate(pipeline):
    gates = [
        json.loads(p.read_text())["QualityGate"]
        for p in pipeline["out"].rglob("*desc-preproc_T1w.json")
    ]
    assert len(gates) == 9 and all(g["Passed"] for g in gates), gates


def test_the_same_seed_gives_bitwise_identical_outputs(small_cohort, tmp_path):
    """ANTs reads a seed of 0 as "seed from the clock"; bidsxai's default seed 0 must still
    reproduce every transform and image bit for bit, across processes."""
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        argv = ["--participant-label", "01", "02", "--nprocs", 2, *COMMON]
        assert run_cli(small_cohort, out, "participant", *argv) == 0
    files = [p for p in runs[0].rglob("*") if p.suffix in (".gz", ".mat") and "logs" not in p.parts]
    assert len(files) >= 12
    assert [
        p.name for p in files if p.read_bytes() != (runs[1] / p.relative_to(runs[0])).read_bytes()
    ] == []


def test_training_stopped_part_way_resumes_to_the_uninterrupted_bundle(pipeline, cohort, tmp_path):
    """SIGTERM in the second fold, then the same command: the first fold is taken back, the second
    continues from its last epoch, and the bundle is the uninterrupted run's, bit for bit."""
    runs = {}
    for name in ("whole", "stopped"):
        runs[name] = tmp_path / name
        shutil.copytree(
            pipeline["out"], runs[name], ignore=shutil.ignore_patterns("models", "cache", "group")
        )
    argv = ["train", "--epochs", 6, "--patience", 6, "--cv-folds", 2, "--model", "m", *COMMON]
    whole = _cli(cohort, runs["whole"], *argv)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    stopped = _cli(cohort, runs["stopped"], *argv)
    second_fold = runs["stopped"] / "cache" / "training" / "m" / "repeat-1_fold-2.in-progress.pt"
    deadline = time.time() + 300
    while not second_fold.exists() and stopped.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert second_fold.exists(), "the run finished or failed before its second fold"
    os.kill(stopped.pid, signal.SIGTERM)
    assert stopped.wait(timeout=60) == 143
    assert not (runs["stopped"] / "models" / "m" / "model.json").exists()
    rerun = _cli(cohort, runs["stopped"], *argv)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    log = "".join(p.read_text() for p in (runs["stopped"] / "logs").glob("train-*.log"))
    assert "event=training_member_restored" in log and "event=training_resumed" in log
    bundle = sorted((runs["whole"] / "models" / "m").glob("*.safetensors"))
    assert len(bundle) == 2  # one per fold
    for path in [*bundle, runs["whole"] / "models" / "m" / "model.json"]:
        assert path.read_bytes() == (runs["stopped"] / "models" / "m" / path.name).read_bytes()
    assert not (runs["stopped"] / "cache" / "training" / "m").exists()
