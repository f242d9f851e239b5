"""Scans as scanners write them (``bidsxai-synth --scanner-like``): the files look like a scanner's,
and the participant level crops the neck, registers to the known pose and extracts the brain with
deepbet."""

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import RES, run_cli

from bidsxai.evaluate.registration import registration_error_mm
from bidsxai.outputs import brain_mask_path, label_mask_path, probseg_path, sidecar_path
from bidsxai.synth import (
    CohortSpec,
    plan_subjects,
    sample_into,
    small_motion,
    synthesise_subject,
    write_dataset_files,
)
from bidsxai.synth_scanner import acquisition, scanner_file
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.validator import validator_errors

SUBJECT = "02"


@pytest.fixture(scope="module")
def scanner_like(tmp_path_factory):
    """One patient's 1 mm sagittal T1w (a 1 mm grid takes seconds; the FLAIR's grid is checked on
    its own), and its participant level at the tests' 6 mm model grid."""
    root = tmp_path_factory.mktemp("scanner_like")
    bids, out = root / "bids", root / "out"
    spec = CohortSpec(
        n_subjects=2,
        groups=("HC", "RRMS"),
        contrasts=("T1w",),
        resolution=RES,
        seed=3,
        scanner_like=True,
    )
    patient = plan_subjects(spec)[1:]
    write_dataset_files(bids, spec, patient)
    synthesise_subject(bids, spec, patient[0])
    argv = ["--resolution", RES, "--skip-bids-validation", "--tissue-maps"]
    code = run_cli(bids, out, "participant", *argv)
    truth = label_mask_path(bids / "derivatives" / "groundtruth", SUBJECT, None, "lesion")
    pose = np.array(json.loads(sidecar_path(truth).read_text())["TemplateToScanner"])
    return bids, out, code, pose


def _anat(bids, suffix):
    return nib.load(bids / f"sub-{SUBJECT}" / "anat" / f"sub-{SUBJECT}_{suffix}.nii.gz")


def test_the_files_look_like_a_scanners(scanner_like, tmp_path):
    bids, _, _, pose = scanner_like
    assert validator_errors(bids) == []
    t1w = _anat(bids, "T1w")
    rng = np.random.default_rng(1)
    flair_grids = [acquisition("FLAIR", small_motion(rng) @ pose, rng) for _ in range(8)]
    labels = {label.split(" ")[1] for _, _, label in flair_grids}
    assert labels == {"LAS", "LPS"}  # both storage orders occur
    for shape, affine, _ in flair_grids:
        flair = nib.Nifti1Image(np.zeros(shape, np.int16), affine)
        assert nib.aff2axcodes(flair.affine) in (("L", "A", "S"), ("L", "P", "S"))
        assert np.allclose(flair.header.get_zooms()[:2], 0.9)
        assert flair.header.get_zooms()[2] in (np.float32(1.2), np.float32(3.0))
        direction = np.abs(affine[:3, :3]) / flair.header.get_zooms()[:3]
        assert not np.allclose(direction, np.round(direction), atol=1e-3)  # oblique
    truth = nib.load(label_mask_path(bids / "derivatives" / "groundtruth", SUBJECT, None, "lesion"))
    assert t1w.shape == (256, 256, 176) and np.allclose(t1w.header.get_zooms(), 1.0)
    assert nib.aff2axcodes(t1w.affine)[2] in "LR"  # sagittal slices
    assert np.allclose(truth.affine, t1w.affine, atol=1e-4)  # nibabel reads the true grid
    assert t1w.get_data_dtype() == np.int16 and t1w.dataobj.slope != 1.0
    direction = np.abs(t1w.affine[:3, :3]) / t1w.header.get_zooms()[:3]
    assert not np.allclose(direction, np.round(direction), atol=1e-3)  # oblique
    # The neck, 110 mm below the template's origin, is in the field of view.
    i, j, k = np.round((np.linalg.inv(t1w.affine) @ pose @ [0.0, -15.0, -110.0, 1.0])[:3])
    data = np.asarray(t1w.dataobj)
    assert data[
        int(i) - 2 : int(i) + 3, int(j) - 2 : int(j) + 3, int(k) - 2 : int(k) + 3
    ].mean() > (0.2 * data.max())
    # Every header variant reads back to the same grid and values through nibabel.
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (4, 5, 6)).astype(np.float32)
    for header in ("both", "differ", "qform", "sform"):
        path = tmp_path / f"{header}.nii.gz"
        scanner_file(values, t1w.affine, header, rng).to_filename(path)
        image = nib.load(path)
        assert np.allclose(image.affine, t1w.affine, atol=1e-4), header
        if header == "differ":  # the qform lost the obliquity; nibabel reads the sform
            assert not np.allclose(image.header.get_qform(), t1w.affine, atol=1e-3)
        read = np.asarray(image.dataobj)
        assert np.allclose(read / read.max(), values / values.max(), atol=1e-3), header


def test_the_participant_level_registers_and_extracts_the_brain(scanner_like):
    bids, out, code, pose = scanner_like
    assert code == 0
    template = load_template(RES)
    # At 6 mm every cohort subject is within one voxel (docs/benchmarks.md: 0.11-0.17 mm at 2 mm).
    assert registration_error_mm(out, bids, SUBJECT, None, template) < RES / 2
    # deepbet's mask, on the raw T1w's grid, against the true brain (the template's, posed).
    t1w = _anat(bids, "T1w")
    own = nib.load(brain_mask_path(out, SUBJECT, None, None, None))
    assert own.shape == t1w.shape and np.allclose(own.affine, t1w.affine, atol=1e-4)
    fine = load_template(1.0)
    brain = sample_into(
        fine.brain_mask.astype(np.float32), fine.affine, t1w.shape, t1w.affine, pose
    )
    brain, mask = brain > 0.5, np.asarray(own.dataobj) > 0
    assert 2 * (brain & mask).sum() / (brain.sum() + mask.sum()) > 0.95
    on_grid = brain_mask_path(out, SUBJECT, None, RES, SPACE)
    assert json.loads(sidecar_path(on_grid).read_text())["SkullStripping"].startswith("deepbet")
    report = (out / f"sub-{SUBJECT}.html").read_text()
    assert "own brain mask (deepbet)" in report
    assert "deepbet [@fisch2024]" in report  # the methods text cites it


def test_tissue_maps_of_an_oblique_scan_follow_its_grey_matter(scanner_like):
    """Atropos on an oblique 1 mm grid (it refused priors whose origin differed by 2e-6 mm)."""
    bids, out, code, pose = scanner_like
    t1w = _anat(bids, "T1w")
    gm = nib.load(probseg_path(out, SUBJECT, None, "GM", None, None))
    assert gm.shape == t1w.shape and np.allclose(gm.affine, t1w.affine, atol=1e-4)
    fine = load_template(1.0)
    truth = sample_into(fine.gm, fine.affine, t1w.shape, t1w.affine, pose)
    near = truth > 0.01
    assert np.corrcoef(np.asarray(gm.dataobj)[near], truth[near])[0, 1] > 0.5
    report = (out / f"sub-{SUBJECT}.html").read_text()
    assert "<h3>Tissue maps</h3>" in report and "Atropos (ANTs)" in report
