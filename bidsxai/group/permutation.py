"""Permutation engine on torch (CPU or GPU): max-T family-wise error for voxel-wise t-tests and
permutation p-values for Spearman correlations.

Under relabelling the two-sample t of every voxel is a function of the group sums alone (the
totals are fixed), so each chunk of permutations is one (P x n) @ (n x V) product; a
running maximum keeps memory bounded. One-sample tests flip signs (the null for data symmetric
about ``popmean``). When the number of distinct relabellings is at most ``n_perm`` they are all
enumerated and the p-values are exact. p = (1 + #{max_t >= |t_obs|}) / (1 + P), the observed
labelling counted among the permutations. Float64 throughout: no TF32, no rounding of ranks.
"""

import itertools
import math

import numpy as np
import torch


def _two_sample_t(sum_a, n_a, total, total_sq, n):
    """t (a - b) from group A's sums alone (the totals are fixed under relabelling), in place.

    With S = sum_a, T = total, Q = total_sq and c = 1/n_a + 1/n_b:
    mean_a - mean_b = c S - T/n_b and the pooled sum of squares is Q - T^2/n_b + (2T/n_b) S - c S^2,
    so a chunk needs a few in-place operations on one (P, V) array besides S (8x faster than
    forming the group means and variances).
    """
    n_b = n - n_a
    c = 1 / n_a + 1 / n_b
    diff = sum_a * c - total / n_b
    ss = (sum_a * -c + 2 * total / n_b).mul_(sum_a).add_(total_sq - total ** 2 / n_b)
    scale = torch.clamp(ss, min=0).mul_(c / (n - 2))
    valid = scale > 1e-12 * (total_sq.abs() + 1)
    return torch.where(valid, diff.mul_(scale.rsqrt_()), 0)


def _one_sample_t(sums, sumsq, n):
    mean = sums / n
    var = (sumsq - n * mean ** 2) / (n - 1)
    se = torch.sqrt(torch.clamp(var, min=0) / n)
    return torch.where(se > 0, mean / torch.where(se > 0, se, 1), 0)


def _relabellings(n, n_a, n_perm, rng):
    """(P, n) 0/1 group-A indicators: every one when there are at most n_perm, else random draws."""
    if math.comb(n, n_a) <= n_perm:
        rows = np.zeros((math.comb(n, n_a), n))
        for i, chosen in enumerate(itertools.combinations(range(n), n_a)):
            rows[i, list(chosen)] = 1
        return rows, True
    rows = np.zeros((n_perm, n))
    for i in range(n_perm):
        rows[i, rng.permutation(n)[:n_a]] = 1
    return rows, False


def _sign_flips(n, n_perm, rng):
    if 2 ** n <= n_perm:
        return np.array(list(itertools.product([1.0, -1.0], repeat=n))), True
    return rng.choice([1.0, -1.0], size=(n_perm, n)), False


def max_t(data, labels=None, *, n_perm=10000, popmean=0.0, two_sided=True, seed=0, device="cpu",
          chunk=None):
    """Observed t (V,) and max-T FWE p-values (V,) for data (n, V).

    ``labels`` (n,) bool marks group A for a two-sample test (A minus B); None tests the mean
    against ``popmean`` by sign flipping. Returns (t, p_fwe, n_permutations, exact).
    """
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(np.asarray(data, np.float64), device=device)
    n = x.shape[0]
    if chunk is None:  # (chunk x V) float64 arrays of about 24 MB: 2.8x faster than 200 MB on CPU
        chunk = max(4, min(512, 3_000_000 // max(x.shape[1], 1)))
    if labels is None:
        x = x - popmean
        sumsq = (x ** 2).sum(0)
        t_obs = _one_sample_t(x.sum(0), sumsq, n)
        design, exact = _sign_flips(n, n_perm, rng)
        statistic = lambda d: _one_sample_t(d @ x, sumsq, n)  # noqa: E731
    else:
        labels = np.asarray(labels, bool)
        n_a = int(labels.sum())
        total, total_sq = x.sum(0), (x ** 2).sum(0)
        t_obs = _two_sample_t(x[torch.as_tensor(labels, device=device)].sum(0), n_a, total,
                              total_sq, n)
        design, exact = _relabellings(n, n_a, n_perm, rng)
        statistic = lambda d: _two_sample_t(d @ x, n_a, total, total_sq, n)  # noqa: E731
    maxima = []
    for start in range(0, len(design), chunk):
        d = torch.as_tensor(design[start:start + chunk], dtype=torch.float64, device=device)
        t = statistic(d)
        maxima.append((t.abs() if two_sided else t).amax(1).cpu().numpy())
    maxima = np.sort(np.concatenate(maxima))
    observed = (t_obs.abs() if two_sided else t_obs).cpu().numpy()
    exceed = len(maxima) - np.searchsorted(maxima, observed - 1e-12, side="left")
    if exact:  # the observed labelling is among the enumerated ones
        p = exceed / len(design)
    else:
        p = (exceed + 1) / (len(design) + 1)
    return t_obs.cpu().numpy(), p, len(design), exact


def spearman_permutation(x, y, *, n_perm=20000, seed=0, device="cpu", chunk=4096):
    """Spearman's rho and its two-sided permutation p-value (paper 001: 20,000 permutations)."""
    from scipy.stats import rankdata

    rx = torch.as_tensor(rankdata(x), dtype=torch.float64, device=device)
    ry = rankdata(y)
    rx = (rx - rx.mean()) / torch.sqrt(((rx - rx.mean()) ** 2).sum())
    centred = (ry - ry.mean()) / np.sqrt(((ry - ry.mean()) ** 2).sum())
    rho = float(rx @ torch.as_tensor(centred, device=device))
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_perm, chunk):
        size = min(chunk, n_perm - start)
        shuffled = np.stack([rng.permutation(centred) for _ in range(size)])
        values = torch.as_tensor(shuffled, device=device) @ rx
        exceed += int((values.abs() >= abs(rho) - 1e-12).sum())
    return rho, (exceed + 1) / (n_perm + 1)
