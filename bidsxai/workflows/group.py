"""group: per method and class, the subject measures compared between groups, voxel-wise
two-sample tests between groups and coverage tests within groups on the subject-thresholded maps,
cluster tables and lobe summaries from an atlas, ROI-vector similarity within and between
subjects (paper 004), and correlations of an image within each subject's quantile mask with a
clinical score (paper 001). Group tests use each subject's first session; the similarity uses
every session."""

import dataclasses
import itertools
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.atomic import atomic_path
from bidsxai.bids import read_participants
from bidsxai.errors import NoInputError, UsageError
from bidsxai.group.atlas import (
    AAL,
    cosine_similarity,
    load_atlas,
    lobe_summary,
    region_table,
    roi_vector,
)
from bidsxai.group.measures import compare_groups, subject_measures
from bidsxai.group.permutation import spearman_permutation
from bidsxai.group.threshold import parse_threshold
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report
from bidsxai.template import load_template
from bidsxai.workflows.group_maps import coverage, two_sample

HEATMAP = re.compile(r"sub-(?P<sub>[A-Za-z0-9]+)(_ses-(?P<ses>[A-Za-z0-9]+))?_space-(?P<space>[A-Za-z0-9]+)"
                     r"_res-(?P<res>[A-Za-z0-9]+)_method-(?P<method>[a-z0-9]+)_target-(?P<target>[A-Za-z0-9]+)"
                     r"_heatmap\.nii\.gz$")


def find_heatmaps(out_dir, subjects=None):
    """DataFrame of heatmap files (subject, session, method, target, path, first), where ``first``
    marks each subject's first session."""
    rows = []
    for path in sorted(Path(out_dir).glob("sub-*/**/*_heatmap.nii.gz")):
        match = HEATMAP.match(path.name)
        if match and (not subjects or match["sub"] in subjects):
            rows.append({"subject": match["sub"], "session": match["ses"] or "",
                         "method": match["method"], "target": match["target"], "path": path})
    if not rows:
        raise NoInputError(f"no heatmaps in {out_dir}; run the participant level with --model first")
    table = pd.DataFrame(rows).sort_values(["subject", "session"]).reset_index(drop=True)
    table["first"] = table["session"] == table.groupby("subject")["session"].transform("min")
    return table


def group_pairs(groups, wanted):
    if wanted:
        missing = [g for g in wanted if g not in groups]
        if len(wanted) != 2 or missing:
            raise UsageError(f"--groups needs two of {', '.join(groups)}; got {', '.join(wanted)}")
        return [tuple(wanted)]
    return list(itertools.combinations(groups, 2))


def covariate_matrix(participants, subjects, columns):
    """(n, c) numbers for the covariate columns: numeric as they are, categorical as 0/1 dummies
    (first level dropped). A subject without a value is an error, not silently dropped."""
    if not columns:
        return None
    parts = []
    for column in columns:
        if column not in participants.columns:
            raise UsageError(f"--covariates {column}: no such column in participants.tsv")
        values = participants[column].reindex(subjects)
        if values.isna().any():
            missing = ", ".join(f"sub-{s}" for s in values[values.isna()].index)
            raise NoInputError(f"covariate {column} is n/a for {missing}")
        numeric = pd.to_numeric(values, errors="coerce")
        parts.append(numeric.to_numpy(float)[:, None] if numeric.notna().all()
                     else pd.get_dummies(values, drop_first=True).to_numpy(float))
    return np.hstack(parts)


def _load(paths):
    return np.stack([np.asarray(nib.load(str(p)).dataobj, np.float32) for p in paths])


def _atlas(settings, template):
    if settings.atlas == "auto":
        return load_atlas("aal", template) if AAL.is_file() else None
    return load_atlas(settings.atlas, template) if settings.atlas else None


def _correlation_image(settings, subject, session):
    """The preprocessed contrast, or the user's file when --correlate-image is a path pattern
    with {subject} (and {session}), e.g. a quantitative map already on the template grid."""
    spec = settings.correlate_image
    if "{subject}" in spec:
        path = Path(spec.format(subject=subject, session=session))
    else:
        path = preproc_path(settings.output_dir, subject, session or None, spec, settings.resolution)
    if not path.is_file():
        raise NoInputError(f"--correlate-image {spec}: {path} not found; give a preprocessed contrast "
                           "(T1w, T2w, FLAIR) or a path pattern with {subject}")
    return path


