"""Reference masks for localisation: template space as is, T1w space through the subject's own
transforms, and one line for every mask that cannot be placed."""

import shutil
import time
import types

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import skimage.measure
from conftest import RES, run_cli
from nibabel.processing import resample_from_to

from bidsxai.bids import SessionInputs
from bidsxai.errors import NoInputError
from bidsxai.template import load_template
from bidsxai.workflows.lesion_load import lesion_load
from bidsxai.workflows.reference_masks import reference_masks

ARGV = ["--model", "cnn3d_group", "--resolution", RES, "--skip-bids-validation", "--nprocs", 1]


@pytest.fixture
def native_masks(cohort, tmp_path):
    """The cohort's ground truth with its template-space masks removed: T1w space only."""
    masks = tmp_path / "native"
    shutil.copytree(cohort / "derivatives" / "groundtruth", masks)
    for path in masks.rglob("*space-*_mask.*"):
        path.unlink()
    return masks


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _masks(settings_out, masks, cohort, subject):
    files = {c: cohort / f"sub-{subject}/anat/sub-{subject}_{c}.nii.gz" for c in ("T1w", "FLAIR")}
    session = SessionInputs(subject, None, files)
    settings = types.SimpleNamespace(derivatives={"masks": masks}, output_dir=settings_out)
    placed = reference_masks(settings, session, load_template(RES))
    return {label: mask.array for label, mask in placed.items()}


def test_t1w_space_masks_land_where_the_template_space_masks_are(pipeline, cohort, native_masks):
    template = load_template(RES)
    truth = cohort / "derivatives" / "groundtruth"
    checked = 0
    for subject in ("02", "03", "05", "06"):
        expected = np.asarray(
            nib.load(
                next((truth / f"sub-{subject}" / "anat").glob("*space-MNI*_mask.nii.gz"))
            ).dataobj
        )
        expected = expected > 0
        if expected.sum() < 10:
            continue
        warped = _masks(pipeline["out"], native_masks, cohort, subject)["lesion"]
        native = nib.load(
            str(next((native_masks / f"sub-{subject}" / "anat").glob("*_mask.nii.gz")))
        )
        unmoved = resample_from_to(native, (template.shape, template.affine), order=1)
        unmoved = np.asarray(unmoved.dataobj) >= 0.5  # the same mask without the transform
        # 6 mm voxels cost overlap at the lesions' edges; at 2 mm the Dice is 0.83-0.92.
        assert _dice(warped, expected) > 0.4
        assert _dice(warped, expected) > _dice(unmoved, expected) + 0.2
        checked += 1
    assert checked >= 2


def test_flair_space_masks_go_through_the_flair_to_t1w_transform(pipeline, cohort, tmp_path):
    template = load_template(RES)
    masks = tmp_path / "flair"
    shutil.copytree(cohort / "derivatives" / "groundtruth", masks)
    for path in masks.rglob("*_mask.*"):
        if "_space-FLAIR_" not in path.name:
            path.unlink()
    truth = cohort / "derivatives" / "groundtruth"
    for subject in ("02", "03"):
        folder = f"sub-{subject}/anat"
        expected = nib.load(next((truth / folder).glob("*space-MNI*_mask.nii.gz"))).dataobj
        expected = np.asarray(expected) > 0
        warped = _masks(pipeline["out"], masks, cohort, subject)["lesion"]
        flair = nib.load(next((masks / folder).glob("*_mask.nii.gz")))
        unmoved = resample_from_to(flair, (template.shape, template.affine), order=1)
        unmoved = np.asarray(unmoved.dataobj) >= 0.5
        assert _dice(warped, expected) > 0.4
        assert _dice(warped, expected) > _dice(unmoved, expected) + 0.2
    # The FLAIR's mask named as if it were the T1w's: refused, with the name it needs.
    drawn = next((masks / "sub-03/anat").glob("*_mask.nii.gz"))
    drawn.rename(drawn.with_name("sub-03_label-lesion_mask.nii.gz"))
    with pytest.raises(NoInputError, match="on the FLAIR's grid: name it space-FLAIR"):
        _masks(pipeline["out"], masks, cohort, "03")


def test_participant_level_localises_against_t1w_space_masks(
    pipeline, cohort, native_masks, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    code = run_cli(
        cohort,
        out,
        "participant",
        "--participant-label",
        "03",
        *ARGV,
        "--derivatives",
        f"masks={native_masks}",
    )
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "sub-03" / "anat" / "sub-03_evaluation.tsv", sep="\t")
    assert table["auroc_lesion"].between(0, 1).all()
    # The warped mask is kept on the run's grid, and the report outlines it on the heatmaps.
    assert list((out / "sub-03" / "anat").glob("sub-03_space-*_res-6_label-lesion_mask.nii.gz"))
    assert "the reference masks (lesion)" in (out / "sub-03.html").read_text()
    # Lesion load, measured on the T1w-space mask as given, joins every row of the measures.
    native = nib.load(next((native_masks / "sub-03" / "anat").glob("*_mask.nii.gz")))
    lesion = np.asarray(native.dataobj) > 0
    measures = pd.read_csv(out / "sub-03" / "anat" / "sub-03_measures.tsv", sep="\t")
    assert lesion.any() and measures["lesion_count"].nunique() == 1
    assert measures["lesion_count"][0] == skimage.measure.label(lesion, connectivity=3).max()
    np.testing.assert_allclose(
        measures["lesion_volume_mm3"][0],
        lesion.sum() * np.prod(native.header.get_zooms()),
        rtol=1e-5,  # the TSV keeps 6 significant digits
    )


