"""Bad input: a one-line message, the documented exit code, nothing written into BIDS_DIR, and
the other subjects still processed."""

import gzip
import json

import nibabel as nib
import numpy as np
import pytest
from conftest import RES, messages, run_cli, snapshot

from bidsxai.errors import (
    EXIT_INVALID_BIDS,
    EXIT_NO_INPUT,
    EXIT_NOTHING_SELECTED,
    EXIT_UNKNOWN_LEVEL,
    EXIT_USAGE,
)


def one_line_error(capsys):
    err = messages(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("bidsxai: error:"), err
    return err[0]


def test_folder_that_is_not_bids(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert run_cli(tmp_path / "data", tmp_path / "out", "participant") == EXIT_INVALID_BIDS
    assert "not a BIDS dataset" in one_line_error(capsys)


def test_missing_input_folder(tmp_path, capsys):
    assert run_cli(tmp_path / "nope", tmp_path / "out", "participant") == EXIT_NO_INPUT
    one_line_error(capsys)


def test_an_unknown_level_exits_17_as_the_bids_apps_ask(cohort, tmp_path, capsys):
    assert run_cli(cohort, tmp_path / "o", "everything") == EXIT_UNKNOWN_LEVEL
    assert "everything" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_usage_errors_exit_64(cohort, tmp_path, capsys):
    assert run_cli(cohort, tmp_path / "o", "participant", "--device", "tpu") == EXIT_USAGE
    one_line_error(capsys)
    assert run_cli(cohort, tmp_path / "o", "train", "--arch", "resnet9000") == EXIT_USAGE
    assert "resnet9000" in one_line_error(capsys)
    assert run_cli(cohort, tmp_path / "o", "participant", "--methods", "lime") == EXIT_USAGE
    assert "lime" in one_line_error(capsys)
    assert run_cli(cohort, tmp_path / "o", "group", "--threshold", "top140") == EXIT_USAGE
    assert "top140" in one_line_error(capsys)
    assert run_cli(cohort, tmp_path / "o", "group", "--cluster-p", "5") == EXIT_USAGE
    assert "--cluster-p" in one_line_error(capsys)


@pytest.mark.parametrize("where", ["same", "inside", "work"])
def test_outputs_that_would_write_into_the_input(cohort, tmp_path, capsys, where):
    before = snapshot(cohort)
    out = {"same": cohort, "inside": cohort / "sub-01" / "out", "work": tmp_path / "out"}[where]
    extra = ["-w", cohort / "code" / "work"] if where == "work" else []
    assert run_cli(cohort, out, "participant", "--skip-bids-validation", *extra) == EXIT_USAGE
    one_line_error(capsys)
    assert snapshot(cohort) == before
    assert not (cohort / "sub-01" / "out").exists() and not (cohort / "code").exists()


def test_unknown_participant_label(cohort, tmp_path, capsys):
    assert (
        run_cli(
            cohort,
            tmp_path / "out",
            "participant",
            "--participant_label",
            "42",
            "--skip-bids-validation",
        )
        == EXIT_NOTHING_SELECTED
    )
    assert "sub-42" in one_line_error(capsys)


def test_model_path_without_bundle(cohort, tmp_path, capsys):
    assert (
        run_cli(
            cohort, tmp_path / "out", "participant", "--model", tmp_path, "--skip-bids-validation"
        )
        == EXIT_NO_INPUT
    )
    assert "no model bundle" in one_line_error(capsys)


def test_target_column_that_does_not_exist(pipeline, cohort, capsys):
    assert (
        run_cli(
            cohort,
            pipeline["out"],
            "train",
            "--target",
            "diagnosis",
            "--resolution",
            RES,
            "--skip-bids-validation",
        )
        == EXIT_USAGE
    )
    assert "diagnosis" in one_line_error(capsys)


@pytest.mark.parametrize(
    "option, word",
    [
        (["--cv-folds", 1], "--cv-folds"),
        (["--cv-folds", 7], "only 6 subjects"),
        (["--test-fraction", 1], "--test-fraction"),
        (["--covariates", "age"], "cnn3d takes none"),
        (["--arch", "gamer_mril", "--covariates", "sex"], "numeric"),
        (["--arch", "gamer_mril", "--covariates", "age", "edss"], "takes 1"),
        (["--loss-weight", "closeness"], "--target-threshold"),
        (["--target", "group", "--target-threshold", 5], "not numeric"),
        (["--arch-width", 0.5], "fixed width"),
        (["--arch", "stroke_gap", "--augment", "sideways"], "--augment"),
    ],
)
def test_training_options_that_cannot_work(pipeline, cohort, capsys, option, word):
    models = snapshot(pipeline["out"] / "models")
    assert (
        run_cli(
            cohort,
            pipeline["out"],
            "train",
            "--resolution",
            RES,
            "--skip-bids-validation",
            "--model",
            "refused",
            *option,
        )
        == EXIT_USAGE
    )
    assert word in one_line_error(capsys)
    assert snapshot(pipeline["out"] / "models") == models


@pytest.mark.parametrize(
    "option, expected_code, word",
    [
        (["--covariates", "height"], EXIT_USAGE, "height"),
        (["--covariates", "group"], EXIT_USAGE, "explain the group labels"),
        (["--correlate", "mmse"], EXIT_USAGE, "mmse"),
        (["--correlate", "edss", "--correlate-image", "PD"], EXIT_NO_INPUT, "PD"),
        (["--atlas", "missing.nii.gz"], EXIT_NO_INPUT, "missing.nii.gz"),
    ],
)
def test_group_options_that_cannot_work(pipeline, cohort, capsys, option, expected_code, word):
    before = snapshot(pipeline["out"] / "group")
    assert (
        run_cli(
            cohort,
            pipeline["out"],
            "group",
            "--resolution",
            RES,
            "--skip-bids-validation",
            "--n-perm",
            "0",
            *option,
        )
        == expected_code
    )
    assert word in one_line_error(capsys)
    assert snapshot(pipeline["out"] / "group") == before  # refused before anything is written


def test_invalid_bids_is_caught_by_the_official_validator(cohort_copy, tmp_path, capsys):
    (cohort_copy / "sub-01" / "anat" / "sub-01_bogus.nii.gz").write_bytes(b"x")
    assert run_cli(cohort_copy, tmp_path / "out", "participant") == EXIT_INVALID_BIDS
    assert "validator" in one_line_error(capsys)


def test_damaged_subjects_fail_alone_and_others_are_processed(cohort_copy, capsys):
    """No T1w, a truncated NIfTI and a 4D image: three one-line errors, subject 04 still done."""
    bids = cohort_copy
    (bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz").unlink()
    t1 = bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    t1.write_bytes(t1.read_bytes()[:2000])
    flair = bids / "sub-03" / "anat" / "sub-03_FLAIR.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8, 2), np.float32), np.eye(4)), flair)
    out = bids / "derivatives" / "bidsxai"  # the conventional place inside BIDS_DIR
    before = snapshot(bids)
    code = run_cli(
        bids,
        out,
        "participant",
        "--participant-label",
        "01",
        "02",
        "03",
        "04",
        "--resolution",
        RES,
        "--nprocs",
        2,
        "--skip-bids-validation",
    )
    assert code == EXIT_NO_INPUT
    err = messages(capsys.readouterr().err)
    assert len(err) == 3
    assert "sub-01" in err[0] and "no T1w" in err[0]
    assert "sub-02" in err[1] and "not a readable NIfTI" in err[1]
    assert "sub-03" in err[2] and "3D" in err[2]
    assert (out / "sub-04" / "anat").is_dir() and (out / "sub-04.html").is_file()
    assert not (out / "sub-02").exists()
    after = {p: v for p, v in snapshot(bids).items() if out not in p.parents}
    assert after == {p: v for p, v in before.items() if out not in p.parents}


def test_bids_filter_file_that_selects_nothing(cohort, tmp_path, capsys):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"t1w": {"acquisition": "nonexistent"}}))
    out = tmp_path / "out"
    code = run_cli(
        cohort,
        out,
        "participant",
        "--participant-label",
        "05",
        "--bids-filter-file",
        filters,
        "--resolution",
        RES,
        "--skip-bids-validation",
    )
    assert code == EXIT_NO_INPUT
    assert "no T1w" in capsys.readouterr().err


