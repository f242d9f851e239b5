"""One-sample voxel-wise test for thresholded maps: is a voxel kept by more subjects than chance?

A t-test of thresholded, non-negative maps against 0 rejects wherever any subject is non-zero,
so it says nothing. The null here is that each subject's kept set (its top q of brain voxels)
lies anywhere in the brain: a voxel is then kept by subject i with probability q_i (the share of
brain voxels that subject keeps), so the number of subjects keeping it follows the Poisson-binomial
distribution of the q_i (Binomial(n, q) when all are equal), and the one-sided p of k subjects
is P(K >= k). The probability is exact per voxel whatever the spatial smoothness; Bonferroni and FDR
(Benjamini-Hochberg, valid under positive dependence) correct over the brain voxels.
"""

import numpy as np
from statsmodels.stats.multitest import multipletests


def count_distribution(shares):
    """P(K = k), k = 0..n, for K the number of successes of independent Bernoulli(shares[i])."""
    pmf = np.array([1.0])
    for q in shares:
        pmf = np.r_[pmf * (1 - q), 0.0] + np.r_[0.0, pmf * q]
    return pmf


def coverage_test(kept, mask):
    """kept (n, X, Y, Z) bool, each subject's kept voxels. Returns (X, Y, Z) arrays ``coverage``
    (fraction of subjects), ``p``, ``p_bonferroni`` and ``p_fdr``, and ``n`` and ``shares``."""
    kept = np.asarray(kept, bool)
    n = kept.shape[0]
    inside = kept[:, mask]
    shares = inside.mean(1)
    tail = np.cumsum(count_distribution(shares)[::-1])[::-1]  # tail[k] = P(K >= k)
    counts = inside.sum(0)
    p = np.minimum(tail[counts], 1.0)
    out = {"coverage": np.zeros(mask.shape), "n": n, "shares": shares}
    out["coverage"][mask] = counts / n
    for name, values in (
        ("p", p),
        ("p_bonferroni", multipletests(p, method="bonferroni")[1]),
        ("p_fdr", multipletests(p, method="fdr_bh")[1]),
    ):
        full = np.ones(mask.shape)
        full[mask] = values
        out[name] = full
    return out
