"""Subject measures, group comparisons, the coverage null for thresholded maps, quantile masks,
atlases, cluster tables and ROI-vector similarity."""

import itertools

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats
from statsmodels.stats.meta_analysis import effectsize_smd

from bidsxai.errors import NoInputError
from bidsxai.group.atlas import (
    AAL,
    cosine_similarity,
    load_atlas,
    lobe_of,
    lobe_summary,
    region_table,
    roi_vector,
)
from bidsxai.group.clusters import cluster_table
from bidsxai.group.coverage import count_distribution, coverage_test
from bidsxai.group.measures import compare_groups, hedges_g, subject_measures
from bidsxai.group.threshold import quantile_mask
from bidsxai.template import load_template


def test_group_comparison_matches_scipy_and_hedges_g_matches_statsmodels():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1, 11), rng.normal(0.2, 1.5, 8)
    result = compare_groups(a, b)
    assert result["p_welch"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert result["p_mann_whitney"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    g, var = effectsize_smd(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b))
    assert result["hedges_g"] == pytest.approx(g, rel=1e-12)
    half_width = (result["g_high"] - result["g_low"]) / 2
    assert half_width == pytest.approx(1.959964 * np.sqrt(var), rel=1e-6)
    assert hedges_g(a, a)[0] == 0


def test_subject_measures():
    mask = np.ones((4, 5, 5), bool)
    heatmap = np.zeros(mask.shape)
    heatmap[0, 0, :2] = [2.0, 1.0]
    measures = subject_measures(heatmap, mask)
    assert measures["p95"] == 0  # 2 of 100 voxels are non-zero
    assert measures["mass_above_half"] == pytest.approx(1.0)
    heatmap[1:, :, :] = 0.2
    assert subject_measures(heatmap, mask)["mass_above_half"] == pytest.approx(1.5 / (1.5 + 7.5))


def test_count_distribution_is_binomial_for_equal_shares_and_exact_otherwise():
    np.testing.assert_allclose(count_distribution([0.05] * 9), stats.binom.pmf(range(10), 9, 0.05))
    shares = [0.1, 0.3, 0.05, 0.5]
    brute = np.zeros(5)
    for outcome in itertools.product([0, 1], repeat=4):
        brute[sum(outcome)] += np.prod([q if o else 1 - q for q, o in zip(shares, outcome)])
    np.testing.assert_allclose(count_distribution(shares), brute)


def test_coverage_test_finds_a_shared_region_and_holds_its_level_on_random_masks():
    rng = np.random.default_rng(0)
    mask = np.ones((10, 10, 10), bool)
    kept = np.zeros((12, 10, 10, 10), bool)
    for i in range(12):  # each subject keeps 50 random voxels (5 %)
        kept[i].flat[rng.choice(1000, 50, replace=False)] = True
    null = coverage_test(kept, mask)
    np.testing.assert_allclose(null["shares"], 0.05)
    counts = kept.sum(0)
    np.testing.assert_allclose(null["p"], stats.binom.sf(counts - 1, 12, 0.05))
    rejections = 0
    for _ in range(200):
        random = np.zeros_like(kept)
        for s in range(12):
            random[s].flat[rng.choice(1000, 50, replace=False)] = True
        rejections += coverage_test(random, mask)["p_bonferroni"].min() <= 0.05
    assert rejections <= stats.binom.ppf(0.999, 200, 0.05)
    kept[:9, 2, 2, 2] = True  # nine of twelve subjects share a voxel
    assert coverage_test(kept, mask)["p_bonferroni"][2, 2, 2] < 0.05


def test_quantile_mask_keeps_the_top_share_of_positive_values():
    values = np.arange(-50, 50, dtype=float).reshape(4, 5, 5)
    mask = np.ones(values.shape, bool)
    kept = quantile_mask(values, mask, 40)
    assert kept.sum() == 20 and values[kept].min() == 30  # the top 40 % of 1..49
    assert not quantile_mask(-np.abs(values), mask, 40).any()


@pytest.fixture
def lobes_atlas(tmp_path):
    """A user atlas on the 6 mm template grid: the brain split into left and right halves."""
    template = load_template(6)
    labels = np.zeros(template.brain_mask.shape, np.int16)
    half = template.brain_mask.shape[0] // 2
    labels[:half][template.brain_mask[:half]] = 1
    labels[half:][template.brain_mask[half:]] = 2
    path = tmp_path / "halves.nii.gz"
    nib.save(template.image(labels, np.int16), path)
    pd.DataFrame({"index": [1, 2], "name": ["Frontal_Sup_L", "Left_thing_R"]}).to_csv(
        tmp_path / "halves.tsv", sep="\t", index=False
    )
    return template, load_atlas(str(path), template)


def test_user_atlas_region_table_lobes_and_roi_vectors(lobes_atlas):
    template, atlas = lobes_atlas
    assert atlas.lobes == {1: "frontal", 2: "other"}
    values = (atlas.labels == 1) * 1.0
    table = region_table(values, atlas)
    assert list(table["region"]) == ["Frontal_Sup_L"] and table["share"][0] == pytest.approx(1)
    assert lobe_summary(table)["lobe"].tolist() == ["frontal"]
    vectors = np.stack(
        [roi_vector(values, atlas), roi_vector(1 - values, atlas), roi_vector(values, atlas)]
    )
    np.testing.assert_allclose(vectors[0], [1, 0])
    similarity = cosine_similarity(vectors)
    np.testing.assert_allclose(similarity, [[1, 0, 1], [0, 1, 0], [1, 0, 1]], atol=1e-12)


def test_cluster_table_reports_size_peak_and_regions(lobes_atlas):
    template, atlas = lobes_atlas
    stat = np.zeros(template.brain_mask.shape)
    centre = np.array(np.nonzero(atlas.labels == 1)).mean(1).astype(int)
    ball = ndimage.binary_dilation(np.pad(np.ones((1, 1, 1)), 1), iterations=1)
    stat[tuple(centre)] = 6.0
    region = np.zeros_like(stat, bool)
    region[tuple(slice(c - 1, c + 2) for c in centre)] = ball
    stat[region & (stat == 0)] = 4.0
    stat[2, 2, 2] = -5.0  # a single negative voxel far away
    table = cluster_table(stat, np.abs(stat) > 3, template.affine, atlas)
    assert len(table) == 2 and table["voxels"].tolist() == [7, 1]
    first = table.iloc[0]
    assert first["peak_stat"] == 6.0 and first["volume_mm3"] == pytest.approx(7 * 216)
    np.testing.assert_allclose(
        [first.peak_x, first.peak_y, first.peak_z], (template.affine @ np.r_[centre, 1])[:3]
    )
    assert first["peak_region"] == "Frontal_Sup_L" and first["peak_lobe"] == "frontal"


def test_templateflow_atlas_is_read_from_the_home_folder_only(tmp_path, monkeypatch):
    template = load_template(6)
    home = tmp_path / "templateflow"
    folder = home / "tpl-MNI152NLin2009cAsym"
    folder.mkdir(parents=True)
    labels = template.brain_mask.astype(np.int16) * 3
    nib.save(
        template.image(labels, np.int16),
        folder / "tpl-MNI152NLin2009cAsym_res-01_atlas-Toy_desc-one_dseg.nii.gz",
    )
    pd.DataFrame({"index": [3], "name": ["Thalamus_L"]}).to_csv(
        folder / "tpl-MNI152NLin2009cAsym_atlas-Toy_desc-one_dseg.tsv", sep="\t", index=False
    )
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    atlas = load_atlas("templateflow:Toy", template)
    assert atlas.names == {3: "Thalamus_L"} and atlas.lobes == {3: "deep grey"}
    assert (atlas.labels == 3).sum() == template.brain_mask.sum()
    with pytest.raises(NoInputError, match="never downloads"):
        load_atlas("templateflow:Schaefer2018", template)


def test_aal_on_the_template_grid_has_every_lobe():
    assert AAL.is_file(), "Debian's mricron-data (the AAL atlas) is missing: make test installs it"
    atlas = load_atlas("aal", load_template(6))
    assert len(atlas.names) == 116
    assert set(atlas.lobes.values()) == {
        "frontal",
        "temporal",
        "parietal",
        "occipital",
        "insula",
        "limbic",
        "deep grey",
        "cerebellum",
    }
    assert lobe_of("Hippocampus_L") == "limbic" and lobe_of("Thalamus_R") == "deep grey"
    present = set(np.unique(atlas.labels)) - {0}
    assert len(present) > 80  # small regions can vanish at 6 mm
