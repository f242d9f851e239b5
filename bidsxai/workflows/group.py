"""group: the 95th-percentile measure compared between groups (unpaired t-test), and voxel-wise
two-sample t-tests on the subject-thresholded heatmaps (Bonferroni and FDR), per method, class and
pair of groups. One map per subject: its first session."""

import itertools
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.bids import read_participants, sidecar_path
from bidsxai.errors import NoInputError, UsageError
from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.group.threshold import threshold_at_percentile
from bidsxai.group.ttest import ttest
from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report
from bidsxai.template import SPACE, load_template

HEATMAP = re.compile(r"sub-(?P<sub>[A-Za-z0-9]+)(_ses-(?P<ses>[A-Za-z0-9]+))?_space-(?P<space>[A-Za-z0-9]+)"
                     r"_res-(?P<res>[A-Za-z0-9]+)_method-(?P<method>[a-z0-9]+)_target-(?P<target>[A-Za-z0-9]+)"
                     r"_heatmap\.nii\.gz$")


def find_heatmaps(out_dir, subjects=None):
    """DataFrame of heatmap files (subject, session, method, target, path), first session only."""
    rows = []
    for path in sorted(Path(out_dir).glob("sub-*/**/*_heatmap.nii.gz")):
        match = HEATMAP.match(path.name)
        if match and (not subjects or match["sub"] in subjects):
            rows.append({"subject": match["sub"], "session": match["ses"] or "",
                         "method": match["method"], "target": match["target"], "path": path})
    if not rows:
        raise NoInputError(f"no heatmaps in {out_dir}; run the participant level with --model first")
    table = pd.DataFrame(rows).sort_values(["subject", "session"])
    first = table.groupby("subject")["session"].transform("min")
    return table[table["session"] == first].reset_index(drop=True)


def group_pairs(groups, wanted):
    if wanted:
        missing = [g for g in wanted if g not in groups]
        if len(wanted) != 2 or missing:
            raise UsageError(f"--groups needs two of {', '.join(groups)}; got {', '.join(wanted)}")
        return [tuple(wanted)]
    return list(itertools.combinations(groups, 2))


def run_group(settings, subjects=None):
    out = Path(settings.output_dir)
    participants = read_participants(settings.bids_dir)
    column = settings.target
    if column not in participants.columns:
        raise UsageError(f"--target {column}: no such column in participants.tsv")
    heatmaps = find_heatmaps(out, subjects)
    heatmaps["group"] = heatmaps["subject"].map(participants[column])
    heatmaps = heatmaps.dropna(subset=["group"])
    groups = sorted(heatmaps["group"].unique())
    pairs = group_pairs(groups, settings.groups)
    template = load_template(settings.resolution)
    mask = template.brain_mask
    group_dir = out / "group"
    measures, measure_tests, voxelwise = [], [], []
    for (method, target), rows in heatmaps.groupby(["method", "target"]):
        maps = np.stack([np.asarray(nib.load(str(p)).dataobj, np.float32) for p in rows["path"]])
        if maps.shape[1:] != mask.shape:
            raise NoInputError(f"heatmaps are {maps.shape[1:]} but the {settings.resolution:g} mm "
                               f"template is {mask.shape}; pass the --resolution they were made at")
        p95 = np.array([percentile_in_mask(m, mask) for m in maps])
        thresholded = np.stack([threshold_at_percentile(m, mask) for m in maps])
        labels = rows["group"].to_numpy()
        measures += [{"subject": f"sub-{s}", "group": g, "method": method, "target": target, "p95": v}
                     for s, g, v in zip(rows["subject"], labels, p95)]
        table = []
        for a, b in pairs:
            va, vb = p95[labels == a], p95[labels == b]
            if len(va) < 2 or len(vb) < 2:
                continue
            res = stats.ttest_ind(va, vb)
            table.append({"method": method, "target": target, "group_a": a, "group_b": b,
                          "n_a": len(va), "n_b": len(vb), "mean_a": va.mean(), "sd_a": va.std(ddof=1),
                          "mean_b": vb.mean(), "sd_b": vb.std(ddof=1), "t": float(res.statistic),
                          "df": len(va) + len(vb) - 2, "p": float(res.pvalue)})
            voxelwise.append(voxelwise_test(template, thresholded[labels == a], thresholded[labels == b],
                                            group_dir, method, target, a, b, settings))
        measure_tests.append({"method": method, "target": target, "rows": table,
                              "figure": figures.measure_boxplot(
                                  {g: p95[labels == g] for g in groups}, "95th percentile")})
    _write_tsv(group_dir / "measures.tsv", measures)
    _write_tsv(group_dir / "measure_tests.tsv", [r for m in measure_tests for r in m["rows"]])
    _write_tsv(group_dir / "voxelwise.tsv", [{k: v for k, v in r.items() if k != "figure"} for r in voxelwise])
    render_report("group.html.j2", out / "group.html", n_subjects=heatmaps["subject"].nunique(),
                  group_column=column, measure_tests=measure_tests, voxelwise=voxelwise,
                  methods=methods_text(settings))
    return voxelwise


def voxelwise_test(template, maps_a, maps_b, group_dir, method, target, a, b, settings):
    """Two-sample t-test (a - b) written as NIfTI stat maps; returns the summary row."""
    result = ttest(maps_a, maps_b, mask=template.brain_mask, n_perm=settings.n_perm,
                   seed=settings.seed)
    stem = f"space-{SPACE}_method-{method}_target-{target}_desc-{_safe(a)}vs{_safe(b)}"
    sidecar = {"Test": "two-sample Student t (first group minus second), two-sided",
               "Groups": [a, b], "N": [len(maps_a), len(maps_b)], "DegreesOfFreedom": result["df"],
               "Input": "heatmaps max-normalised and kept where >= each subject's 95th percentile",
               "Mask": "template brain mask; voxels without variance are not tested",
               "SpatialReference": SPACE}
    maps = [("t", result["t"], {}), ("p", result["p"], {"Correction": "none"}),
            ("logp", -np.log10(result["p_fdr"]), {"Correction": "fdr_bh"}),
            ("logp", -np.log10(result["p_bonferroni"]), {"Correction": "bonferroni"})]
    if "p_fwe" in result:
        maps.append(("logp", -np.log10(result["p_fwe"]),
                     {"Correction": "fwe_maxt", "Permutations": result["n_permutations"]}))
    for stat, data, extra in maps:
        corr = f"_corr-{extra['Correction'].split('_')[0]}" if stat == "logp" else ""
        path = group_dir / f"{stem}_stat-{stat}{corr}_statmap.nii.gz"
        save_nifti(template.image(data), path)
        write_json(sidecar_path(path), dict(sidecar, Statistic=stat, **extra))
    significant = result["p_fdr"] < 0.05
    return {"method": method, "target": target, "group_a": a, "group_b": b,
            "tested": int(result["tested"].sum()), "max_abs_t": float(np.abs(result["t"]).max()),
            "n_uncorrected": int((result["p"] < 0.05).sum()), "n_fdr": int(significant.sum()),
            "n_bonferroni": int((result["p_bonferroni"] < 0.05).sum()),
            "n_fwe": int((result["p_fwe"] < 0.05).sum()) if "p_fwe" in result else None,
            "figure": figures.stat_mosaic(template.t1w, result["t"], significant, template.brain_mask)}


def _safe(name):
    return re.sub(r"[^A-Za-z0-9]", "", str(name))


def _write_tsv(path, rows):
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
