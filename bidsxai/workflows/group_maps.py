"""Voxel-wise group tests written as BIDS-Derivatives stat maps: two-sample t-tests between groups
(optionally with covariates, TFCE and cluster mass) and the one-sample coverage test within a
group, each with its cluster table. Each returns its rows and the arrays a report draws."""

from dataclasses import dataclass
from functools import partial

import numpy as np

from bidsxai.atomic import save_nifti, write_json
from bidsxai.errors import UsageError
from bidsxai.group.clusters import cluster_table
from bidsxai.group.coverage import coverage_test
from bidsxai.group.ttest import ttest
from bidsxai.outputs import group_statmap_path, sidecar_path
from bidsxai.workflows.device import pick_device

ALPHA = 0.05


@dataclass
class VoxelwiseTest:
    row: dict  # the summary of the test (counts per correction)
    clusters: list  # cluster rows
    t: np.ndarray  # the t map
    significant: np.ndarray  # voxels significant under the strongest correction run


@dataclass
class CoverageTest:
    row: dict
    clusters: list


def _write_map(path_of, stat, data, template, sidecar, correction=None, **extra):
    path = path_of(stat, space=template.space, correction=correction)
    save_nifti(template.image(data), path)
    write_json(
        sidecar_path(path), dict(sidecar, Statistic=stat, Correction=correction or "none", **extra)
    )


def _significance(result):
    """The strongest family-wise or FDR map the test computed, and its name."""
    for p_name, name in (
        ("p_fwe_tfce", "tfcefwe"),
        ("p_fwe_cluster_mass", "clusterfwe"),
        ("p_fwe", "fwe"),
        ("p_fdr", "fdr"),
    ):
        if p_name in result:
            return result[p_name] < ALPHA, name
    raise KeyError("no corrected p")


def _clusters(stat, significant, template, atlas, key):
    table = cluster_table(stat, significant, template.affine, atlas)
    return [dict(key, **row) for row in table.to_dict("records")]


def _voxelwise(maps_a, maps_b, covariates, template, settings):
    try:
        return ttest(
            maps_a,
            maps_b,
            mask=template.brain_mask,
            covariates=covariates,
            n_perm=settings.n_perm,
            tfce=settings.tfce,
            cluster_p=settings.cluster_p,
            seed=settings.seed,
            device=pick_device(settings.device),
        )
    except ValueError as exc:  # covariates that leave no group effect or no degrees of freedom
        raise UsageError(f"--covariates {' '.join(settings.covariates)}: {exc}") from None


def two_sample(maps_a, maps_b, covariates, template, atlas, group_dir, key, settings):
    """Test a - b voxel-wise (two-sided, so both directions) and write its maps; ``key`` names the
    method, target and groups."""
    result = _voxelwise(maps_a, maps_b, covariates, template, settings)
    a, b = key["group_a"], key["group_b"]
    sidecar = {
        "Test": "Student t of the group effect (first group minus second), two-sided"
        + (", adjusted for " + ", ".join(settings.covariates) if covariates is not None else ""),
        "Groups": [a, b],
        "N": [len(maps_a), len(maps_b)],
        "DegreesOfFreedom": result["df"],
        "Input": f"subject means over sessions of the heatmaps max-normalised, then thresholded "
        f"per subject ({settings.threshold})",
        "Mask": "template brain mask; voxels without variance are not tested",
        "SpatialReference": template.space,
    }
    if covariates is not None:
        sidecar["Permutation"] = "Freedman-Lane, subjects exchanged with all their sessions"
    elif settings.n_perm:
        sidecar["Permutation"] = "relabelling of subjects, each with all its sessions"
    return _write_test(
        result, (a, b), sidecar, "two-sample", template, atlas, group_dir, key, settings
    )


def paired(before, after, template, atlas, group_dir, key, settings):
    """Test each subject's change after - before voxel-wise (one-sample t of the differences,
    two-sided, FWE by sign flips of whole subjects) and write its maps."""
    result = _voxelwise(after - before, None, None, template, settings)
    sessions = key["session_before"], key["session_after"]
    sidecar = {
        "Test": "paired t of the change from the first session to the second (one-sample t of "
        "each subject's difference), two-sided",
        "Sessions": list(sessions),
        "N": len(before),
        "DegreesOfFreedom": result["df"],
        "Input": f"heatmaps max-normalised and thresholded per session ({settings.threshold})",
        "Mask": "template brain mask; voxels without variance are not tested",
        "SpatialReference": template.space,
    }
    if settings.n_perm:
        sidecar["Permutation"] = "sign flips of each subject's difference"
    comparison = tuple(f"ses-{s}" for s in sessions)
    return _write_test(
        result, comparison, sidecar, "paired", template, atlas, group_dir, key, settings
    )


