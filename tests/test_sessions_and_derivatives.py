"""Multi-session cohorts and already preprocessed inputs (--derivatives)."""

import numpy as np
import pandas as pd
from conftest import RES, run_cli

from bidsxai.bids import open_layout, select_inputs
from bidsxai.outputs import preproc_path
from bidsxai.synth import CohortSpec, synthesise
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.validator import validator_errors


def test_multi_session_cohort_is_valid_and_selectable(tmp_path):
    bids = tmp_path / "bids"
    synthesise(bids, CohortSpec(n_subjects=3, resolution=RES, sessions=2, seed=2))
    assert validator_errors(bids, recursive=True) == []
    sessions = pd.read_csv(bids / "sub-02" / "sub-02_sessions.tsv", sep="\t")
    assert list(sessions["session_id"]) == ["ses-01", "ses-02"]
    assert sessions["edss"].is_monotonic_increasing
    layout = open_layout(bids)
    selected = select_inputs(layout, ["02"], ["ses-02"])
    assert [(s.subject, s.session) for s in selected] == [("02", "02")]
    assert sorted(selected[0].files) == ["FLAIR", "T1w", "T2w"]
    assert "ses-02" in str(selected[0].files["T1w"])


def test_derivatives_are_imported_instead_of_preprocessed(pipeline, cohort, tmp_path):
    out = tmp_path / "out"
    code = run_cli(
        cohort,
        out,
        "participant",
        "--participant-label",
        "04",
        "--derivatives",
        f"earlier={pipeline['out']}",
        "--resolution",
        RES,
        "--skip-bids-validation",
    )
    assert code == 0
    for contrast in ("T1w", "T2w", "FLAIR"):
        ours = preproc_path(out, "04", None, contrast, RES, SPACE)
        theirs = preproc_path(pipeline["out"], "04", None, contrast, RES, SPACE)
        assert ours.read_bytes() == theirs.read_bytes()
    assert not list((out / "sub-04" / "anat").glob("*_xfm.mat"))  # nothing was registered
    assert (out / "sub-04.html").is_file()


def test_multi_session_cohort_runs_through_every_level(tmp_path):
    import json

    bids = tmp_path / "bids"
    spec = CohortSpec(n_subjects=6, contrasts=("T1w",), resolution=RES, sessions=2, seed=3)
    synthesise(bids, spec, nprocs=2)
    out = tmp_path / "out"
    common = ["--resolution", RES, "--nprocs", 2, "--skip-bids-validation"]
    assert run_cli(bids, out, "participant", *common) == 0
    assert run_cli(bids, out, "train", "--epochs", 2, "--cv-folds", 3, *common) == 0
    meta = json.loads((out / "models" / "cnn3d_group" / "model.json").read_text())
    assert set(meta["assignments"][0]) == {f"{i:02d}" for i in range(1, 7)}  # one fold per subject
    assert meta["metrics"]["cross_validation"]["n"] == 12  # both sessions of each, out of fold
    for member in meta["training"]["members"].values():
        assert len(member["trained_on"]) == 4
    assert (
        run_cli(
            bids, out, "participant", "--model", "cnn3d_group", "--session-label", "01", *common
        )
        == 0
    )
    for sub in ("01", "04"):
        assert list(
            (out / f"sub-{sub}" / "ses-01" / "anat").glob("*_method-gradcam_*_heatmap.nii.gz")
        )
        assert not list((out / f"sub-{sub}" / "ses-02" / "anat").glob("*_heatmap.nii.gz"))
    assert run_cli(bids, out, "group", "--n-perm", 100, *common) == 0
    measures = pd.read_csv(out / "group" / "measures.tsv", sep="\t")
    assert sorted(measures["subject"].unique()) == [f"sub-{i:02d}" for i in range(1, 7)]
    assert not measures.duplicated(["subject", "method", "target"]).any()  # one row per subject
    report = (out / "sub-02.html").read_text()
    assert "sub-02_ses-01" in report and "sub-02_ses-02" in report
    assert "Across sessions" not in report  # one session classified: nothing to compare
    assert validator_errors(out) == []


def test_the_change_across_sessions_runs_from_the_first_classified_session_to_the_last():
    from bidsxai.reports.subject import across_sessions

    def view(key, probabilities, p95):
        heatmaps = [{"method": "gradcam", "target": "MS", "p95": p95}]
        prediction = {"predicted": max(probabilities, key=probabilities.get)}
        prediction["probabilities"] = probabilities
        return {"key": key, "prediction": prediction, "heatmaps": heatmaps}

    failed = {"key": "sub-01_ses-02", "prediction": None, "heatmaps": []}
    table = across_sessions(
        [view("sub-01_ses-01", {"HC": 0.7, "MS": 0.3}, 0.2), failed,
         view("sub-01_ses-03", {"HC": 0.4, "MS": 0.6}, 0.5)]
    )  # fmt: skip
    assert table["columns"] == ["P(HC)", "P(MS)", "p95 gradcam, MS"]
    assert [r["key"] for r in table["rows"]] == ["sub-01_ses-01", "sub-01_ses-03"]
    np.testing.assert_allclose(table["change"], [-0.3, 0.3, 0.3])
    assert across_sessions([failed, view("sub-01_ses-01", {"HC": 1.0, "MS": 0.0}, 0.1)]) is None


def test_an_older_bidsignore_gains_the_new_entries(tmp_path):
    from bidsxai.bids import BIDSIGNORE, init_derivatives

    out = tmp_path / "out"
    out.mkdir()
    (out / ".bidsignore").write_text("/mine\n*.html\n")
    init_derivatives(out, tmp_path)
    lines = (out / ".bidsignore").read_text().splitlines()
    assert lines[:2] == ["/mine", "*.html"] and "/cache" in lines and lines.count("*.html") == 1
    init_derivatives(out, tmp_path)
    assert (out / ".bidsignore").read_text().splitlines() == lines
    assert set(BIDSIGNORE.splitlines()) <= set(lines)