def test_lesion_load_counts_lesions_touching_at_a_corner_as_one():
    mask = np.zeros((12, 12, 12), bool)
    mask[1:3, 1:3, 1:3] = True
    mask[3, 3, 3] = True  # touches the first cube at a corner only: the same lesion
    mask[6:9, 6:8, 6:7] = True
    mask[10, 10, 10] = True
    volume, count = lesion_load(mask, (1.0, 0.5, 2.0))
    assert count == 3 == skimage.measure.label(mask, connectivity=3).max()
    assert volume == mask.sum() * 1.0


def test_a_template_space_mask_is_preferred_to_the_t1w_one(pipeline, cohort):
    truth = cohort / "derivatives" / "groundtruth"
    chosen = _masks(pipeline["out"], truth, cohort, "03")["lesion"]
    expected = next((truth / "sub-03" / "anat").glob("*space-MNI*_mask.nii.gz"))
    assert np.array_equal(chosen, np.asarray(nib.load(expected).dataobj) > 0)


def test_masks_in_an_unknown_space_or_off_the_t1w_grid_are_refused(pipeline, cohort, native_masks):
    folder = native_masks / "sub-03" / "anat"
    native = next(folder.glob("*_mask.nii.gz"))
    image = nib.load(native)
    nib.Nifti1Image(np.asarray(image.dataobj)[:-1], image.affine).to_filename(str(native))
    with pytest.raises(NoInputError, match="not on the grid of sub-03_T1w"):
        _masks(pipeline["out"], native_masks, cohort, "03")
    native.rename(folder / "sub-03_space-Foo_label-lesion_mask.nii.gz")
    with pytest.raises(NoInputError, match="space-Foo is not this run"):
        _masks(pipeline["out"], native_masks, cohort, "03")


def test_bad_reference_masks_fail_their_session_with_one_line(pipeline, cohort, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    start = time.time()
    argv = ARGV
    not_bids = tmp_path / "plain"
    not_bids.mkdir()
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "02",
            *argv,
            "--derivatives",
            f"masks={not_bids}",
        )
        == 66
    )
    assert "not a BIDS derivatives dataset" in capsys.readouterr().err
    masks = tmp_path / "masks"
    shutil.copytree(cohort / "derivatives" / "groundtruth", masks)
    wrong = next((masks / "sub-03" / "anat").glob("*space-MNI*_mask.nii.gz"))
    wrong.rename(wrong.parent / "sub-03_space-MNI152NLin6Asym_res-6_label-lesion_mask.nii.gz")
    code = run_cli(
        cohort,
        out,
        "participant",
        "--participant-label",
        "02",
        "03",
        *argv,
        "--derivatives",
        f"masks={masks}",
    )
    err = capsys.readouterr().err
    assert code == 66 and "sub-03" in err and "is not this run's" in err and "Traceback" not in err
    assert (out / "sub-02" / "anat" / "sub-02_evaluation.tsv").is_file()
    # Refused before its explanations: sub-03 has no heatmap of this run.
    assert not [p for p in (out / "sub-03").rglob("*_heatmap.nii.gz") if p.stat().st_mtime > start]


def test_a_template_space_mask_on_another_grid_of_the_space_is_resampled(
    pipeline, cohort, tmp_path
):
    """nilearn's grid of MNI152NLin2009aSym is not TemplateFlow's: a mask in the run's space on a
    padded, shifted grid comes back on the model grid, voxel for voxel."""
    template = load_template(RES)
    truth = cohort / "derivatives" / "groundtruth"
    given = next((truth / "sub-03" / "anat").glob("*space-MNI*_mask.nii.gz"))
    on_grid = np.asarray(nib.load(given).dataobj) > 0
    padded = np.pad(on_grid, ((2, 1), (0, 3), (1, 1))).astype(np.uint8)
    shift = np.eye(4)
    shift[:3, 3] = [-2, 0, -1]
    masks = tmp_path / "padded"
    shutil.copytree(truth, masks)
    moved = masks / "sub-03" / "anat" / given.name
    nib.Nifti1Image(padded, template.affine @ shift).to_filename(str(moved))
    settings = types.SimpleNamespace(derivatives={"masks": masks}, output_dir=pipeline["out"])
    placed = reference_masks(settings, SessionInputs("03", None, {}), template)["lesion"]
    assert on_grid.any() and np.array_equal(placed.array, on_grid)
    assert "resampled by nearest neighbour" in placed.how


def test_after_nonlinear_registration_masks_go_through_the_saved_displacement_field(
    cohort, native_masks, tmp_path
):
    out = tmp_path / "out"
    argv = ["--participant-label", "03", "--nonlinear", "--resolution", RES, "--nprocs", 1]
    assert run_cli(cohort, out, "participant", *argv, "--skip-bids-validation") == 0
    warp = next((out / "sub-03" / "anat").glob("*_desc-warp_xfm.nii.gz"))
    expected = next(
        (cohort / "derivatives/groundtruth/sub-03/anat").glob("*space-MNI*_mask.nii.gz")
    )
    warped = _masks(out, native_masks, cohort, "03")["lesion"]
    assert _dice(warped, np.asarray(nib.load(expected).dataobj) > 0) > 0.4
    warp.unlink()
    with pytest.raises(NoInputError, match="desc-warp_xfm.nii.gz is missing"):
        _masks(out, native_masks, cohort, "03")