def _write_test(result, comparison, sidecar, test, template, atlas, group_dir, key, settings):
    """Write a t-test's maps (t, p, every correction run, TFCE and cluster mass) and return its
    summary row, cluster rows and the arrays a report draws."""
    path_of = partial(group_statmap_path, group_dir, key["method"], key["target"], comparison)
    _write_map(path_of, "t", result["t"], template, sidecar)
    _write_map(path_of, "p", result["p"], template, sidecar)
    for p_name, name in (
        ("p_fdr", "fdr"),
        ("p_bonferroni", "bonferroni"),
        ("p_fwe", "fwe"),
        ("p_fwe_tfce", "tfcefwe"),
        ("p_fwe_cluster_mass", "clusterfwe"),
    ):
        if p_name in result:
            extra = {"Permutations": result["n_permutations"]} if p_name.startswith("p_fwe") else {}
            _write_map(path_of, "logp", -np.log10(result[p_name]), template, sidecar, name, **extra)
    if "tfce" in result:
        _write_map(path_of, "tfce", result["tfce"], template, sidecar, E=0.5, H=2, Connectivity=6)
    if "cluster_mass" in result:
        _write_map(
            path_of,
            "clustermass",
            result["cluster_mass"],
            template,
            sidecar,
            ClusterFormingP=settings.cluster_p,
        )
    significant, correction = _significance(result)
    row = dict(
        key,
        tested=int(result["tested"].sum()),
        max_abs_t=float(np.abs(result["t"]).max()),
        n_uncorrected=int((result["p"] < ALPHA).sum()),
        n_fdr=int((result["p_fdr"] < ALPHA).sum()),
        n_bonferroni=int((result["p_bonferroni"] < ALPHA).sum()),
    )
    for p_name, name in (
        ("p_fwe", "n_fwe"),
        ("p_fwe_tfce", "n_tfce_fwe"),
        ("p_fwe_cluster_mass", "n_cluster_fwe"),
    ):
        row[name] = int((result[p_name] < ALPHA).sum()) if p_name in result else None
    row["correction"] = correction
    clusters = _clusters(
        result["t"],
        significant,
        template,
        atlas,
        dict(key, test=test, correction=correction),
    )
    return VoxelwiseTest(row, clusters, result["t"], significant)


def coverage(maps, template, atlas, group_dir, key, settings):
    """Within one group: voxels kept by more subjects than chance (see group.coverage)."""
    mask = template.brain_mask
    result = coverage_test(maps > 0, mask)
    path_of = partial(group_statmap_path, group_dir, key["method"], key["target"], (key["group"],))
    sidecar = {
        "Test": "one-sided exact test of how many subjects keep a voxel against the "
        "Poisson-binomial count expected if each subject's kept voxels lay anywhere "
        "in the brain",
        "Group": key["group"],
        "N": result["n"],
        "KeptShare": [float(s) for s in result["shares"]],
        "Input": f"heatmaps thresholded per subject ({settings.threshold})",
        "SpatialReference": template.space,
    }
    _write_map(path_of, "coverage", result["coverage"], template, sidecar)
    _write_map(path_of, "p", result["p"], template, sidecar)
    for name in ("fdr", "bonferroni"):
        _write_map(path_of, "logp", -np.log10(result[f"p_{name}"]), template, sidecar, name)
    significant = result["p_fdr"] < ALPHA
    row = dict(
        key,
        n=result["n"],
        mean_kept_share=float(result["shares"].mean()),
        max_coverage=float(result["coverage"].max()),
        n_fdr=int(significant.sum()),
        n_bonferroni=int((result["p_bonferroni"] < ALPHA).sum()),
    )
    clusters = _clusters(
        result["coverage"],
        significant,
        template,
        atlas,
        dict(key, test="coverage", correction="fdr"),
    )
    return CoverageTest(row, clusters)
