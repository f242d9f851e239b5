"""group: per method and class, the subject measures compared between groups, voxel-wise
two-sample tests between groups and coverage tests within groups on the subject-thresholded maps,
cluster tables and lobe summaries from an atlas, ROI-vector similarity within and between
subjects (Thibeau-Sutre et al. 2020), and correlations of an image within each subject's quantile
mask with a clinical score (Lu et al. 2023).

Every session counts. The between-group tests take one map per subject, the mean of its sessions'
max-normalised maps, so a permutation moves a subject with all its sessions (the exchangeability
blocks of randomise's ``-e``). ``--sessions-compare BEFORE,AFTER`` adds the paired within-subject
change between two named sessions, tested with sign flips of whole subjects. The similarity compares
sessions of one subject with each other and first sessions between subjects.

Each analysis returns rows and arrays (``MethodTargetAnalysis``); the TSVs are written from them and
``reports.group`` draws the report.
"""

import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.atomic import atomic_path
from bidsxai.bids import read_participants
from bidsxai.derivatives import MeasuresRow
from bidsxai.errors import NoInputError, UsageError
from bidsxai.explain.quantify import max_normalise
from bidsxai.group.atlas import (
    atlas_option,
    cosine_similarity,
    lobe_summary,
    region_table,
    roi_vector,
)
from bidsxai.group.measures import compare_groups, compare_sessions, subject_measures
from bidsxai.group.permutation import spearman_permutation
from bidsxai.group.threshold import parse_threshold
from bidsxai.logs import event
from bidsxai.models.bundle import read_meta, resolve_bundle
from bidsxai.outputs import (
    group_table_path,
    measures_path,
    preproc_path,
)
from bidsxai.reports.group import write_group_report
from bidsxai.template import load_template
from bidsxai.training.targets import known_classes
from bidsxai.workflows.group_inputs import find_heatmaps, of_one_model, rated
from bidsxai.workflows.group_maps import coverage, paired, two_sample
from bidsxai.workflows.method_comparison import first_sessions_comparison

TABLES = (
    "measures",
    "measure_tests",
    "session_measure_tests",
    "voxelwise",
    "coverage",
    "clusters",
    "regions",
    "lobes",
    "similarity",
    "correlations",
    "correlation_points",
)


@dataclass
class GroupJob:
    """What every method x class analysis of one group-level run shares."""

    settings: object
    participants: pd.DataFrame
    pairs: list
    template: object
    atlas: object
    threshold: object


@dataclass
class Correlation:
    row: dict
    subjects: list
    x: list  # the image's mean within each subject's mask
    y: list  # the clinical score

    def points(self):
        """The rows of group/correlation_points.tsv, from which the report draws its scatter."""
        key = {"method": self.row["method"], "target": self.row["target"]}
        return [
            dict(key, subject=f"sub-{s}", image_mean=x, score_value=y)
            for s, x, y in zip(self.subjects, self.x, self.y)
        ]


@dataclass
class MethodTargetAnalysis:
    """Every group result of one method and target class."""

    method: str
    target: str
    measures: list = field(default_factory=list)  # one row per subject
    measure_tests: list = field(default_factory=list)
    session_measure_tests: list = field(default_factory=list)  # --sessions-compare
    voxelwise: list = field(default_factory=list)  # [VoxelwiseTest]
    session_change: list = field(default_factory=list)  # [VoxelwiseTest] of --sessions-compare
    coverage: list = field(default_factory=list)  # [CoverageTest]
    regions: list = field(default_factory=list)
    lobes: list = field(default_factory=list)
    similarity: dict | None = None
    correlation: Correlation | None = None

    def tables(self):
        """{TSV name: rows} of this analysis."""
        return {
            "measures": self.measures,
            "measure_tests": self.measure_tests,
            "session_measure_tests": self.session_measure_tests,
            "voxelwise": [v.row for v in self.voxelwise + self.session_change],
            "coverage": [c.row for c in self.coverage],
            "clusters": [
                c
                for test in self.voxelwise + self.session_change + self.coverage
                for c in test.clusters
            ],
            "regions": self.regions,
            "lobes": self.lobes,
            "similarity": [self.similarity] if self.similarity else [],
            "correlations": [self.correlation.row] if self.correlation else [],
            "correlation_points": self.correlation.points() if self.correlation else [],
        }