def test_corrupt_gzip_is_reported_not_raised(cohort_copy, tmp_path, capsys):
    t2 = cohort_copy / "sub-05" / "anat" / "sub-05_T2w.nii.gz"
    t2.write_bytes(gzip.compress(b"\0" * 400))
    code = run_cli(
        cohort_copy,
        tmp_path / "out",
        "participant",
        "--participant-label",
        "05",
        "--resolution",
        RES,
        "--skip-bids-validation",
    )
    assert code == EXIT_NO_INPUT
    assert "sub-05" in capsys.readouterr().err
    # The failed subject still gets a report, with the reason in its Errors section.
    report = (tmp_path / "out" / "sub-05.html").read_text()
    errors = report[report.index('<section id="errors">') :]
    assert "sub-05_T2w.nii.gz" in errors and "No errors to report" not in errors
    assert "This session failed" in report and "unreadable" in report


def test_a_model_trained_in_another_space_is_refused(pipeline, cohort, tmp_path, capsys):
    import shutil

    bundle = tmp_path / "old_bundle"
    shutil.copytree(pipeline["out"] / "models" / "cnn3d_group", bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["input"]["space"] = "MNI152NLin2009aAsym"
    (bundle / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    # Without --output-spaces the bundle's space is taken; given, the contradiction is refused.
    argv = ["--model", bundle, "--output-spaces", "MNI152NLin2009aSym", "--resolution", RES]
    code = run_cli(cohort, out, "participant", *argv, "--skip-bids-validation")
    assert code == EXIT_USAGE
    assert "MNI152NLin2009aAsym" in one_line_error(capsys)
    assert not out.exists()


def test_a_t1w_with_a_degenerate_affine_fails_its_subject_with_one_line(
    cohort_copy, tmp_path, capsys
):
    """Found by the input fuzz: zero voxel sizes made nibabel raise inside the reorientation."""
    t1w = cohort_copy / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_sform(np.diag([0.0, 0.0, 0.0, 1.0]), code=1)
    data = np.random.default_rng(0).random((8, 9, 7)).astype(np.float32)
    nib.Nifti1Image(data, None, header).to_filename(str(t1w))
    code = run_cli(
        cohort_copy,
        tmp_path / "out",
        "participant",
        "--participant-label",
        "01",
        "--resolution",
        RES,
        "--skip-bids-validation",
    )
    err = capsys.readouterr().err
    assert code == EXIT_NO_INPUT and "degenerate" in err and "internal error" not in err


def test_a_t1w_without_a_brain_fails_its_subject_with_one_line(
    cohort, tmp_path, capsys, monkeypatch
):
    """Found by the input fuzz: a T1w in which brain extraction finds nothing ended in an
    internal error from the normalisation ("empty brain mask"), exit 1."""
    monkeypatch.setattr(
        "bidsxai.preprocess.pipeline.deepbet_mask", lambda t1w: np.zeros(t1w.shape, bool)
    )
    out = tmp_path / "out"
    argv = ["participant", "--participant-label", "01", "--resolution", RES]
    argv += ["--skull-strip", "deepbet", "--nprocs", 1]  # 6 mm voxels would take the template's
    code = run_cli(cohort, out, *argv, "--skip-bids-validation")
    err = messages(capsys.readouterr().err)
    failed = [line for line in err if "sub-01" in line and "brain mask" in line]
    assert code == EXIT_NO_INPUT and len(failed) == 1 and "empty on the template grid" in failed[0]
    assert not any("internal error" in line for line in err)
    assert not list(out.glob("sub-01/**/*_desc-preproc_T1w.nii.gz"))