def _check_inputs(settings, participants, first):
    """Refuse covariates and correlation images that are missing before anything is written."""
    covariate_matrix(participants, list(first["subject"].unique()), settings.covariates)
    if settings.correlate:
        for subject, session in set(zip(first["subject"], first["session"])):
            _correlation_image(settings, subject, session)


def run_group(settings, subjects=None):
    out = Path(settings.output_dir)
    participants = read_participants(settings.bids_dir)
    for flag, column in (("--target", settings.target), ("--correlate", settings.correlate)):
        if column and column not in participants.columns:
            raise UsageError(f"{flag} {column}: no such column in participants.tsv")
    heatmaps = find_heatmaps(out, subjects)
    heatmaps["group"] = heatmaps["subject"].map(participants[settings.target])
    heatmaps = heatmaps.dropna(subset=["group"])
    groups = sorted(heatmaps["group"].unique())
    pairs = group_pairs(groups, settings.groups)
    _check_inputs(settings, participants, heatmaps[heatmaps["first"]])
    template = load_template(settings.resolution)
    atlas = _atlas(settings, template)
    settings = dataclasses.replace(settings, atlas=atlas.name if atlas else None)  # as used
    threshold = parse_threshold(settings.threshold)
    results = {key: [] for key in ("measures", "measure_tests", "voxelwise", "coverage", "clusters",
                                   "regions", "lobes", "similarity", "correlations")}
    sections = []
    for (method, target), rows in heatmaps.groupby(["method", "target"]):
        section = analyse(rows, method, target, pairs, participants, template, atlas, threshold,
                          settings, results)
        sections.append(section)
    group_dir = out / "group"
    for name, rows in results.items():
        _write_tsv(group_dir / f"{name}.tsv", [{k: v for k, v in r.items() if k != "figure"} for r in rows])
    render_report("group.html.j2", out / "group.html", n_subjects=heatmaps["subject"].nunique(),
                  group_column=settings.target, sections=sections, settings=settings,
                  atlas=atlas.name if atlas else None, methods=methods_text(settings))
    return results


def analyse(rows, method, target, pairs, participants, template, atlas, threshold, settings, results):
    """Every group analysis of one method and class; appends rows to ``results`` and returns the
    report section."""
    mask = template.brain_mask
    first = rows[rows["first"]].reset_index(drop=True)
    raw = _load(first["path"])
    if raw.shape[1:] != mask.shape:
        raise NoInputError(f"heatmaps are {raw.shape[1:]} but the {settings.resolution:g} mm "
                           f"template is {mask.shape}; pass the --resolution they were made at")
    thresholded = np.stack([threshold(m, mask) for m in raw])
    labels = first["group"].to_numpy()
    context = {"method": method, "target": target}
    section = dict(context, measures=[], voxelwise=[], coverage=[], lobes=None, correlation=None,
                   similarity=None)
    measures = pd.DataFrame([dict(context, subject=f"sub-{s}", group=g, **subject_measures(m, mask, atlas))
                             for s, g, m in zip(first["subject"], labels, raw)])
    results["measures"] += measures.to_dict("records")
    for name in [c for c in measures.columns if c not in ("method", "target", "subject", "group")]:
        values = measures[name].to_numpy()
        tests = [dict(context, measure=name, group_a=a, group_b=b,
                      **compare_groups(values[labels == a], values[labels == b]))
                 for a, b in pairs if (labels == a).sum() > 1 and (labels == b).sum() > 1]
        results["measure_tests"] += tests
        if name in ("p95", "mass_above_half"):
            section["measures"].append({"name": name, "rows": tests, "figure": figures.measure_boxplot(
                {g: values[labels == g] for g in sorted(set(labels))}, name)})
    group_dir = Path(settings.output_dir) / "group"
    for a, b in pairs:
        in_a, in_b = labels == a, labels == b
        if in_a.sum() < 2 or in_b.sum() < 2:
            continue
        subjects = list(first["subject"][in_a]) + list(first["subject"][in_b])
        covariates = covariate_matrix(participants, subjects, settings.covariates)
        row, clusters = two_sample(thresholded[in_a], thresholded[in_b], covariates, template, atlas,
                                      group_dir, dict(context, group_a=a, group_b=b), settings)
        results["voxelwise"].append(row)
        results["clusters"] += clusters
        section["voxelwise"].append(dict(row, clusters=clusters))
    for g in sorted(set(labels)):
        if (labels == g).sum() >= 2:
            row, clusters = coverage(thresholded[labels == g], template, atlas, group_dir,
                                     dict(context, group=g), settings)
            results["coverage"].append(row)
            results["clusters"] += clusters
            section["coverage"].append(dict(row, clusters=clusters))
    if atlas is not None:
        section["lobes"] = _lobes(first, labels, thresholded, atlas, context, results)
        section["similarity"] = _similarity(rows, first, thresholded, threshold, atlas, mask, context, results)
    if settings.correlate:
        section["correlation"] = _correlation(first, raw, participants, template, settings, context, results)
    return section