def without_failed_ratings(heatmaps, files, out_dir):
    """The heatmaps of the sessions whose latest QC rating (--exclude-file) is not fail; those
    left out go to ``group/qc_excluded.tsv`` with their reasons, for the report (a run without
    ratings removes an earlier run's table)."""
    path = group_table_path(out_dir, "qc_excluded")
    if not files:
        path.unlink(missing_ok=True)
        return heatmaps
    kept, left_out = rated(heatmaps, files)
    if kept.empty:
        raise NoInputError("--exclude-file: every session with heatmaps is rated fail")
    for key, reason in left_out.items():
        print(f"bidsxai: group: left out {key}: {reason}", file=sys.stderr)
    _write_tsv(path, [{"session": key, "reason": reason} for key, reason in left_out.items()])
    return kept


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
            raise UsageError(
                f"--covariates {column}: no such column in participants.tsv or lesion load in "
                "the measures TSVs"
            )
        values = participants[column].reindex(subjects)
        if values.isna().any():
            missing = ", ".join(f"sub-{s}" for s in values[values.isna()].index)
            raise NoInputError(f"covariate {column} is n/a for {missing}")
        numeric = pd.to_numeric(values, errors="coerce")
        parts.append(
            numeric.to_numpy(float)[:, None]
            if numeric.notna().all()
            else pd.get_dummies(values, drop_first=True).to_numpy(float)
        )
    return np.hstack(parts)


def _load(paths):
    return np.stack([np.asarray(nib.load(str(p)).dataobj, np.float32) for p in paths])


def _correlation_image(settings, subject, session):
    """The preprocessed contrast, or the user's file when --correlate-image is a path pattern
    with {subject} (and {session}), e.g. a quantitative map already on the template grid."""
    spec = settings.correlate_image
    if "{subject}" in spec:
        path = Path(spec.format(subject=subject, session=session))
    else:
        path = preproc_path(
            settings.output_dir,
            subject,
            session or None,
            spec,
            settings.resolution,
            settings.output_space,
        )
    if not path.is_file():
        raise NoInputError(
            f"--correlate-image {spec}: {path} not found; give a preprocessed contrast "
            "(T1w, T2w, FLAIR) or a path pattern with {subject}"
        )
    return path


def _check_inputs(settings, participants, heatmaps):
    """Refuse covariates, correlation images and session pairs that are missing before anything
    is written."""
    covariate_matrix(participants, list(heatmaps["subject"].unique()), settings.covariates)
    if settings.correlate:
        for subject, session in set(zip(heatmaps["subject"], heatmaps["session"])):
            _correlation_image(settings, subject, session)
    if settings.sessions_compare:
        found = sorted({s for s in heatmaps["session"] if s})
        missing = [s for s in settings.sessions_compare if s not in found]
        if missing:
            raise UsageError(
                f"--sessions-compare: no heatmaps of ses-{missing[0]} (sessions with heatmaps: "
                f"{', '.join('ses-' + s for s in found) or 'none'})"
            )
        both = heatmaps.groupby("subject")["session"].agg(set)
        paired = sum(set(settings.sessions_compare) <= sessions for sessions in both)
        if paired < 2:
            raise NoInputError(
                f"--sessions-compare {','.join(settings.sessions_compare)}: {paired} subject(s) "
                "have heatmaps of both sessions; a paired test needs at least 2"
            )


def with_lesion_load(participants, out_dir, heatmaps):
    """participants.tsv with each subject's lesion load (``<label>_volume_mm3``, ``<label>_count``
    of the measures TSVs, the mean over its sessions) added as columns, so that --covariates can
    name them; a column participants.tsv already has is kept as it is."""
    rows = []
    for subject, session in set(zip(heatmaps["subject"], heatmaps["session"])):
        path = measures_path(out_dir, subject, session or None)
        if path.is_file():
            first = MeasuresRow.read_tsv(path)[0]  # every row has the session's lesion load
            rows.append(dict(first.lesion_columns(), subject=subject))
    if not rows or len(rows[0]) == 1:
        return participants
    loads = pd.DataFrame(rows).groupby("subject").mean()
    return participants.join(loads[[c for c in loads if c not in participants.columns]])


