"""Every registered architecture trains from the CLI with cross-validation and is explained by the
participant level with its out-of-fold model; DDP training runs under torchrun on CPU (gloo)."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import RES, run_cli

from bidsxai.models.registry import list_architectures

COMMON = ["--resolution", RES, "--skip-bids-validation"]
QUICK = ["--epochs", 1, "--cv-folds", 2, "--batch-size", 16]


@pytest.fixture(scope="module")
def preprocessed(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("arch") / "out"
    shutil.copytree(pipeline["out"], out)
    return out


def _trained_on(meta, member):
    """The subjects ``member`` (or every member of the ensemble) trained on."""
    names = meta["ensemble"] if member == "ensemble" else [member]
    return set().union(*(meta["training"]["members"][n]["trained_on"] for n in names))


@pytest.mark.parametrize("arch", [a.name for a in list_architectures() if a.dims == 2])
def test_2d_architecture_trains_and_is_explained(arch, preprocessed, cohort):
    out = preprocessed
    assert (
        run_cli(
            cohort,
            out,
            "train",
            "--arch",
            arch,
            "--slice-size",
            32,
            "--arch-width",
            0.125,
            *QUICK,
            *COMMON,
        )
        == 0
    )
    bundle = f"{arch}_group"
    meta = json.loads((out / "models" / bundle / "model.json").read_text())
    assert meta["architecture_args"]["width"] == 0.125 and len(meta["members"]) == 2
    subject = next(s for s, p in meta["assignments"][0].items() if p == 1)
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            subject,
            "--model",
            bundle,
            "--methods",
            "gradcam",
            "--targets",
            "predicted",
            "--mc-samples",
            5,
            *COMMON,
        )
        == 0
    )
    sidecars = [
        json.loads(p.read_text()) for p in (out / f"sub-{subject}" / "anat").glob("*_heatmap.json")
    ]
    sidecar = next(s for s in sidecars if s.get("Model") == bundle)
    assert sidecar["ModelMember"] == "repeat-1_fold-1" and subject not in _trained_on(
        meta, "repeat-1_fold-1"
    )
    assert ("MCDropout" in sidecar) == arch.startswith("stroke_")


def test_no_subject_is_explained_by_a_model_that_trained_on_it(pipeline):
    """Every heatmap of the shared pipeline run names its fold model (or the fold models'
    ensemble); that model's recorded training subjects never include the subject, and its weights
    are the ones the bundle lists."""
    out = pipeline["out"]
    meta = json.loads((out / "models" / "cnn3d_group" / "model.json").read_text())
    sidecars = [p for p in out.glob("sub-*/anat/*_heatmap.json") if "desc-layers" not in p.name]
    assert len(sidecars) == 9 * 3
    used = set()
    for path in sidecars:
        subject = path.name.split("_")[0][4:]
        sidecar = json.loads(path.read_text())
        member = sidecar["ModelMember"]
        used.add(member)
        assert subject not in _trained_on(meta, member), (subject, member)
        digest = meta["sha256"] if member == "ensemble" else meta["members"][member]["sha256"]
        assert sidecar["ModelSha256"] == digest
        place = meta["assignments"][0][subject]
        assert sidecar["SplitAssignment"] == ("test" if place == "test" else f"fold-{place}")
    # Both fold models explained cohort subjects, the ensemble the test set.
    assert used == {"repeat-1_fold-1", "repeat-1_fold-2", "ensemble"}
    measures = pd.read_csv(out / "sub-01" / "anat" / "sub-01_measures.tsv", sep="\t")
    assert measures["model"].str.startswith("repeat-1_fold-").all()


def test_ddp_training_under_torchrun_on_cpu(preprocessed, cohort):
    out = preprocessed
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "bidsxai",
        str(cohort),
        str(out),
        "train",
        "--model",
        "ddp",
        "--loader-workers",
        "1",
        "--precision",
        "amp",
        *map(str, QUICK + COMMON),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained ddp") == 1  # rank 0 alone reports and writes
    meta = json.loads((out / "models" / "ddp" / "model.json").read_text())
    assert meta["training"]["processes"] == 2 and meta["training"]["precision"] == "amp"
    assert all(len(m["history"]) == 1 for m in meta["training"]["members"].values())
