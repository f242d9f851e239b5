"""--derivatives smriprep=PATH: sMRIPrep's T1w, brain mask and composite transform replace bidsxai's
own N4, skull stripping and registration; every mismatch is one line for its session."""

import json
import shutil
import types

import nibabel as nib
import numpy as np
import pytest
from conftest import RES, messages, run_cli
from smriprep_fixture import write_fixture

from bidsxai.bids import SessionInputs
from bidsxai.errors import NoInputError
from bidsxai.evaluate.registration import registration_error_mm
from bidsxai.preprocess.smriprep import session_anatomy
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.validator import validator_errors
from bidsxai.workflows.reference_masks import reference_masks


@pytest.fixture(scope="module")
def smriprep(cohort, tmp_path_factory):
    """The fixture for sub-02, and copies of it under other subjects' names, each with one flaw."""
    root = write_fixture(cohort, tmp_path_factory.mktemp("smriprep") / "smriprep", RES, ["02"])
    _as_subject(root, "04", keep_sources=True)  # made from sub-02's T1w
    _as_subject(root, "05")
    _transform(root, "05").rename(_transform(root, "05", "MNI152NLin2009cAsym"))
    _as_subject(root, "06")
    _transform(root, "06").unlink()
    _as_subject(root, "08")
    data = _transform(root, "08").read_bytes()
    _transform(root, "08").write_bytes(data[: len(data) // 2])  # HDF5, cut short
    return root


def _as_subject(root, subject, keep_sources=False):
    """sub-02's files named for ``subject``; their sidecars name sub-<subject>'s T1w unless
    ``keep_sources``."""
    source, target = root / "sub-02" / "anat", root / f"sub-{subject}" / "anat"
    target.mkdir(parents=True)
    for path in source.iterdir():
        copy = target / path.name.replace("sub-02", f"sub-{subject}")
        if path.suffix == ".json" and not keep_sources:
            copy.write_text(path.read_text().replace("sub-02", f"sub-{subject}"))
        else:
            shutil.copyfile(path, copy)


def _transform(root, subject, space=SPACE):
    return root / f"sub-{subject}/anat/sub-{subject}_from-T1w_to-{space}_mode-image_xfm.h5"


def _session(cohort, subject):
    files = {c: cohort / f"sub-{subject}/anat/sub-{subject}_{c}.nii.gz" for c in ("T1w", "FLAIR")}
    return SessionInputs(subject, None, files)


def test_the_fixture_is_valid_bids_derivatives(smriprep):
    assert validator_errors(smriprep) == []


@pytest.mark.parametrize(
    "subject, message",
    [
        ("07", "sub-07: --derivatives smriprep=.* has no desc-preproc_T1w of this subject"),
        ("04", "made from sub-02_T1w.nii.gz, not from an image of sub-04"),
        (
            "05",
            f"no transform from T1w to {SPACE} .*it has MNI152NLin2009cAsym; run with "
            "--output-spaces",
        ),
        ("06", f"no transform from T1w to {SPACE} in [^(]*$"),
        ("08", r"ANTs cannot read this transform \(truncated file: eof = \d+"),
    ],
)
def test_mismatched_derivatives_are_refused_with_one_line(
    smriprep, cohort, subject, message, capfd
):
    with pytest.raises(NoInputError, match=message):
        session_anatomy({"smriprep": smriprep}, _session(cohort, subject), SPACE)
    assert "HDF5" not in capfd.readouterr().err  # ITK's own report stays out of the terminal


def test_a_file_that_is_not_hdf5_is_refused_before_ants_reads_it(smriprep, cohort, tmp_path):
    broken = tmp_path / "smriprep"
    shutil.copytree(smriprep, broken)
    _transform(broken, "02").write_text("not a transform\n")
    with pytest.raises(NoInputError, match="not an ANTs composite transform"):
        session_anatomy({"smriprep": broken}, _session(cohort, "02"), SPACE)


def test_participant_level_reuses_the_anatomy_and_its_transform(
    smriprep, cohort, pipeline, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["--resolution", RES, "--nprocs", 2, "--skip-bids-validation", "--tissue-maps"]
    derivatives = ["--derivatives", f"smriprep={smriprep}"]
    code = run_cli(
        cohort, out, "participant", "--participant-label", "02", "08", *argv, *derivatives
    )
    err = messages(capsys.readouterr().err)
    assert code == 66 and "Traceback" not in "\n".join(err)
    (line,) = [line for line in err if "sub-08_" in line]
    assert line == (
        f"bidsxai: sub-08_from-T1w_to-{SPACE}_mode-image_xfm.h5: ANTs cannot read this transform "
        "(truncated file: " + line.split("(truncated file: ", 1)[-1]
    )
    anat = out / "sub-02" / "anat"
    # Its transform is copied as it is, and no registration of bidsxai's own is left beside it.
    assert (anat / _transform(smriprep, "02").name).read_bytes() == (
        _transform(smriprep, "02").read_bytes()
    )
    assert not list(anat.glob("*from-T1w_*_xfm.mat"))
    sidecar = json.loads(next(anat.glob("*_desc-preproc_T1w.json")).read_text())
    assert sidecar["RegistrationToTemplate"].startswith("sMRIPrep's transform")
    assert "bids:smriprep:sub-02/anat/sub-02_desc-preproc_T1w.nii.gz" in sidecar["Sources"]
    mask_sidecar = json.loads(next(anat.glob("*_desc-brain_mask.json")).read_text())
    assert mask_sidecar["SkullStripping"] == "sMRIPrep (desc-brain_mask)"
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    assert (out / links["smriprep"]).resolve() == smriprep.resolve()
    assert "this subject's own brain mask (sMRIPrep)" in (out / "sub-02.html").read_text()
    # The transform is the fixture's (the true pose), not one bidsxai found (1-3 mm off at 6 mm).
    template = load_template(RES)
    truth_folder = cohort / "derivatives" / "groundtruth" / "sub-02" / "anat"
    assert registration_error_mm(out, cohort, "02", None, template) < 0.01
    assert registration_error_mm(pipeline["out"], cohort, "02", None, template) > 0.2
    # The T1w is sMRIPrep's moved by its transform: what ANTs makes of the same transform, more
    # closely than bidsxai's own registration of the raw T1w.
    fixture = _data(smriprep / f"sub-02/anat/sub-02_space-{SPACE}_res-6_desc-preproc_T1w.nii.gz")
    reused = _data(next(anat.glob("*_desc-preproc_T1w.nii.gz")))
    own = _data(next((pipeline["out"] / "sub-02/anat").glob("*_desc-preproc_T1w.nii.gz")))
    brain = reused != 0
    reused_r = np.corrcoef(reused[brain], fixture[brain])[0, 1]
    assert reused_r > 0.998 and reused_r > np.corrcoef(own[brain], fixture[brain])[0, 1]
    # Its tissue maps are used as they are, and modulation scales GM by the transform's volume
    # change: the true pose's determinant.
    assert not list(anat.glob("sub-02_label-*_probseg.nii.gz"))
    gm_sidecar = json.loads(next(anat.glob("*_res-6_label-GM_probseg.json")).read_text())
    assert gm_sidecar["Segmentation"] == "sMRIPrep's label-<tissue>_probseg"
    assert gm_sidecar["Sources"] == ["bids:smriprep:sub-02/anat/sub-02_label-GM_probseg.nii.gz"]
    gm = _data(next(anat.glob("*_res-6_label-GM_probseg.nii.gz")))
    modulated = _data(next(anat.glob("*_res-6_label-GM_desc-modulated_probseg.nii.gz")))
    pose = json.loads((truth_folder / "sub-02_label-lesion_mask.json").read_text())
    inside = template.brain_mask & (gm > 0.1)
    np.testing.assert_allclose(
        modulated[inside] / gm[inside],
        abs(np.linalg.det(np.array(pose["TemplateToScanner"])[:3, :3])),
        rtol=1e-3,
    )
    # Lesion masks drawn on the T1w or on the FLAIR move through the composite transform (and the
    # FLAIR's rigid one) onto the template's truth.
    expected = _data(next(truth_folder.glob("*space-MNI*_mask.nii.gz"))) > 0
    settings = types.SimpleNamespace(output_dir=out)
    for drawn_on in ("label-lesion", "space-FLAIR_label-lesion"):
        masks = tmp_path / drawn_on
        (masks / "sub-02" / "anat").mkdir(parents=True)
        shutil.copy(cohort / "derivatives/groundtruth/dataset_description.json", masks)
        shutil.copy(truth_folder / f"sub-02_{drawn_on}_mask.nii.gz", masks / "sub-02" / "anat")
        settings.derivatives = {"masks": masks}
        warped = reference_masks(settings, _session(cohort, "02"), template)["lesion"].array
        assert 2 * (warped & expected).sum() / (warped.sum() + expected.sum()) > 0.4


def _data(path):
    return np.asarray(nib.load(str(path)).dataobj, np.float32)


def test_two_anatomical_datasets_or_one_that_is_not_derivatives_are_refused(
    smriprep, cohort, tmp_path, capsys
):
    out = tmp_path / "out"
    both = ["--derivatives", f"smriprep={smriprep}", f"fmriprep={smriprep}"]
    assert run_cli(cohort, out, "participant", *both) == 64
    plain = tmp_path / "fmriprep"
    plain.mkdir()
    assert run_cli(cohort, out, "participant", "--derivatives", plain) == 66
    err = messages(capsys.readouterr().err)
    assert "give one anatomical dataset" in err[0] and "no dataset_description.json" in err[1]
