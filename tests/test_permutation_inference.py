"""Freedman-Lane covariates, TFCE and cluster-mass family-wise error against brute-force
references (statsmodels OLS, nilearn's TFCE and cluster measures), and calibration on null data."""

import itertools

import numpy as np
import pytest
import statsmodels.api as sm
from nilearn.mass_univariate._utils import calculate_cluster_measures, calculate_tfce
from scipy import ndimage, stats

from bidsxai.group.ttest import ttest

FACES = ndimage.generate_binary_structure(3, 1)


def _group_t_ols(y, labels, covariates):
    design = sm.add_constant(np.column_stack([labels.astype(float), covariates]))
    return np.array([sm.OLS(y[:, v], design).fit().tvalues[1] for v in range(y.shape[1])])


def test_covariate_adjusted_t_and_freedman_lane_fwe_equal_brute_force_ols():
    rng = np.random.default_rng(4)
    n, v = 12, 15
    labels = np.r_[np.ones(5, bool), np.zeros(7, bool)]
    age = rng.normal(50, 10, n)
    sex = rng.integers(0, 2, n).astype(float)
    covariates = np.column_stack([age, sex])
    y = rng.normal(size=(n, v)) + 0.05 * age[:, None]
    y[labels, :3] += 1.5
    maps = y.reshape(n, 3, 5, 1)
    result = ttest(maps[labels], maps[~labels], covariates=covariates, n_perm=200, seed=3)
    t_ols = _group_t_ols(y, labels, covariates)
    np.testing.assert_allclose(result["t"].reshape(-1), t_ols, rtol=1e-9)
    assert result["df"] == n - 4
    p_ols = 2 * stats.t.sf(np.abs(t_ols), n - 4)
    np.testing.assert_allclose(result["p"].reshape(-1), p_ols, rtol=1e-8)

    # Freedman-Lane by hand: permute the covariates-only residuals, add the fit back, refit OLS.
    reduced = sm.add_constant(covariates)
    fit = sm.OLS(y, reduced).fit()
    order_rng = np.random.default_rng(3)
    maxima = []
    for _ in range(200):
        order = order_rng.permutation(n)
        permuted = fit.resid[np.argsort(order)] + fit.fittedvalues
        maxima.append(np.abs(_group_t_ols(permuted, labels, covariates)).max())
    expected = [(1 + np.sum(np.array(maxima) >= abs(t) - 1e-9)) / 201 for t in t_ols]
    np.testing.assert_allclose(result["p_fwe"].reshape(-1), expected)


def test_covariates_that_explain_the_groups_are_refused():
    maps = np.random.default_rng(0).normal(size=(6, 2, 2, 2))
    with pytest.raises(ValueError, match="explain the group labels"):
        ttest(maps[:3], maps[3:], covariates=np.r_[np.ones(3), np.zeros(3)])


@pytest.fixture
def blob_maps():
    rng = np.random.default_rng(8)
    maps = ndimage.gaussian_filter(rng.normal(size=(8, 7, 6, 5)), (0, 1, 1, 1)) * 3
    maps[:4, 1:4, 1:4, 1:3] += 3.0
    return maps


def _enumerated_maxima(maps, statistic):
    maxima = []
    for chosen in itertools.combinations(range(8), 4):
        a = np.zeros(8, bool)
        a[list(chosen)] = True
        maxima.append(statistic(stats.ttest_ind(maps[a], maps[~a]).statistic))
    return np.array(maxima)


def test_tfce_fwe_equals_enumeration_with_nilearn_tfce(blob_maps):
    result = ttest(blob_maps[:4], blob_maps[4:], tfce=True, n_perm=100)
    assert result["n_permutations"] == 70  # C(8, 4): every relabelling

    def nilearn_tfce(t):
        return calculate_tfce(t[..., None], FACES, E=0.5, H=2, two_sided_test=True)[..., 0] * (
            np.abs(t).max() / 100
        )

    observed = nilearn_tfce(result["t"])
    np.testing.assert_allclose(result["tfce"], observed, rtol=1e-9, atol=1e-12)
    maxima = _enumerated_maxima(blob_maps, lambda t: np.abs(nilearn_tfce(t)).max())
    expected = (maxima[None] >= np.abs(observed).reshape(-1, 1) - 1e-9).mean(1)
    np.testing.assert_allclose(result["p_fwe_tfce"].reshape(-1), expected)
    assert result["p_fwe_tfce"][2, 2, 1] < 0.05


def test_cluster_mass_fwe_equals_enumeration_with_nilearn_clusters(blob_maps):
    result = ttest(blob_maps[:4], blob_maps[4:], cluster_p=0.01, n_perm=100)
    threshold = stats.t.isf(0.005, 6)
    maxima = _enumerated_maxima(
        blob_maps, lambda t: calculate_cluster_measures(t[..., None], threshold, FACES, True)[1][0]
    )
    mass = result["cluster_mass"]
    expected = (maxima[None] >= np.abs(mass).reshape(-1, 1) - 1e-9).mean(1)
    np.testing.assert_allclose(result["p_fwe_cluster_mass"].reshape(-1), expected)
    t = result["t"]
    labels, _ = ndimage.label(t > threshold, FACES)
    peak = labels[np.unravel_index(np.argmax(t), t.shape)]
    assert mass[labels == peak] == pytest.approx((t[labels == peak] - threshold).sum())
    assert np.all(mass[np.abs(t) <= threshold] == 0)


@pytest.mark.parametrize("kind", ["max_t", "tfce", "freedman_lane"])
def test_family_wise_error_is_calibrated_on_null_data(kind):
    """Under the null, P(any voxel has p_fwe <= 0.05) is at most 0.05 (exactly 12/252 for the
    enumerated relabellings); the count over the null datasets must lie in its binomial 99.9%
    interval (150 datasets for TFCE, 300 otherwise, to keep the suite fast)."""
    rng = np.random.default_rng({"max_t": 1, "tfce": 2, "freedman_lane": 3}[kind])
    n_sets, hits = (150 if kind == "tfce" else 300), 0
    for i in range(n_sets):
        maps = ndimage.gaussian_filter(rng.normal(size=(10, 5, 5, 4)), (0, 0.8, 0.8, 0.8))
        covariates = rng.normal(size=(10, 1)) if kind == "freedman_lane" else None
        result = ttest(
            maps[:5],
            maps[5:],
            tfce=kind == "tfce",
            covariates=covariates,
            n_perm=99 if kind == "freedman_lane" else 300,
            seed=i,
        )
        key = "p_fwe_tfce" if kind == "tfce" else "p_fwe"
        hits += result[key].min() <= 0.05
    expected = 12 / 252 if kind != "freedman_lane" else 0.05
    low, high = stats.binom.ppf([0.0005, 0.9995], n_sets, expected)
    assert low <= hits <= high, f"{hits} of {n_sets} null datasets rejected"