def _subject_groups(settings, participants):
    """Each subject's group: the bundle's classes where --model defines this target (a threshold
    or bins make classes of a numeric column), else the column's values."""
    if settings.model:
        meta = read_meta(resolve_bundle(settings.model, settings.output_dir))
        if meta.get("target") == settings.target:
            return pd.Series(known_classes(participants, meta), dtype=object)
    return participants[settings.target]


def run_group(settings, subjects=None, sessions=None):
    """Every analysis of every method and class; writes the TSVs, stat maps and the report and
    returns the analyses. ``subjects`` and ``sessions`` (labels) select heatmaps."""
    out = Path(settings.output_dir)
    participants = read_participants(settings.bids_dir)
    for flag, column in (("--target", settings.target), ("--correlate", settings.correlate)):
        if column and column not in participants.columns:
            columns = ", ".join(c for c in participants.columns if c != "participant_id")
            raise UsageError(
                f"{flag} {column}: no such column in participants.tsv (its columns: {columns})"
            )
    template = load_template(settings.resolution, settings.output_space)
    heatmaps = of_one_model(find_heatmaps(out, template, subjects, sessions), settings.model, out)
    heatmaps = without_failed_ratings(heatmaps, settings.exclude_file, out)
    heatmaps["group"] = heatmaps["subject"].map(_subject_groups(settings, participants))
    heatmaps = heatmaps.dropna(subset=["group"])
    participants = with_lesion_load(participants, out, heatmaps)
    pairs = group_pairs(sorted(heatmaps["group"].unique()), settings.groups)
    _check_inputs(settings, participants, heatmaps)
    atlas = atlas_option(settings.atlas, template)
    if settings.atlas == "auto":  # the run's record says what auto meant, for --reports-only
        dataclasses.replace(settings, atlas="aal" if atlas else "none").save()
    settings = dataclasses.replace(settings, atlas=atlas.name if atlas else None)  # as used
    job = GroupJob(
        settings, participants, pairs, template, atlas, parse_threshold(settings.threshold)
    )
    analyses = [
        analyse(rows, method, target, job)
        for (method, target), rows in heatmaps.groupby(["method", "target"])
    ]
    for name in TABLES:
        _write_tsv(group_table_path(out, name), [r for a in analyses for r in a.tables()[name]])
    comparison = first_sessions_comparison(out, heatmaps, participants, settings, template)
    if comparison is not None:
        _write_tsv(group_table_path(out, "method_comparison"), comparison[0].to_dict("records"))
        if comparison[4] is not None:
            _write_tsv(group_table_path(out, "method_pairs"), comparison[4].to_dict("records"))
    write_group_report(out, settings, template, heatmaps["model"].iloc[0], heatmaps, comparison)
    return analyses


def analyse(rows, method, target, job):
    """Every group analysis of one method and class."""
    start = time.monotonic()
    event("analysis_started", method=method, target=target, subjects=rows["subject"].nunique())
    result = _analyse(rows, method, target, job)
    event("analysis_finished", method=method, target=target, seconds=time.monotonic() - start)
    return result


