"""Voxel-wise group tests written as BIDS-Derivatives stat maps: two-sample t-tests between groups
(optionally with covariates, TFCE and cluster mass) and the one-sample coverage test within a
group, each with its cluster table."""

import re

import numpy as np

from bidsxai.atomic import save_nifti, write_json
from bidsxai.bids import sidecar_path
from bidsxai.errors import UsageError
from bidsxai.group.clusters import cluster_table
from bidsxai.group.coverage import coverage_test
from bidsxai.group.ttest import ttest
from bidsxai.reports import figures
from bidsxai.template import SPACE
from bidsxai.workflows.device import pick_device

ALPHA = 0.05


def safe_label(name):
    return re.sub(r"[^A-Za-z0-9]", "", str(name))


def _write_map(group_dir, stem, stat, data, template, sidecar, correction=None, **extra):
    corr = f"_corr-{correction}" if correction else ""
    path = group_dir / f"{stem}_stat-{stat}{corr}_statmap.nii.gz"
    save_nifti(template.image(data), path)
    write_json(sidecar_path(path), dict(sidecar, Statistic=stat, Correction=correction or "none", **extra))


def _significance(result):
    """The strongest family-wise or FDR map the test computed, and its name."""
    for key, name in (("p_fwe_tfce", "tfcefwe"), ("p_fwe_cluster_mass", "clusterfwe"),
                      ("p_fwe", "fwe"), ("p_fdr", "fdr")):
        if key in result:
            return result[key] < ALPHA, name
    raise KeyError("no corrected p")


def _clusters(stat, significant, template, atlas, context):
    table = cluster_table(stat, significant, template.affine, atlas)
    return [dict(context, **row) for row in table.to_dict("records")]


def two_sample(maps_a, maps_b, covariates, template, atlas, group_dir, context, settings):
    """Test a - b voxel-wise (two-sided, so both directions), write its maps, and return its
    summary row, cluster rows and figures."""
    mask = template.brain_mask
    try:
        result = ttest(maps_a, maps_b, mask=mask, covariates=covariates, n_perm=settings.n_perm,
                       tfce=settings.tfce, cluster_p=settings.cluster_p, seed=settings.seed,
                       device=pick_device(settings.device))
    except ValueError as exc:  # covariates that leave no group effect or no degrees of freedom
        raise UsageError(f"--covariates {' '.join(settings.covariates)}: {exc}") from None
    a, b = context["group_a"], context["group_b"]
    stem = (f"space-{SPACE}_method-{context['method']}_target-{context['target']}"
            f"_desc-{safe_label(a)}vs{safe_label(b)}")
    sidecar = {"Test": "Student t of the group effect (first group minus second), two-sided" +
                       (", adjusted for " + ", ".join(settings.covariates) if covariates is not None else ""),
               "Groups": [a, b], "N": [len(maps_a), len(maps_b)], "DegreesOfFreedom": result["df"],
               "Input": f"heatmaps max-normalised and thresholded per subject ({settings.threshold})",
               "Mask": "template brain mask; voxels without variance are not tested",
               "SpatialReference": SPACE}
    if covariates is not None:
        sidecar["Permutation"] = "Freedman-Lane"
    _write_map(group_dir, stem, "t", result["t"], template, sidecar)
    _write_map(group_dir, stem, "p", result["p"], template, sidecar)
    for key, name in (("p_fdr", "fdr"), ("p_bonferroni", "bonferroni"), ("p_fwe", "fwe"),
                      ("p_fwe_tfce", "tfcefwe"), ("p_fwe_cluster_mass", "clusterfwe")):
        if key in result:
            extra = {"Permutations": result["n_permutations"]} if key.startswith("p_fwe") else {}
            _write_map(group_dir, stem, "logp", -np.log10(result[key]), template, sidecar, name, **extra)
    if "tfce" in result:
        _write_map(group_dir, stem, "tfce", result["tfce"], template, sidecar, E=0.5, H=2, Connectivity=6)
    if "cluster_mass" in result:
        _write_map(group_dir, stem, "clustermass", result["cluster_mass"], template, sidecar,
                   ClusterFormingP=settings.cluster_p)
    significant, correction = _significance(result)
    row = dict(context, tested=int(result["tested"].sum()), max_abs_t=float(np.abs(result["t"]).max()),
               n_uncorrected=int((result["p"] < ALPHA).sum()), n_fdr=int((result["p_fdr"] < ALPHA).sum()),
               n_bonferroni=int((result["p_bonferroni"] < ALPHA).sum()))
    for key, name in (("p_fwe", "n_fwe"), ("p_fwe_tfce", "n_tfce_fwe"), ("p_fwe_cluster_mass", "n_cluster_fwe")):
        row[name] = int((result[key] < ALPHA).sum()) if key in result else None
    row["correction"] = correction
    figure = {"mosaic": figures.stat_mosaic(template.t1w, result["t"], significant, mask),
              "glass": figures.glass_brain(template.image(np.where(significant, result["t"], 0.0)), 1e-6)
              if significant.any() else None}
    clusters = _clusters(result["t"], significant, template, atlas, dict(context, test="two-sample",
                                                                         correction=correction))
    return dict(row, figure=figure), clusters


def coverage(maps, template, atlas, group_dir, context, settings):
    """Within one group: voxels kept by more subjects than chance (see group.coverage)."""
    mask = template.brain_mask
    result = coverage_test(maps > 0, mask)
    stem = (f"space-{SPACE}_method-{context['method']}_target-{context['target']}"
            f"_desc-{safe_label(context['group'])}coverage")
    sidecar = {"Test": "one-sided exact test of how many subjects keep a voxel against the "
                       "Poisson-binomial count expected if each subject's kept voxels lay anywhere "
                       "in the brain", "Group": context["group"], "N": result["n"],
               "KeptShare": [float(s) for s in result["shares"]],
               "Input": f"heatmaps thresholded per subject ({settings.threshold})", "SpatialReference": SPACE}
    _write_map(group_dir, stem, "coverage", result["coverage"], template, sidecar)
    _write_map(group_dir, stem, "p", result["p"], template, sidecar)
    for name in ("fdr", "bonferroni"):
        _write_map(group_dir, stem, "logp", -np.log10(result[f"p_{name}"]), template, sidecar, name)
    significant = result["p_fdr"] < ALPHA
    row = dict(context, n=result["n"], mean_kept_share=float(result["shares"].mean()),
               max_coverage=float(result["coverage"].max()), n_fdr=int(significant.sum()),
               n_bonferroni=int((result["p_bonferroni"] < ALPHA).sum()))
    clusters = _clusters(result["coverage"], significant, template, atlas,
                         dict(context, test="coverage", correction="fdr"))
    return row, clusters
