"""Multi-session cohorts and already preprocessed inputs (--derivatives)."""

import pandas as pd

from bidsxai.bids import open_layout, select_inputs
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.synth import CohortSpec, synthesise
from bidsxai.validator import validator_errors

from conftest import RES, run_cli


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
    code = run_cli(cohort, out, "participant", "--participant-label", "04", "--derivatives",
                   f"earlier={pipeline['out']}", "--resolution", RES, "--skip-bids-validation")
    assert code == 0
    for contrast in ("T1w", "T2w", "FLAIR"):
        ours = preproc_path(out, "04", None, contrast, RES)
        theirs = preproc_path(pipeline["out"], "04", None, contrast, RES)
        assert ours.read_bytes() == theirs.read_bytes()
    assert not list((out / "sub-04" / "anat").glob("*_xfm.mat"))  # nothing was registered
    assert (out / "sub-04.html").is_file()