def _analyse(rows, method, target, job):
    mask = job.template.brain_mask
    rows = rows.reset_index(drop=True)
    sessions = _load(rows["path"])
    if sessions.shape[1:] != mask.shape:
        raise NoInputError(
            f"heatmaps are {sessions.shape[1:]} but the {job.settings.resolution:g} mm "
            f"template is {mask.shape}; pass the --resolution they were made at"
        )
    sessions = np.stack([max_normalise(m, mask) for m in sessions])
    subjects, raw = subject_summaries(rows, sessions)
    thresholded = np.stack([job.threshold(m, mask) for m in raw])
    labels = subjects["group"].to_numpy()
    key = {"method": method, "target": target}
    analysis = MethodTargetAnalysis(method, target)
    analysis.measures, analysis.measure_tests = _measures(subjects, labels, raw, key, job)
    analysis.voxelwise = _two_sample_tests(subjects, labels, thresholded, key, job)
    analysis.coverage = _coverage_tests(labels, thresholded, key, job)
    if job.settings.sessions_compare:
        analysis.session_measure_tests, analysis.session_change = _session_change(
            rows, sessions, key, job
        )
    if job.atlas is not None:
        analysis.regions, analysis.lobes = _lobes(subjects, labels, thresholded, job.atlas, key)
        analysis.similarity = _similarity(rows, sessions, job, key)
    if job.settings.correlate:
        analysis.correlation = _correlation(subjects, raw, key, job)
    return analysis


def subject_summaries(rows, sessions):
    """(one row per subject: subject, group, its sessions; the mean of its sessions'
    max-normalised maps). The between-group tests take one map per subject, so relabelling
    subjects moves each with all its sessions."""
    subjects, maps = [], []
    for subject, part in rows.groupby("subject", sort=True):
        subjects.append(
            {"subject": subject, "group": part["group"].iloc[0], "sessions": list(part["session"])}
        )
        maps.append(sessions[part.index].mean(0))
    return pd.DataFrame(subjects), np.stack(maps)


def _session_change(rows, sessions, key, job):
    """The paired change from one named session to another (--sessions-compare): the subject
    measures compared by paired tests, and the thresholded maps voxel-wise by sign flips."""
    before, after = job.settings.sessions_compare
    mask = job.template.brain_mask
    index = {(r.subject, r.session): i for i, r in zip(rows.index, rows.itertuples())}
    both = sorted(s for s in set(rows["subject"]) if {(s, before), (s, after)} <= index.keys())
    if len(both) < 2:
        return [], []
    pairs = [(sessions[index[s, before]], sessions[index[s, after]]) for s in both]
    measured = [
        (subject_measures(a, mask, job.atlas), subject_measures(b, mask, job.atlas))
        for a, b in pairs
    ]
    tests = [
        dict(
            key,
            measure=name,
            session_before=before,
            session_after=after,
            **compare_sessions([m[0][name] for m in measured], [m[1][name] for m in measured]),
        )
        for name in measured[0][0]
    ]
    thresholded = np.stack([[job.threshold(m, mask) for m in pair] for pair in pairs])
    change = paired(
        thresholded[:, 0],
        thresholded[:, 1],
        job.template,
        job.atlas,
        _group_dir(job),
        dict(key, session_before=before, session_after=after),
        job.settings,
    )
    return tests, [change]


def _measures(subjects, labels, raw, key, job):
    """Each subject's measures, and their comparison between every pair of groups."""
    mask, pairs = job.template.brain_mask, job.pairs
    measures = pd.DataFrame(
        [
            dict(
                key,
                subject=f"sub-{s}",
                group=g,
                n_sessions=len(sessions),
                **subject_measures(m, mask, job.atlas),
            )
            for s, g, sessions, m in zip(subjects["subject"], labels, subjects["sessions"], raw)
        ]
    )
    tests = []
    fixed = ("method", "target", "subject", "group", "n_sessions")
    for name in [c for c in measures.columns if c not in fixed]:
        values = measures[name].to_numpy()
        tests += [
            dict(
                key,
                measure=name,
                group_a=a,
                group_b=b,
                **compare_groups(values[labels == a], values[labels == b]),
            )
            for a, b in pairs
            if (labels == a).sum() > 1 and (labels == b).sum() > 1
        ]
    return measures.to_dict("records"), tests


