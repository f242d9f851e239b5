import json

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.synth import CONTRASTS, Anatomy, CohortSpec, plan_subjects
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.validator import validator_errors


def test_cohort_is_valid_bids_with_ground_truth(cohort):
    assert validator_errors(cohort, recursive=True) == []
    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert list(table.columns) == ["participant_id", "group", "age", "sex", "edss", "severity"]
    assert table["group"].value_counts().to_dict() == {"HC": 3, "RRMS": 3, "SPMS": 3}
    for sub in table["participant_id"]:
        for contrast in CONTRASTS:
            assert (cohort / sub / "anat" / f"{sub}_{contrast}.nii.gz").is_file()
        gt = cohort / "derivatives" / "groundtruth" / sub / "anat"
        assert (gt / f"{sub}_label-lesion_mask.nii.gz").is_file()
        assert (gt / f"{sub}_space-{SPACE}_res-6_label-lesion_mask.nii.gz").is_file()
    assert json.loads((cohort / "T1w.json").read_text())["MagneticFieldStrength"] == 3


def test_controls_are_clean_and_edss_follows_severity(cohort):
    table = pd.read_csv(cohort / "participants.tsv", sep="\t", na_values="n/a")
    gt = cohort / "derivatives" / "groundtruth"
    for row in table.itertuples():
        mask = nib.load(
            gt
            / row.participant_id
            / "anat"
            / f"{row.participant_id}_space-{SPACE}_res-6_label-lesion_mask.nii.gz"
        ).get_fdata()
        assert (mask.sum() == 0) == (row.group == "HC")
    patients = table[table.group != "HC"]
    assert np.corrcoef(patients.severity, patients.edss)[0, 1] > 0.9
    assert table[table.group == "HC"].edss.isna().all()


def test_native_space_differs_per_subject(cohort):
    affines = [
        nib.load(cohort / f"sub-0{i}" / "anat" / f"sub-0{i}_T1w.nii.gz").affine for i in (1, 2, 3)
    ]
    assert not np.allclose(affines[0], affines[1]) and not np.allclose(affines[1], affines[2])


def test_lesions_go_where_the_group_pattern_says():
    """RRMS lesions occipital (y < -60 mm), SPMS lesions frontal/temporal/parietal (y > -65 mm)."""
    anatomy = Anatomy(4.0)
    t = anatomy.template
    subjects = plan_subjects(CohortSpec(n_subjects=6, resolution=4.0))
    rng = np.random.default_rng(0)
    for subject in subjects:
        lesions = anatomy.lesion_map(subject, rng)
        if subject.group == "HC":
            assert lesions.sum() == 0
            continue
        ijk = np.array(np.nonzero(lesions > 0.5))
        y = (t.affine[:3, :3] @ ijk + t.affine[:3, 3:])[1]
        if subject.group == "RRMS":
            assert np.median(y) < -60
        else:
            assert np.median(y) > -65


def test_tissue_contrasts_look_like_real_ones():
    anatomy = Anatomy(4.0)
    t = anatomy.template
    tissues = anatomy.tissues(0.0)
    none = np.zeros(t.shape, np.float32)
    csf, wm = t.csf > 0.9, t.wm > 0.9
    images = {c: anatomy.contrast(c, tissues, none) for c in CONTRASTS}
    assert images["T1w"][csf].mean() < images["T1w"][wm].mean()
    assert images["FLAIR"][csf].mean() < images["FLAIR"][wm].mean()
    assert images["T2w"][csf].mean() > images["T2w"][wm].mean()


def test_template_resampling_keeps_world_coordinates():
    one, two = load_template(1.0), load_template(2.0)
    assert np.allclose(one.affine[:3, 3], two.affine[:3, 3])
    assert np.allclose(np.diag(two.affine)[:3], 2.0)
    # brain volume is preserved within 1 %
    assert abs(two.brain_mask.sum() * 8 - one.brain_mask.sum()) / one.brain_mask.sum() < 0.01


def test_a_lesion_only_cohort_differs_between_groups_only_by_lesion_location():
    from bidsxai.synth import LOCATION_PATTERNS, REGIONS

    spec = CohortSpec(
        n_subjects=12,
        resolution=6.0,
        seed=4,
        lesion_only=True,
        lesion_count=5,
        lesion_radius_mm=6.0,
    )
    subjects = plan_subjects(spec)
    by_group = {g: [s for s in subjects if s.group == g] for g in spec.groups}
    severities = [np.mean([s.severity for s in members]) for members in by_group.values()]
    assert max(severities) - min(severities) < 0.15  # no load difference by design
    anatomy = Anatomy(spec.resolution)
    x, y, z = anatomy.world
    for members in by_group.values():
        for subject in members:
            lesions = anatomy.lesion_map(subject, np.random.default_rng(0), 0, spec) > 0.5
            assert lesions.any()  # every group has lesions, controls included
            regions = LOCATION_PATTERNS[subject.group_index % len(LOCATION_PATTERNS)]
            inside = np.zeros(lesions.shape, bool)
            for name in regions:
                (x0, x1), (y0, y1), (z0, z1) = REGIONS[name]
                margin = 2 * spec.lesion_radius_mm
                inside |= (
                    (x >= x0 - margin)
                    & (x <= x1 + margin)
                    & (y >= y0 - margin)
                    & (y <= y1 + margin)
                    & (z >= z0 - margin)
                    & (z <= z1 + margin)
                )
            assert lesions[inside].sum() == lesions.sum()


