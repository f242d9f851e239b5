"""Shared fixtures: a tiny synthetic cohort (6 mm voxels) and one full pipeline run over it."""

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from bidsxai import cli
from bidsxai.synth import CohortSpec, synthesise

RES = 6.0

# The input fuzz: in CI (HYPOTHESIS_PROFILE=ci, set by .ci/run) the same examples every run and
# no shrinking, so a red CI is reproducible and bounded in time; locally, new examples each run.
settings.register_profile(
    "ci", derandomize=True, database=None, phases=[Phase.explicit, Phase.generate]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def messages(stderr):
    """The lines of ``stderr`` written for the user, without the log's timestamped events."""
    return [line for line in stderr.strip().splitlines() if " event=" not in line]


def snapshot(folder):
    """Every file under ``folder`` with its size and mtime, to prove nothing was written there."""
    return {
        p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*") if p.is_file()
    }


@pytest.fixture(scope="session", autouse=True)
def templateflow_home(tmp_path_factory):
    """An empty TemplateFlow home of the test session (the run seeds it), never the user's; the
    resampled templates are kept in the session's cache folder, not the user's either."""
    home = tmp_path_factory.mktemp("templateflow")
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    return home


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """9 subjects (3 per group) at 6 mm: the read-only input of most tests."""
    root = tmp_path_factory.mktemp("cohort") / "bids"
    synthesise(root, CohortSpec(n_subjects=9, resolution=RES, seed=1), nprocs=2)
    return root


@pytest.fixture
def cohort_copy(cohort, tmp_path):
    """A private copy for tests that damage the input."""
    copy = tmp_path / "bids"
    shutil.copytree(cohort, copy)
    return copy


@pytest.fixture(scope="session")
def pipeline(cohort, tmp_path_factory):
    """participant -> train -> participant --model -> group, once; returns the output folder."""
    out = tmp_path_factory.mktemp("run") / "out"
    before = snapshot(cohort)
    common = ["--resolution", RES, "--nprocs", 2]
    codes = [
        run_cli(cohort, out, "participant", *common),
        run_cli(
            cohort, out, "train", "--epochs", 3, "--cv-folds", 2, "--skip-bids-validation", *common
        ),
        run_cli(
            cohort, out, "participant", "--model", "cnn3d_group", "--skip-bids-validation", *common
        ),
        # No --resolution: the group level takes the grid from the bundle.
        run_cli(
            cohort, out, "group", "--model", "cnn3d_group", "--skip-bids-validation", "--nprocs", 2
        ),
    ]
    return {"out": out, "codes": codes, "input_unchanged": snapshot(cohort) == before}