def _two_sample_tests(subjects, labels, thresholded, key, job):
    tests = []
    for a, b in job.pairs:
        in_a, in_b = labels == a, labels == b
        if in_a.sum() < 2 or in_b.sum() < 2:
            continue
        names = list(subjects["subject"][in_a]) + list(subjects["subject"][in_b])
        covariates = covariate_matrix(job.participants, names, job.settings.covariates)
        tests.append(
            two_sample(
                thresholded[in_a],
                thresholded[in_b],
                covariates,
                job.template,
                job.atlas,
                _group_dir(job),
                dict(key, group_a=a, group_b=b),
                job.settings,
            )
        )
    return tests


def _coverage_tests(labels, thresholded, key, job):
    return [
        coverage(
            thresholded[labels == g],
            job.template,
            job.atlas,
            _group_dir(job),
            dict(key, group=g),
            job.settings,
        )
        for g in sorted(set(labels))
        if (labels == g).sum() >= 2
    ]


def _group_dir(job):
    return Path(job.settings.output_dir) / "group"


def _lobes(subjects, labels, thresholded, atlas, key):
    """(each subject's region table rows, each subject's share of its thresholded map per lobe)."""
    regions, lobes = [], []
    for subject, group, values in zip(subjects["subject"], labels, thresholded):
        table = region_table(values, atlas)
        who = dict(key, subject=f"sub-{subject}", group=group)
        regions += [dict(who, **r) for r in table.to_dict("records")]
        lobes += [dict(who, lobe=r.lobe, share=r.share) for r in lobe_summary(table).itertuples()]
    return regions, lobes


def _similarity(rows, sessions, job, key):
    """Cosine similarity of ROI vectors (Thibeau-Sutre et al. 2020): between sessions of one
    subject (intra) and between the first sessions of different subjects (inter)."""
    atlas, mask = job.atlas, job.template.brain_mask
    entries = [
        (s, first, roi_vector(job.threshold(m, mask), atlas))
        for s, first, m in zip(rows["subject"], rows["first"], sessions)
    ]
    similarity = cosine_similarity(np.stack([vector for _, _, vector in entries]))
    intra, inter = [], []
    for (i, (si, fi, _)), (j, (sj, fj, _)) in itertools.combinations(enumerate(entries), 2):
        if si == sj:
            intra.append(similarity[i, j])
        elif fi and fj:
            inter.append(similarity[i, j])
    row = dict(key, n_intra_pairs=len(intra), n_inter_pairs=len(inter))
    for name, values in (("intra", intra), ("inter", inter)):
        row[f"{name}_mean"] = float(np.mean(values)) if values else None
        row[f"{name}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return row


def _correlation(subjects, raw, key, job):
    """Spearman correlation of the mean image within each subject's quantile mask with a score,
    with a two-sided permutation p (Lu et al. 2023). The mask is taken from the subject's
    summary map; the image's mean within it is averaged over the subject's sessions."""
    settings, template = job.settings, job.template
    masks = parse_threshold(settings.correlate_mask)
    scores = pd.to_numeric(
        job.participants[settings.correlate].reindex(subjects["subject"]), errors="coerce"
    ).to_numpy()
    who, x, y = [], [], []
    for subject, sessions, heatmap, score in zip(
        subjects["subject"], subjects["sessions"], raw, scores
    ):
        kept = masks(heatmap, template.brain_mask) > 0
        if np.isnan(score) or not kept.any():
            continue
        means = []
        for session in sessions:
            path = _correlation_image(settings, subject, session)
            image = np.asarray(nib.load(str(path)).dataobj, np.float32)
            if image.shape != heatmap.shape:
                raise NoInputError(
                    f"{path.name} is {image.shape}, not on the template grid {heatmap.shape}"
                )
            means.append(float(image[kept].mean()))
        who.append(subject)
        x.append(float(np.mean(means)))
        y.append(float(score))
    if len(x) < 4:
        return None
    rho, p = spearman_permutation(x, y, n_perm=settings.correlate_n_perm, seed=settings.seed)
    row = dict(
        key,
        score=settings.correlate,
        image=settings.correlate_image,
        mask=settings.correlate_mask,
        n=len(x),
        rho=rho,
        p_permutation=p,
        permutations=settings.correlate_n_perm,
    )
    return Correlation(row, who, x, y)


def _write_tsv(path, rows):
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