def test_a_distractor_cohort_has_the_distractors_in_every_subject_and_apart_in_the_truth(
    tmp_path,
):
    """Every subject, controls too, has distractor lesions the FLAIR shows; only patients have
    signal lesions; the truth keeps the two apart (label-lesion, label-distractor)."""
    from bidsxai.synth import main

    out = tmp_path / "distractor"
    argv = [str(out), "--n-subjects", "4", "--groups", "HC,MS", "--resolution", "6"]
    assert main([*argv, "--contrasts", "T1w,FLAIR", "--distractor", "--seed", "2"]) == 0
    assert validator_errors(out, recursive=True) == []
    table = pd.read_csv(out / "participants.tsv", sep="\t")
    gt = out / "derivatives" / "groundtruth"
    for sub, group in zip(table["participant_id"], table["group"]):
        folder = gt / sub / "anat"
        signal, distractor = (
            np.asarray(
                nib.load(folder / f"{sub}_space-{SPACE}_res-6_label-{k}_mask.nii.gz").dataobj
            )
            > 0
            for k in ("lesion", "distractor")
        )
        assert distractor.any() and not (signal & distractor).any()
        assert signal.any() == (group == "MS"), sub
        native = folder / f"{sub}_space-FLAIR_label-distractor_mask.nii.gz"
        flair = np.asarray(nib.load(out / sub / "anat" / f"{sub}_FLAIR.nii.gz").dataobj, float)
        inside = np.asarray(nib.load(native).dataobj) > 0
        brain = flair > 0.3 * np.percentile(flair, 99)
        assert flair[inside].mean() > 1.3 * flair[brain & ~inside].mean()  # the image shows it


def test_a_cohort_without_distractors_writes_none(cohort):
    assert not list((cohort / "derivatives" / "groundtruth").rglob("*label-distractor*"))


def test_the_presence_rung_plants_one_to_three_lesions_in_patients_once():
    anatomy = Anatomy(4.0)
    spec = CohortSpec(n_subjects=8, groups=("HC", "PAT"), resolution=4.0, rung="presence")
    rng = np.random.default_rng(0)
    for subject in plan_subjects(spec):
        lesions = anatomy.lesion_map(subject, rng, 0, spec)
        if subject.group == "HC":
            assert lesions.sum() == 0
            continue
        # At most three ellipsoids of radii 9, 9 and 14.4 mm, each grown by a 4 mm voxel.
        volume = (lesions > 0.5).sum() * 4.0**3
        assert 0 < volume <= 3 * 4 / 3 * np.pi * 13.0**2 * 18.4
        assert anatomy.template.wm[lesions > 0].min() > 0.3
        assert anatomy.lesion_map(subject, rng, 1, spec).sum() == 0  # a later session adds none
    assert all(25 <= s.age <= 50 for s in plan_subjects(spec))  # one age range for every group


def test_atrophy_takes_its_share_of_medial_temporal_grey_matter_and_nothing_else():
    anatomy = Anatomy(4.0)
    gm0, wm0, csf0 = anatomy.tissues(0)
    gm, wm, csf = anatomy.tissues(0, atrophy=0.3)
    region = anatomy.medial_temporal
    assert region.sum() > 20 and gm0[region].sum() > 0
    assert np.allclose(gm[region], 0.7 * gm0[region]) and np.allclose(gm[~region], gm0[~region])
    assert np.allclose(gm + csf, gm0 + csf0) and np.array_equal(wm, wm0)
    x = anatomy.world[0][region]
    assert (x < 0).any() and (x > 0).any()  # both hemispheres


def test_ladder_rungs_write_their_own_truth(tmp_path):
    """--rung atrophy and --rung ventricles: two groups, the change in patients only, and the
    changed tissue as the ground truth (empty for controls)."""
    from bidsxai.synth import main

    for rung, label in (("atrophy", "atrophy"), ("ventricles", "ventricles")):
        out = tmp_path / rung
        argv = [str(out), "--n-subjects", "4", "--resolution", "6", "--contrasts", "T1w"]
        assert main([*argv, "--rung", rung, "--seed", "3"]) == 0
        table = pd.read_csv(out / "participants.tsv", sep="\t")
        assert sorted(set(table["group"])) == ["HC", "PAT"]
        gt = out / "derivatives" / "groundtruth"
        for sub, group in zip(table["participant_id"], table["group"]):
            name = f"{sub}_space-{SPACE}_res-6_label-{label}_mask.nii.gz"
            mask = np.asarray(nib.load(gt / sub / "anat" / name).dataobj) > 0
            assert mask.any() == (group == "PAT"), (rung, sub)
            assert not (gt / sub / "anat" / name.replace(label, "lesion")).exists()
    assert main([str(tmp_path / "x"), "--rung", "site", "--lesion-only"]) == 64
