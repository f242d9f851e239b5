import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.group.threshold import threshold_at_percentile
from bidsxai.group.ttest import ttest


@pytest.fixture
def maps():
    rng = np.random.default_rng(3)
    a = rng.normal(0.2, 1, (7, 5, 6, 4))
    b = rng.normal(0.0, 1, (9, 5, 6, 4))
    a[:, 0, 0, 0] = b[:, 0, 0, 0] = 0.0  # a voxel without variance is not tested
    return a, b


def test_two_sample_t_equals_scipy(maps):
    a, b = maps
    result = ttest(a, b)
    ref = stats.ttest_ind(a, b, axis=0)
    tested = result["tested"]
    assert not tested[0, 0, 0] and tested.sum() == tested.size - 1
    np.testing.assert_allclose(result["t"][tested], ref.statistic[tested], rtol=1e-10)
    np.testing.assert_allclose(result["p"][tested], ref.pvalue[tested], rtol=1e-8)
    assert result["p"][0, 0, 0] == 1 and result["t"][0, 0, 0] == 0


def test_one_sample_t_equals_scipy(maps):
    a, _ = maps
    result = ttest(a, popmean=0.1)
    ref = stats.ttest_1samp(a, 0.1, axis=0)
    tested = result["tested"]
    np.testing.assert_allclose(result["t"][tested], ref.statistic[tested], rtol=1e-10)
    np.testing.assert_allclose(result["p"][tested], ref.pvalue[tested], rtol=1e-8)


def test_one_sided_p_halves_the_two_sided_p_for_positive_t(maps):
    a, b = maps
    two, one = ttest(a, b), ttest(a, b, two_sided=False)
    positive = two["tested"] & (two["t"] > 0)
    np.testing.assert_allclose(one["p"][positive], two["p"][positive] / 2, rtol=1e-10)


def test_corrections_count_only_tested_voxels_in_the_mask(maps):
    a, b = maps
    mask = np.zeros(a.shape[1:], bool)
    mask[:3] = True
    result = ttest(a, b, mask=mask)
    tested = result["tested"]
    assert not tested[~mask].any()
    p = result["p"][tested]
    m = p.size
    np.testing.assert_allclose(result["p_bonferroni"][tested], np.minimum(p * m, 1))
    np.testing.assert_allclose(result["p_fdr"][tested], multipletests(p, method="fdr_bh")[1])
    # Benjamini-Hochberg written out: min over k >= rank of p_(k) * m / k
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(bh, 1)
    np.testing.assert_allclose(result["p_fdr"][tested], expected)


def test_p95_measure_is_taken_over_brain_voxels_of_the_max_normalised_map():
    rng = np.random.default_rng(0)
    heatmap = rng.random((6, 6, 6)) * 5
    mask = np.zeros((6, 6, 6), bool)
    mask[1:5, 1:5, 1:5] = True
    heatmap[0, 0, 0] = 100  # outside the brain: must not set the scale
    expected = np.percentile(heatmap[mask] / heatmap[mask].max(), 95)
    assert percentile_in_mask(heatmap, mask) == pytest.approx(expected)
    assert percentile_in_mask(np.zeros((6, 6, 6)), mask) == 0


def test_threshold_keeps_the_top_five_percent_of_brain_voxels():
    rng = np.random.default_rng(1)
    heatmap = rng.random((10, 10, 10))
    mask = np.ones(heatmap.shape, bool)
    kept = threshold_at_percentile(heatmap, mask)
    assert (kept > 0).sum() == pytest.approx(50, abs=1)
    assert kept.max() == pytest.approx(1.0)
