"""Voxel-wise t-tests on arrays shaped (n_subjects, X, Y, Z): Student's t (one or two samples, or a
group effect adjusted for covariates), Bonferroni, FDR and permutation family-wise error by the
maximum of t, TFCE or cluster mass.

Only voxels inside ``mask`` whose values vary are tested (a voxel that is 0 in every map has no
t); the corrections count exactly those voxels, and clusters form among them. Untested voxels
hold t = 0 and p = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from bidsxai.group.glm import glm_t, reduced_model
from bidsxai.group.lattice import cluster_mass_values, neighbour_table, tfce_values

if TYPE_CHECKING:
    import torch


def _moments(maps):
    n = maps.shape[0]
    mean = maps.mean(0)
    var = maps.var(0, ddof=1) if n > 1 else np.zeros_like(mean)
    return n, mean, var


def _observed_t(a, b, covariates, popmean):
    """t (V,), whether each voxel can be tested, and the degrees of freedom."""
    if covariates is not None:
        data = np.concatenate([a, b])
        model = reduced_model(data, np.r_[np.ones(len(a)), np.zeros(len(b))], covariates)
        total_sq = (model.residuals**2).sum(0)
        t = glm_t(
            model.design_rows @ model.residuals,
            total_sq,
            model.regressor @ model.regressor,
            model.df,
        )
        return t, t != 0, model.df
    if b is None:
        n, mean, var = _moments(a)
        se, diff, df = np.sqrt(var / n), mean - popmean, n - 1
    else:
        na, mean_a, var_a = _moments(a)
        nb, mean_b, var_b = _moments(b)
        df = na + nb - 2
        pooled = ((na - 1) * var_a + (nb - 1) * var_b) / max(df, 1)
        se, diff = np.sqrt(pooled * (1.0 / na + 1.0 / nb)), mean_a - mean_b
    tested = se > 0
    t = np.zeros_like(diff)
    t[tested] = diff[tested] / se[tested]
    return t, tested, df


def ttest(
    maps_a: np.ndarray,
    maps_b: np.ndarray | None = None,
    *,
    mask: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
    n_perm: int = 0,
    tfce: bool = False,
    cluster_p: float | None = None,
    two_sided: bool = True,
    popmean: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    connectivity: int = 1,
) -> dict[str, np.ndarray]:
    """Student's two-sample t (a - b) or one-sample t (a - popmean) per voxel.

    ``covariates`` (n_a + n_b, c), rows in the order of a then b, turns the two-sample test into
    the t of the group effect in a GLM with an intercept and the covariates; its permutations
    follow Freedman-Lane. Returns a dict of (X, Y, Z) arrays: ``t``, ``p`` (uncorrected),
    ``p_bonferroni``, ``p_fdr`` (Benjamini-Hochberg), ``tested`` (bool), and ``df``; with
    ``tfce=True`` the ``tfce`` map (E = 0.5, H = 2, faces); with ``cluster_p`` the ``cluster_mass``
    map, sum of |t| - t_c over each cluster of voxels with uncorrected p < cluster_p; with
    ``n_perm > 0`` the family-wise-error p-values ``p_fwe`` (max-T) and ``p_fwe_tfce`` /
    ``p_fwe_cluster_mass`` as asked, and ``n_permutations``. One-sided tests look at t > 0.
    """
    a = np.asarray(maps_a, np.float64)
    shape = a.shape[1:]
    mask = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    a = a[:, mask]
    b = None if maps_b is None else np.asarray(maps_b, np.float64)[:, mask]
    if covariates is not None and b is None:
        raise ValueError("covariates adjust a two-sample test; give maps_b")
    t, tested, df = _observed_t(a, b, covariates, popmean)
    p = np.ones_like(t)
    if df > 0:
        p[tested] = (
            2 * stats.t.sf(np.abs(t[tested]), df) if two_sided else stats.t.sf(t[tested], df)
        )
    p_bonf, p_fdr = np.ones_like(p), np.ones_like(p)
    if tested.any():
        p_bonf[tested] = multipletests(p[tested], method="bonferroni")[1]
        p_fdr[tested] = multipletests(p[tested], method="fdr_bh")[1]
    values = {"t": t, "p": p, "p_bonferroni": p_bonf, "p_fdr": p_fdr, "tested": tested}
    enhancers = _enhancers(mask, tested, df, tfce, cluster_p, two_sided, connectivity)
    if n_perm > 0 and tested.any():
        from bidsxai.group.permutation import permutation_fwe

        data = a if b is None else np.concatenate([a, b])
        labels = None if b is None else np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
        result = permutation_fwe(
            data[:, tested],
            labels,
            covariates=covariates,
            n_perm=n_perm,
            popmean=popmean,
            two_sided=two_sided,
            seed=seed,
            device=device,
            enhancers=enhancers,
        )
        for key in ["p_fwe", *(f"p_fwe_{name}" for name in enhancers)]:
            values[key] = _scatter(result[key], tested, 1.0)
        observed = {name: result[name] for name in enhancers}  # the engine enhanced the observed t
    else:
        observed = {name: enhance(t[tested]) for name, enhance in enhancers.items()}
    for name, enhanced in observed.items():
        values[name] = _scatter(enhanced, tested, 0.0)
    out = {}
    for name, inside in values.items():
        fill = False if inside.dtype == bool else (1.0 if name.startswith("p") else 0.0)
        full = np.full(shape, fill, dtype=inside.dtype)
        full[mask] = inside
        out[name] = full
    out["df"] = df
    if "p_fwe" in values:
        out["n_permutations"] = result["n_permutations"]
    return out


def _scatter(values, where, fill):
    full = np.full(where.shape, fill)
    full[where] = values
    return full


def _enhancers(mask, tested, df, tfce, cluster_p, two_sided, connectivity):
    """Functions of a t vector over the tested voxels: its TFCE and its cluster-mass maps."""
    if not (tfce or cluster_p):
        return {}
    lattice = np.zeros(mask.shape, bool)
    lattice[mask] = tested
    neighbours = neighbour_table(lattice, connectivity)
    enhancers = {}
    if tfce:
        enhancers["tfce"] = lambda t: tfce_values(t, neighbours, two_sided=two_sided)
    if cluster_p:
        threshold = stats.t.isf(cluster_p / 2 if two_sided else cluster_p, df)
        enhancers["cluster_mass"] = lambda t: cluster_mass_values(
            t, neighbours, threshold, two_sided=two_sided
        )
    return enhancers