def _lobes(first, labels, thresholded, atlas, context, results):
    """Each subject's region table and share of its thresholded map per lobe; the group means
    per lobe for the report."""
    rows = []
    for subject, group, values in zip(first["subject"], labels, thresholded):
        regions = region_table(values, atlas)
        who = dict(context, subject=f"sub-{subject}", group=group)
        results["regions"] += [dict(who, **r) for r in regions.to_dict("records")]
        rows += [dict(who, lobe=r.lobe, share=r.share) for r in lobe_summary(regions).itertuples()]
    results["lobes"] += rows
    table = pd.DataFrame(rows)
    return table.pivot_table(index="lobe", columns="group", values="share", aggfunc="mean",
                             fill_value=0.0).round(3).reset_index().to_dict("split")


def _similarity(rows, first, thresholded, threshold, atlas, mask, context, results):
    """Cosine similarity of ROI vectors (paper 004): between sessions of one subject (intra) and
    between the first sessions of different subjects (inter)."""
    entries = [(s, True, roi_vector(m, atlas)) for s, m in zip(first["subject"], thresholded)]
    later = rows[~rows["first"]]
    entries += [(s, False, roi_vector(threshold(_load([path])[0], mask), atlas))
                for s, path in zip(later["subject"], later["path"])]
    similarity = cosine_similarity(np.stack([vector for _, _, vector in entries]))
    intra, inter = [], []
    for (i, (si, fi, _)), (j, (sj, fj, _)) in itertools.combinations(enumerate(entries), 2):
        if si == sj:
            intra.append(similarity[i, j])
        elif fi and fj:
            inter.append(similarity[i, j])
    row = dict(context, n_intra_pairs=len(intra), n_inter_pairs=len(inter))
    for name, values in (("intra", intra), ("inter", inter)):
        row[f"{name}_mean"] = float(np.mean(values)) if values else None
        row[f"{name}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    results["similarity"].append(row)
    return row


def _correlation(first, raw, participants, template, settings, context, results):
    """Spearman correlation of the mean image within each subject's quantile mask with a score,
    with a two-sided permutation p (paper 001)."""
    masks = parse_threshold(settings.correlate_mask)
    scores = pd.to_numeric(participants[settings.correlate].reindex(first["subject"]), errors="coerce").to_numpy()
    x, y = [], []
    for subject, session, heatmap, score in zip(first["subject"], first["session"], raw, scores):
        if np.isnan(score):
            continue
        path = _correlation_image(settings, subject, session)
        kept = masks(heatmap, template.brain_mask) > 0
        if kept.any():
            image = np.asarray(nib.load(str(path)).dataobj, np.float32)
            if image.shape != heatmap.shape:
                raise NoInputError(f"{path.name} is {image.shape}, not on the template grid {heatmap.shape}")
            x.append(float(image[kept].mean()))
            y.append(float(score))
    if len(x) < 4:
        return None
    rho, p = spearman_permutation(x, y, n_perm=settings.correlate_n_perm, seed=settings.seed)
    row = dict(context, score=settings.correlate, image=settings.correlate_image,
               mask=settings.correlate_mask, n=len(x), rho=rho, p_permutation=p,
               permutations=settings.correlate_n_perm)
    results["correlations"].append(row)
    label = f"mean {settings.correlate_image} in the {settings.correlate_mask} mask"
    return dict(row, figure=figures.correlation_scatter(x, y, label, settings.correlate))


def _write_tsv(path, rows):
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
