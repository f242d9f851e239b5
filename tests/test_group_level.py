"""The group level on a planted effect: heatmaps built from the synthetic cohort's ground-truth
lesions (a perfect explainer), so the true difference between groups is known. The tests must find
it where it was planted, and find nothing when the groups do not differ."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import RES, run_cli
from scipy import ndimage

from bidsxai.outputs import preproc_path
from bidsxai.synth import CohortSpec, synthesise
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE

N_PERM = 200


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """16 subjects (8 HC, 8 RRMS with occipital lesions) and their ground-truth lesion masks."""
    root = tmp_path_factory.mktemp("planted")
    bids = root / "bids"
    synthesise(
        bids,
        CohortSpec(
            n_subjects=16, groups=("HC", "RRMS"), contrasts=("T1w",), resolution=RES, seed=7
        ),
        nprocs=2,
    )
    template = load_template(RES)
    lesions = {}
    for path in sorted(
        (bids / "derivatives" / "groundtruth").glob(f"sub-*/anat/*space-{SPACE}*_mask.nii.gz")
    ):
        lesions[path.name.split("_")[0][4:]] = np.asarray(nib.load(path).dataobj) > 0
    return bids, template, lesions


def _write_outputs(out, template, maps, images, image_path=None):
    for subject, heatmap in maps.items():
        anat = out / f"sub-{subject}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{subject}_space-{SPACE}_res-6_method-gradcam_target-RRMS_heatmap.nii.gz"
        nib.save(template.image(heatmap), anat / stem)
        path = (
            image_path(subject)
            if image_path
            else preproc_path(out, subject, None, "T1w", RES, SPACE)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(template.image(images[subject]), path)


def _heatmaps(template, lesions, rng, signal=True):
    """Smoothed ground-truth lesions (when ``signal``) plus positive noise, one map per subject."""
    maps, images = {}, {}
    for subject, lesion in lesions.items():
        noise = np.abs(ndimage.gaussian_filter(rng.normal(size=lesion.shape), 1.0))
        planted = ndimage.gaussian_filter(lesion.astype(float), 0.7) * 4 if signal else 0.0
        maps[subject] = ((planted + noise) * template.brain_mask).astype(np.float32)
        images[subject] = (template.t1w * (1 - 0.5 * lesion)).astype(np.float32)
    return maps, images


def _atlas(template, folder):
    """Two regions named so that their lobes are known: the brain behind y = -60 mm and the rest
    (the planted RRMS lesions are occipital, behind y = -65 mm)."""
    ijk = np.indices(template.brain_mask.shape).reshape(3, -1)
    y = (template.affine[:3, :3] @ ijk + template.affine[:3, 3:])[1].reshape(
        template.brain_mask.shape
    )
    labels = np.where(template.brain_mask, np.where(y < -60, 1, 2), 0).astype(np.int16)
    path = folder / "halves.nii.gz"
    nib.save(template.image(labels, np.int16), path)
    pd.DataFrame({"index": [1, 2], "name": ["Occipital_back", "Frontal_rest"]}).to_csv(
        folder / "halves.tsv", sep="\t", index=False
    )
    return path


def _group(bids, out, *extra):
    return run_cli(
        bids,
        out,
        "group",
        "--resolution",
        RES,
        "--skip-bids-validation",
        "--n-perm",
        N_PERM,
        "--tfce",
        "--cluster-p",
        "0.01",
        *extra,
    )


def test_planted_difference_is_found_where_it_was_planted(planted, tmp_path):
    bids, template, lesions = planted
    participants = pd.read_csv(bids / "participants.tsv", sep="\t")
    patients = {p[4:] for p in participants.loc[participants["group"] == "RRMS", "participant_id"]}
    out = tmp_path / "out"
    _write_outputs(out, template, *_heatmaps(template, lesions, np.random.default_rng(0)))
    atlas = _atlas(template, tmp_path)
    assert (
        _group(bids, out, "--covariates", "age", "sex", "--correlate", "edss", "--atlas", atlas)
        == 0
    )

    truth = ndimage.binary_dilation(np.any([lesions[s] for s in patients], axis=0), iterations=1)
    stem = out / "group" / f"space-{SPACE}_method-gradcam_target-RRMS_desc-HCvsRRMS"
    t = np.asarray(nib.load(f"{stem}_stat-t_statmap.nii.gz").dataobj)
    for correction in ("fwe", "tfcefwe", "clusterfwe", "fdr"):
        significant = np.asarray(
            nib.load(f"{stem}_stat-logp_corr-{correction}_statmap.nii.gz").dataobj
        ) > -np.log10(0.05)
        assert significant.sum() >= 3, correction
        assert (significant & truth).sum() / significant.sum() > 0.8, (
            correction
        )  # inside the lesions
        assert (t[significant] < 0).all(), correction  # RRMS higher
    sidecar = json.loads(
        (out / "group" / f"{stem.name}_stat-logp_corr-fwe_statmap.json").read_text()
    )
    assert sidecar["Permutations"] == N_PERM and "age, sex" in sidecar["Test"]

    clusters = pd.read_csv(out / "group" / "clusters.tsv", sep="\t")
    two_sample = clusters[clusters["test"] == "two-sample"]
    assert len(two_sample) and (two_sample["peak_stat"] < 0).all()
    assert two_sample["lobes"].iloc[0].startswith("occipital")  # RRMS lesions are occipital
    regions = pd.read_csv(out / "group" / "regions.tsv", sep="\t")
    assert regions["subject"].nunique() == 16
    coverage = pd.read_csv(out / "group" / "coverage.tsv", sep="\t").set_index("group")
    assert coverage.loc["RRMS", "n_fdr"] > 0
    correlations = pd.read_csv(out / "group" / "correlations.tsv", sep="\t")
    assert (
        correlations["n"].tolist() == [len(patients)] and correlations["permutations"][0] == 20000
    )
    measure_tests = pd.read_csv(out / "group" / "measure_tests.tsv", sep="\t")
    assert set(measure_tests["measure"]) >= {"p95", "mass_above_half"}
    html = (out / "group.html").read_text()
    assert "Coverage within groups" in html and "Spearman" in html and "Freedman" in html


def test_nothing_is_significant_when_the_groups_do_not_differ(planted, tmp_path):
    bids, template, lesions = planted
    out = tmp_path / "out"
    pattern = str(tmp_path / "qmaps" / "sub-{subject}_T1map.nii.gz")  # a user's map on the grid
    _write_outputs(
        out,
        template,
        *_heatmaps(template, lesions, np.random.default_rng(1), signal=False),
        image_path=lambda subject: Path(pattern.format(subject=subject)),
    )
    assert _group(bids, out, "--correlate", "edss", "--correlate-image", pattern) == 0
    voxelwise = pd.read_csv(out / "group" / "voxelwise.tsv", sep="\t")
    assert (
        voxelwise[["n_fwe", "n_tfce_fwe", "n_cluster_fwe", "n_fdr", "n_bonferroni"]].sum().sum()
        == 0
    )
    assert pd.read_csv(out / "group" / "correlations.tsv", sep="\t")["n"].tolist() == [8]
