"""The group level over several sessions per subject, checked against a computation written here
from scipy and brute-force enumeration: the between-group tests take one mean map per subject (a
permutation moves a subject with all its sessions) and --sessions-compare tests the paired change
with sign flips of whole subjects."""

import itertools

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import RES, messages, run_cli
from scipy import stats

from bidsxai.derivatives import LesionLoad, MeasuresRow
from bidsxai.outputs import heatmap_path, measures_path
from bidsxai.synth import CohortSpec, synthesise
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE

N_PERM = 256  # 2^8 sign flips and C(8, 4) = 70 relabellings: both enumerated, p exact


@pytest.fixture(scope="module")
def longitudinal(tmp_path_factory):
    """8 subjects (4 HC, 4 RRMS) with 2 sessions, heatmaps of random positive noise whose second
    session is higher in one block of voxels for every subject."""
    root = tmp_path_factory.mktemp("longitudinal")
    bids, out = root / "bids", root / "out"
    synthesise(
        bids,
        CohortSpec(
            n_subjects=8,
            groups=("HC", "RRMS"),
            contrasts=("T1w",),
            resolution=RES,
            sessions=2,
            seed=4,
        ),
        nprocs=2,
    )
    template = load_template(RES)
    mask = template.brain_mask
    centre = np.argwhere(mask).mean(0).astype(int)
    block = np.zeros(mask.shape, bool)
    block[tuple(slice(c - 2, c + 2) for c in centre)] = True
    rng = np.random.default_rng(0)
    maps, loads = {}, {}
    for subject in [f"{i:02d}" for i in range(1, 9)]:
        for session in ("01", "02"):
            values = rng.gamma(2.0, 1.0, mask.shape) * mask
            if session == "02":
                values = values + 8.0 * block
            path = heatmap_path(out, subject, session, "gradcam", "RRMS", RES, SPACE)
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(template.image(values.astype(np.float32)), path)
            maps[subject, session] = values.astype(np.float32).astype(np.float64)  # as saved
            # A volume of 5 significant digits is written as it is.
            load = LesionLoad(round(rng.uniform(0, 5000), 1), int(rng.integers(0, 9)))
            row = MeasuresRow(
                method="gradcam",
                target="RRMS",
                p95=0.5,
                probability=0.5,
                predicted="RRMS",
                split="new",
                model="repeat-1_fold-1",
                mirror_r=None,
                lesion_load={"lesion": load},
            )
            MeasuresRow.write_tsv(measures_path(out, subject, session), [row])
            loads[subject, session] = load.volume_mm3
    groups = pd.read_csv(bids / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    return bids, out, template, maps, {s: groups[f"sub-{s}"] for s, _ in maps}, loads


def _group(bids, out, *extra):
    return run_cli(
        bids,
        out,
        "group",
        "--resolution",
        RES,
        "--skip-bids-validation",
        "--atlas",
        "none",
        "--n-perm",
        N_PERM,
        *extra,
    )


def _thresholded(values, mask):
    """The subject's own 95th brain percentile of its max-normalised map (Zhang et al. 2021)."""
    normalised = np.where(mask, values, 0) / values[mask].max()
    cut = np.percentile(normalised[mask], 95)
    return np.where(mask & (normalised >= cut), normalised, 0.0)


def _max_t_p(data, statistic, flips_or_labels):
    """FWE p of every voxel by brute force: the share of the enumerated null draws whose largest
    |t| reaches the voxel's observed |t|."""
    observed = np.abs(statistic(data, None))
    maxima = np.array([np.abs(statistic(data, draw)).max() for draw in flips_or_labels])
    return (maxima[None, :] >= observed[:, None] - 1e-9).mean(1)


def _statmap(out, desc, stat, correction=None):
    corr = f"_corr-{correction}" if correction else ""
    name = f"space-{SPACE}_method-gradcam_target-RRMS_desc-{desc}_stat-{stat}{corr}_statmap.nii.gz"
    return np.asarray(nib.load(out / "group" / name).dataobj, np.float64)


def test_between_groups_and_between_sessions_match_an_independent_computation(longitudinal):
    bids, out, template, maps, groups, _ = longitudinal
    assert _group(bids, out, "--sessions-compare", "ses-01,02") == 0
    mask = template.brain_mask
    subjects = sorted(groups)

    # Between groups: one map per subject, the mean of its sessions' max-normalised maps.
    summary = {
        s: np.mean(
            [np.where(mask, maps[s, k], 0) / maps[s, k][mask].max() for k in ("01", "02")], 0
        )
        for s in subjects
    }
    thresholded = np.stack([_thresholded(summary[s], mask) for s in subjects])[:, mask]
    in_hc = np.array([groups[s] == "HC" for s in subjects])
    tested = thresholded.std(0) > 0
    data = thresholded[:, tested]

    def two_sample(values, labels):
        a = in_hc if labels is None else labels
        return stats.ttest_ind(values[a], values[~a]).statistic

    t = _statmap(out, "HCvsRRMS", "t")[mask]
    np.testing.assert_allclose(t[tested], two_sample(data, None), rtol=1e-5, atol=1e-6)
    relabellings = []
    for chosen in itertools.combinations(range(8), 4):
        labels = np.zeros(8, bool)
        labels[list(chosen)] = True
        relabellings.append(labels)
    p_fwe = 10 ** -_statmap(out, "HCvsRRMS", "logp", "fwe")[mask]
    np.testing.assert_allclose(p_fwe[tested], _max_t_p(data, two_sample, relabellings), atol=1e-6)
    measures = pd.read_csv(out / "group" / "measures.tsv", sep="\t")
    assert len(measures) == 8 and (measures["n_sessions"] == 2).all()

    # Between sessions: each subject's change of its thresholded maps, sign-flipped as a whole.
    change = np.stack(
        [_thresholded(maps[s, "02"], mask) - _thresholded(maps[s, "01"], mask) for s in subjects]
    )[:, mask]
    tested = change.std(0) > 0
    data = change[:, tested]

    def paired(values, flips):
        return stats.ttest_1samp(values if flips is None else values * flips[:, None], 0).statistic

    t = _statmap(out, "ses02minus01", "t")[mask]
    np.testing.assert_allclose(t[tested], paired(data, None), rtol=1e-5, atol=1e-6)
    flips = [np.array(f) for f in itertools.product([1.0, -1.0], repeat=8)]
    p_fwe = 10 ** -_statmap(out, "ses02minus01", "logp", "fwe")[mask]
    np.testing.assert_allclose(p_fwe[tested], _max_t_p(data, paired, flips), atol=1e-6)
    assert (p_fwe[tested][t[tested] > 0] < 0.05).any()  # the planted increase is found

    p95 = {
        k: [
            np.percentile(np.where(mask, maps[s, k], 0)[mask] / maps[s, k][mask].max(), 95)
            for s in subjects
        ]
        for k in ("01", "02")
    }
    tests = pd.read_csv(out / "group" / "session_measure_tests.tsv", sep="\t")
    row = tests[tests["measure"] == "p95"].iloc[0]
    reference = stats.ttest_rel(p95["02"], p95["01"])
    assert row["n"] == 8 and (row["session_before"], row["session_after"]) == (1, 2)
    np.testing.assert_allclose(
        [row["t"], row["p"]], [reference.statistic, reference.pvalue], rtol=1e-5
    )
    voxelwise = pd.read_csv(out / "group" / "voxelwise.tsv", sep="\t")
    assert voxelwise["session_after"].notna().sum() == 1
    html = (out / "group.html").read_text()
    assert "Change between sessions" in html and "ses-02 minus ses-01" in html


def test_session_label_selects_sessions_and_a_missing_session_is_one_line(
    longitudinal, tmp_path, capsys
):
    bids, out, *_ = longitudinal
    capsys.readouterr()
    assert _group(bids, out, "--session-label", "01", "--sessions-compare", "01,02") == 64
    assert messages(capsys.readouterr().err) == [
        "bidsxai: error: --sessions-compare: no heatmaps of ses-02 (sessions with heatmaps: ses-01)"
    ]


def test_lesion_load_is_a_covariate_averaged_over_sessions(longitudinal):
    bids, out, template, maps, groups, loads = longitudinal
    assert _group(bids, out, "--covariates", "lesion_volume_mm3", "--n-perm", 0) == 0
    mask = template.brain_mask
    subjects = sorted(groups)
    summary = [
        np.mean([np.where(mask, maps[s, k], 0) / maps[s, k][mask].max() for k in ("01", "02")], 0)
        for s in subjects
    ]
    thresholded = np.stack([_thresholded(m, mask) for m in summary])[:, mask]
    design = np.column_stack(
        [
            np.ones(8),
            [groups[s] == "HC" for s in subjects],
            [np.mean([loads[s, k] for k in ("01", "02")]) for s in subjects],
        ]
    ).astype(float)
    t = _statmap(out, "HCvsRRMS", "t")[mask]
    tested = np.flatnonzero(thresholded.std(0) > 0)[:200]
    expected = [sm.OLS(thresholded[:, v], design).fit().tvalues[1] for v in tested]
    np.testing.assert_allclose(t[tested], expected, rtol=1e-5, atol=1e-6)
