"""Voxel-wise t-tests on arrays shaped (n_subjects, X, Y, Z), with Bonferroni and FDR.

Only voxels inside ``mask`` whose values vary are tested (a voxel that is 0 in every map has no
t); the corrections count exactly those voxels. Untested voxels hold t = 0 and p = 1.
"""

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests


def _moments(maps):
    n = maps.shape[0]
    mean = maps.mean(0)
    var = maps.var(0, ddof=1) if n > 1 else np.zeros_like(mean)
    return n, mean, var


def ttest(maps_a, maps_b=None, *, mask=None, n_perm=0, two_sided=True, popmean=0.0, seed=0,
          device="cpu"):
    """Student's two-sample t (a - b) or one-sample t (a - popmean) per voxel.

    Returns a dict of (X, Y, Z) arrays: ``t``, ``p`` (uncorrected), ``p_bonferroni``, ``p_fdr``
    (Benjamini-Hochberg), ``tested`` (bool), and ``df``; with ``n_perm > 0`` also ``p_fwe``
    (max-T over the tested voxels; relabelling, or sign flipping for one sample; exact when all
    relabellings fit in n_perm) and ``n_permutations``. One-sided tests look at t > 0.
    """
    a = np.asarray(maps_a, np.float64)
    shape = a.shape[1:]
    mask = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    a = a[:, mask]
    if maps_b is None:
        n, mean, var = _moments(a)
        se = np.sqrt(var / n)
        diff, df = mean - popmean, n - 1
    else:
        b = np.asarray(maps_b, np.float64)[:, mask]
        na, mean_a, var_a = _moments(a)
        nb, mean_b, var_b = _moments(b)
        df = na + nb - 2
        pooled = ((na - 1) * var_a + (nb - 1) * var_b) / max(df, 1)
        se = np.sqrt(pooled * (1.0 / na + 1.0 / nb))
        diff = mean_a - mean_b
    tested = se > 0
    t = np.zeros_like(diff)
    t[tested] = diff[tested] / se[tested]
    p = np.ones_like(diff)
    if df > 0:
        p[tested] = 2 * stats.t.sf(np.abs(t[tested]), df) if two_sided else stats.t.sf(t[tested], df)
    p_bonf, p_fdr = np.ones_like(p), np.ones_like(p)
    if tested.any():
        p_bonf[tested] = multipletests(p[tested], method="bonferroni")[1]
        p_fdr[tested] = multipletests(p[tested], method="fdr_bh")[1]
    out = {}
    for name, values, fill in (("t", t, 0.0), ("p", p, 1.0), ("p_bonferroni", p_bonf, 1.0),
                               ("p_fdr", p_fdr, 1.0), ("tested", tested, False)):
        full = np.full(shape, fill, dtype=values.dtype)
        full[mask] = values
        out[name] = full
    if n_perm > 0 and tested.any():
        from bidsxai.group.permutation import max_t

        data = a if maps_b is None else np.concatenate([a, b])
        labels = None if maps_b is None else np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
        _, p_fwe, used, _ = max_t(data[:, tested], labels, n_perm=n_perm, popmean=popmean,
                                  two_sided=two_sided, seed=seed, device=device)
        full = np.ones(shape)
        inside = np.ones(tested.shape)
        inside[tested] = p_fwe
        full[mask] = inside
        out["p_fwe"] = full
        out["n_permutations"] = used
    out["df"] = df
    return out
