"""--tissue-maps: GM, WM and CSF of the T1w by Atropos with template priors, moved to the template,
GM modulated by the Jacobian determinant; and tissue maps as model inputs (train --contrasts)."""

import json
import types

import ants
import nibabel as nib
import numpy as np
import pytest
from conftest import RES, messages, run_cli

from bidsxai.errors import NoInputError
from bidsxai.models.registry import get_architecture
from bidsxai.outputs import model_input_path, probseg_path, xfm_path
from bidsxai.preprocess.tissue import jacobian_determinant
from bidsxai.synth import sample_into
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.training.dataset import load_inputs
from bidsxai.workflows.train import input_spec, model_inputs

SUBJECTS = ("02", "03")


@pytest.fixture(scope="module")
def tissue_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("tissue") / "out"
    argv = ["--resolution", RES, "--nprocs", 2, "--skip-bids-validation", "--tissue-maps"]
    assert run_cli(cohort, out, "participant", "--participant-label", *SUBJECTS, *argv) == 0
    return out


def _pose(cohort, subject):
    sidecar = (
        cohort / f"derivatives/groundtruth/sub-{subject}/anat/sub-{subject}_label-lesion_mask.json"
    )
    return np.array(json.loads(sidecar.read_text())["TemplateToScanner"])


def test_tissue_maps_find_the_true_grey_matter_and_modulation_keeps_its_volume(tissue_run, cohort):
    template = load_template(RES)
    brain = template.brain_mask
    for subject in SUBJECTS:
        native = nib.load(probseg_path(tissue_run, subject, None, "GM", None, None))
        gm = native.get_fdata()
        # The truth: the template's GM where the synthetic head pose put it.
        truth = sample_into(
            template.gm, template.affine, native.shape, native.affine, _pose(cohort, subject)
        )
        near = truth > 0.01
        assert np.corrcoef(gm[near], truth[near])[0, 1] > 0.7
        maps = {
            name: nib.load(
                model_input_path(tissue_run, subject, None, name, RES, SPACE)
            ).get_fdata()
            for name in ("GM", "WM", "CSF", "GMmod")
        }
        assert np.corrcoef(maps["GM"][brain], template.gm[brain])[0, 1] > 0.7
        total = maps["GM"] + maps["WM"] + maps["CSF"]
        assert np.median(total[brain]) == pytest.approx(1, abs=0.05)
        # Modulated GM keeps the subject's GM volume; unmodulated GM has the template's scale.
        volume = gm.sum() * np.prod(native.header.get_zooms()[:3])
        modulated = maps["GMmod"].sum() * RES**3
        assert modulated == pytest.approx(volume, rel=0.06)
        assert abs(modulated - volume) < abs(maps["GM"].sum() * RES**3 - volume) or (
            abs(np.linalg.det(_pose(cohort, subject)[:3, :3]) - 1) < 0.06
        )


def test_the_jacobian_determinant_of_an_affine_is_its_matrix_determinant(pipeline, cohort):
    template = load_template(RES)
    tpl_img = ants.from_nibabel_nifti(template.image(template.t1w))
    for subject in SUBJECTS:
        path = xfm_path(pipeline["out"], subject, None, "T1w", SPACE)
        matrix = np.array(ants.read_transform(str(path)).parameters[:9]).reshape(3, 3)
        t1w = nib.as_closest_canonical(
            nib.load(cohort / f"sub-{subject}/anat/sub-{subject}_T1w.nii.gz")
        )
        determinant = jacobian_determinant(tpl_img, ants.from_nibabel_nifti(t1w), [path])
        inside = template.brain_mask
        np.testing.assert_allclose(determinant[inside], abs(np.linalg.det(matrix)), rtol=1e-4)


def test_contrasts_choose_the_model_inputs(tissue_run, pipeline, cohort):
    sessions = [types.SimpleNamespace(subject=s, session=None, key=f"sub-{s}") for s in SUBJECTS]
    settings = types.SimpleNamespace(
        output_dir=tissue_run,
        resolution=RES,
        output_space=SPACE,
        contrasts=["T1w", "GMmod"],
        normalisation="percentile",
    )
    spec = input_spec(settings, get_architecture("cnn3d"), sessions)
    assert spec["contrasts"] == ["T1w", "GMmod"]
    stacked = load_inputs(tissue_run, "02", None, spec)
    assert stacked.shape[0] == 2 and stacked[1].max() > 0
    settings.output_dir = pipeline["out"]  # preprocessed without --tissue-maps
    with pytest.raises(
        NoInputError,
        match=r"--contrasts GMmod: .* \(run the participant level with --tissue-maps\)",
    ):
        model_inputs(settings, sessions)


def test_an_unknown_model_input_is_a_usage_error(cohort, tmp_path, capsys):
    assert run_cli(cohort, tmp_path / "out", "train", "--contrasts", "T1w,PD") == 64
    assert (
        "unknown PD; choose from T1w, T2w, FLAIR, GM, WM, CSF, GMmod"
        in messages(capsys.readouterr().err)[0]
    )
