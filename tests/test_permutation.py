"""The permutation engine against brute-force enumeration with scipy."""

import itertools

import numpy as np
import pytest
from scipy import stats

from bidsxai.group.permutation import permutation_fwe, spearman_permutation
from bidsxai.group.ttest import ttest


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (9, 40))
    x[:4, :5] += 1.5  # an effect in group A at 5 voxels
    return x


def test_two_sample_max_t_is_exact_by_enumeration(data):
    labels = np.r_[np.ones(4, bool), np.zeros(5, bool)]
    r = permutation_fwe(data, labels, n_perm=1000)
    t, p = r["t"], r["p_fwe"]
    assert r["exact"] and r["n_permutations"] == 126  # C(9, 4)
    np.testing.assert_allclose(t, stats.ttest_ind(data[labels], data[~labels]).statistic)
    maxima = []
    for chosen in itertools.combinations(range(9), 4):
        a = np.zeros(9, bool)
        a[list(chosen)] = True
        maxima.append(np.abs(stats.ttest_ind(data[a], data[~a]).statistic).max())
    expected = [(np.array(maxima) >= abs(v) - 1e-12).mean() for v in t]
    np.testing.assert_allclose(p, expected)


def test_one_sample_sign_flips_are_exact_by_enumeration(data):
    r = permutation_fwe(data[:7], popmean=0.2, n_perm=1000)
    t, p = r["t"], r["p_fwe"]
    assert r["exact"] and r["n_permutations"] == 128
    np.testing.assert_allclose(t, stats.ttest_1samp(data[:7], 0.2).statistic)
    maxima = []
    for signs in itertools.product([1, -1], repeat=7):
        flipped = (data[:7] - 0.2) * np.array(signs)[:, None]
        maxima.append(np.abs(stats.ttest_1samp(flipped, 0).statistic).max())
    expected = [(np.array(maxima) >= abs(v) - 1e-12).mean() for v in t]
    np.testing.assert_allclose(p, expected)


def test_random_permutations_agree_with_the_exact_p_within_monte_carlo_error():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (12, 30))
    x[:6, 0] += 2.0
    labels = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    enumerated = permutation_fwe(x, labels, n_perm=1000)  # C(12, 6) = 924: enumerated
    assert enumerated["exact"] and enumerated["n_permutations"] == 924
    drawn = permutation_fwe(x, labels, n_perm=600, seed=1)
    assert not drawn["exact"] and drawn["n_permutations"] == 600
    exact_p, mc_p = enumerated["p_fwe"], drawn["p_fwe"]
    se = np.sqrt(exact_p * (1 - exact_p) / 600) + 1 / 600
    assert np.all(np.abs(mc_p - exact_p) <= 4 * se)


def test_ttest_adds_fwe_p_values_on_maps(data):
    data = data.copy()
    data[:4, :5] += 3.0  # a strong effect, so FWE can reject
    data[:, 7] = 0.0  # an untested voxel (no variance)
    maps = data.reshape(9, 2, 4, 5)
    result = ttest(maps[:4], maps[4:], n_perm=500)
    assert result["n_permutations"] == 126
    tested = result["tested"].reshape(-1)
    labels = np.r_[np.ones(4, bool), np.zeros(5, bool)]
    p_fwe = permutation_fwe(data[:, tested], labels, n_perm=500)["p_fwe"]
    np.testing.assert_allclose(result["p_fwe"].reshape(-1)[tested], p_fwe)
    assert result["p_fwe"].reshape(-1)[7] == 1
    assert np.all(result["p_fwe"] >= result["p"] - 1e-12)  # FWE is never below uncorrected
    assert result["p_fwe"].reshape(-1)[:5].min() <= 1 / 126 + 1e-12  # the smallest exact p


def test_spearman_rho_equals_scipy_and_p_matches_enumeration():
    rng = np.random.default_rng(0)
    x = rng.normal(size=7)
    y = x + rng.normal(scale=0.8, size=7)
    rho, p = spearman_permutation(x, y, n_perm=20000, seed=1)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    exact = np.mean(
        [
            abs(stats.spearmanr(rx, ry[list(perm)]).statistic) >= abs(rho) - 1e-12
            for perm in itertools.permutations(range(7))
        ]
    )
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-3


def test_max_t_agrees_with_nilearn_permuted_ols_within_monte_carlo_error():
    from nilearn.mass_univariate import permuted_ols

    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, 30))
    x[:8, :4] += 2.0
    labels = np.arange(16) < 8
    ours = permutation_fwe(x, labels, n_perm=4000, seed=2)["p_fwe"]
    ref = permuted_ols(
        labels[:, None].astype(float),
        x,
        model_intercept=True,
        n_perm=4000,
        two_sided_test=True,
        random_state=0,
        n_jobs=1,
        verbose=0,
    )
    theirs = 10 ** -ref["logp_max_t"][0]
    se = np.sqrt(2 * theirs * (1 - theirs) / 4000) + 2 / 4000
    assert np.all(np.abs(ours - theirs) <= 4 * se)
    assert ours[:4].min() < 0.05 and ours[4:].min() > 0.05
