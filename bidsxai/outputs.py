"""Every file name bidsxai writes or reads back, and the parser of those names.

Why one module: each stage finds the previous stage's files by name, so a name built in two places
drifts. Nothing outside this module formats an entity string. It imports no stage's code (no ANTs,
no torch), so training and the reports can name files without loading the preprocessing.
"""

import re
from dataclasses import dataclass
from pathlib import Path

# Entity order of BIDS, with bidsxai's own `method` and `target` last.
ENTITY_ORDER = (
    "sub",
    "ses",
    "from",
    "to",
    "mode",
    "space",
    "res",
    "label",
    "desc",
    "stat",
    "method",
    "target",
)
# Group maps lead with what was tested (method, class), then the comparison and the statistic.
GROUP_ORDER = ("space", "method", "target", "desc", "stat", "corr")

# The outputs that BIDS-Derivatives has no name for yet, kept out of the validator's way.
BIDSIGNORE = """\
# bidsxai outputs that BIDS-Derivatives has no name for yet
*.html
*_heatmap.nii.gz
*_heatmap.json
*_measures.tsv
*_evaluation.tsv
*_evaluation.json
*_slices.tsv
*_measures.json
*_xfm.mat
*_xfm.h5
*_xfm.nii.gz
*_xfm.json
/logs
/models
/group
/cache
"""


def resolution_label(resolution):
    """The ``res-`` label of a resolution: 2.0 -> '2', 1.5 -> '1p5'."""
    return f"{float(resolution):g}".replace(".", "p")


def label(name):
    """A BIDS-safe label ('RRMS' stays, 'EDSS>=5' becomes 'EDSS5'); never empty."""
    return re.sub(r"[^A-Za-z0-9]", "", str(name)) or "class"


def label_collisions(names):
    """The groups of names that share one label (e.g. 'MS+' and 'MS-' both become 'MS'): their
    files would overwrite each other, so such a set of classes is refused."""
    by_label = {}
    for name in names:
        by_label.setdefault(label(name), []).append(str(name))
    return [group for group in by_label.values() if len(group) > 1]


def describe_collision(group):
    """ "classes 'MS+' and 'MS-' share the file label 'MS'", for error messages."""
    names = " and ".join(f"'{n}'" for n in group)
    return f"classes {names} share the file label '{label(group[0])}'"


def entity_name(entities, suffix, extension, order=ENTITY_ORDER):
    """A BIDS file name from entities in BIDS order: entity_name({'sub': '01'}, 'T1w',
    '.nii.gz')."""
    unknown = set(entities) - set(order)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    parts = [f"{k}-{entities[k]}" for k in order if entities.get(k) not in (None, "")]
    return "_".join(parts + [suffix]) + extension


def session_key(subject, session):
    """'sub-01' or 'sub-01_ses-02': the prefix of a session's files, also its name in logs."""
    return entity_name({"sub": subject, "ses": session}, "", "").rstrip("_")


def input_cache_path(cache_dir, subject, session, key):
    """``cache_dir/sub-X[_ses-Y]_<key>.npy``: a session's model inputs in train's float16 cache,
    named by what made them (``key``), so that changed inputs are cached anew."""
    return Path(cache_dir) / f"{session_key(subject, session)}_{key}.npy"


def bids_path(root, subject, session, suffix, extension, datatype="anat", **entities):
    """``root/sub-X[/ses-Y]/datatype/<name>``: the layout of raw data and of derivatives alike."""
    folder = Path(root) / f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
    return (
        folder
        / datatype
        / entity_name(dict(sub=subject, ses=session, **entities), suffix, extension)
    )


def file_subject(path):
    """The subject label of a BIDS file name ('sub-03_T1w.nii.gz' -> '03'), or None."""
    match = re.match(r"sub-([A-Za-z0-9]+)_", Path(str(path)).name)
    return match.group(1) if match else None


def sidecar_path(image_path):
    """The JSON sidecar beside an image: x.nii.gz -> x.json."""
    name = Path(image_path).name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
    return Path(image_path).with_name(stem + ".json")


# Participant level: preprocessing.


def preproc_path(out_dir, subject, session, contrast, resolution, space):
    return bids_path(
        out_dir,
        subject,
        session,
        contrast,
        ".nii.gz",
        space=space,
        res=resolution_label(resolution),
        desc="preproc",
    )


# Model inputs besides the preprocessed contrasts: tissue maps of --tissue-maps, as (label, desc).
TISSUE_INPUTS = {
    "GM": ("GM", None),
    "WM": ("WM", None),
    "CSF": ("CSF", None),
    "GMmod": ("GM", "modulated"),  # GM modulated by the Jacobian determinant
}


def probseg_path(out_dir, subject, session, tissue, resolution, space, desc=None):
    """A tissue probability map on the template grid, or with ``space`` None in T1w space."""
    return bids_path(
        out_dir,
        subject,
        session,
        "probseg",
        ".nii.gz",
        space=space,
        res=resolution_label(resolution) if space else None,
        label=tissue,
        desc=desc,
    )


def model_input_path(out_dir, subject, session, name, resolution, space):
    """The template-grid image a model reads as its ``name`` channel: a preprocessed contrast
    (T1w, T2w, FLAIR) or a tissue map (GM, WM, CSF, GMmod)."""
    if name in TISSUE_INPUTS:
        tissue, desc = TISSUE_INPUTS[name]
        return probseg_path(out_dir, subject, session, tissue, resolution, space, desc)
    return preproc_path(out_dir, subject, session, name, resolution, space)


def brain_mask_path(out_dir, subject, session, resolution, space):
    """The brain mask on the template grid, or with ``space`` None in the subject's T1w space."""
    return bids_path(
        out_dir,
        subject,
        session,
        "mask",
        ".nii.gz",
        space=space,
        res=resolution_label(resolution) if space else None,
        desc="brain",
    )


def xfm_path(out_dir, subject, session, source, target, desc=None, composite=False):
    """An ANTs transform: the linear one (.mat), with ``desc='warp'`` the displacement field of
    a nonlinear registration (.nii.gz), applied before the linear one, or with ``composite`` the
    whole chain in one ANTs composite file (.h5), as sMRIPrep and fMRIPrep write it."""
    extension = ".nii.gz" if desc else ".h5" if composite else ".mat"
    return bids_path(
        out_dir,
        subject,
        session,
        "xfm",
        extension,
        **{"from": source},
        to=target,
        mode="image",
        desc=desc,
    )


def label_mask_path(root, subject, session, name, resolution=None, space=None):
    """A reference mask such as ``label-lesion_mask``: native space without ``space``."""
    res = resolution_label(resolution) if space and resolution is not None else None
    return bids_path(root, subject, session, "mask", ".nii.gz", space=space, res=res, label=name)


# Participant level: explanations.


def heatmap_path(out_dir, subject, session, method, target, resolution, space, desc=None):
    """One method's map for one target class; ``desc='layers'`` holds every layer's map (4D)."""
    return bids_path(
        out_dir,
        subject,
        session,
        "heatmap",
        ".nii.gz",
        space=space,
        res=resolution_label(resolution),
        desc=desc,
        method=method,
        target=label(target),
    )


def sessions_tsv_path(root, subject):
    return Path(root) / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"


def measures_path(out_dir, subject, session):
    return bids_path(out_dir, subject, session, "measures", ".tsv")


def slices_path(out_dir, subject, session):
    return bids_path(out_dir, subject, session, "slices", ".tsv")


def evaluation_path(out_dir, subject, session):
    return bids_path(out_dir, subject, session, "evaluation", ".tsv")


@dataclass(frozen=True)
class LabelMask:
    """A ``label-<name>_mask`` found in a derivatives dataset; ``space`` is None in native space."""

    label: str
    space: str | None
    res: str | None
    path: Path


def find_label_masks(root, subject, session):
    """Every ``label-<name>_mask`` image of a session under ``root``, in any space, sorted."""
    folder = bids_path(root, subject, session, "mask", ".nii.gz").parent
    prefix = session_key(subject, session) + "_"
    found = []
    for path in sorted(folder.glob(prefix + "*label-*_mask.nii.gz")):
        entities = dict(
            part.split("-", 1) for part in path.name[len(prefix) :].split("_")[:-1] if "-" in part
        )
        found.append(LabelMask(entities["label"], entities.get("space"), entities.get("res"), path))
    return found


def subject_report_path(out_dir, subject):
    return Path(out_dir) / f"sub-{subject}.html"


_HEATMAP = re.compile(
    r"sub-(?P<subject>[A-Za-z0-9]+)(_ses-(?P<session>[A-Za-z0-9]+))?_space-(?P<space>[A-Za-z0-9]+)"
    r"_res-(?P<res>[A-Za-z0-9]+)_method-(?P<method>[a-z0-9]+)_target-(?P<target>[A-Za-z0-9]+)"
    r"_heatmap\.nii\.gz$"
)


def parse_heatmap(path):
    """{subject, session, space, res, method, target} of a heatmap written by ``heatmap_path``
    (``desc-layers`` maps excluded), or None for any other file."""
    match = _HEATMAP.match(Path(path).name)
    return None if match is None else {k: v or "" for k, v in match.groupdict().items()}


def find_heatmaps(out_dir):
    """(path, parsed entities) of every heatmap under OUTPUT_DIR, in sorted order."""
    found = ((p, parse_heatmap(p)) for p in sorted(Path(out_dir).glob("sub-*/**/*_heatmap.nii.gz")))
    return [(p, entities) for p, entities in found if entities is not None]


_PREPROC_T1W = re.compile(
    r"sub-[A-Za-z0-9]+(_ses-[A-Za-z0-9]+)?_space-(?P<space>[A-Za-z0-9]+)_res-(?P<res>[A-Za-z0-9]+)"
    r"_desc-preproc_T1w\.nii\.gz$"
)


def resolution_of(res_label):
    """The resolution in mm of a ``res-`` label: '1p5' -> 1.5 (``resolution_label`` undone)."""
    return float(res_label.replace("p", "."))


def output_grids(out_dir):
    """The (space, resolution in mm) grids that OUTPUT_DIR holds heatmaps or preprocessed T1w
    images on, sorted."""
    grids = {(e["space"], e["res"]) for _, e in find_heatmaps(out_dir)}
    for path in Path(out_dir).glob("sub-*/**/anat/*_desc-preproc_T1w.nii.gz"):
        match = _PREPROC_T1W.match(path.name)
        if match:
            grids.add((match["space"], match["res"]))
    return sorted((space, resolution_of(res)) for space, res in grids)


# The --derivatives dataset of reference masks (``--derivatives masks=PATH``).
MASK_DATASET = "masks"
# The --derivatives datasets of anatomical preprocessing to reuse (``--derivatives smriprep=PATH``).
ANATOMY_DATASETS = ("smriprep", "fmriprep")


@dataclass(frozen=True)
class AnatomyFiles:
    """sMRIPrep's (or fMRIPrep's) anatomical outputs for a session, in its T1w space: the
    bias-corrected T1w, its brain mask and the composite transform to ``space`` (None where there
    is none); ``spaces`` are the templates it has transforms to."""

    t1w: Path
    brain_mask: Path
    transform: Path | None
    spaces: tuple
    tissue: dict  # {"GM": path, ...} of the label-<tissue>_probseg maps it has


def find_anatomy(root, subject, session, space):
    """The ``AnatomyFiles`` of a session in an sMRIPrep/fMRIPrep dataset, or None where it has no
    ``desc-preproc_T1w`` of the subject. Its own session's anatomy first, then the subject's
    (sMRIPrep's across sessions), then the one session that has anatomy (fMRIPrep writes it
    under the session the T1w came from)."""
    subject_folder = Path(root) / f"sub-{subject}"
    found = sorted(
        p
        for p in subject_folder.glob("**/anat/*_desc-preproc_T1w.nii.gz")
        if "_space-" not in p.name
    )
    own = [p.name for p in found]
    preferred = [
        entity_name({"sub": subject, "ses": session, "desc": "preproc"}, "T1w", ".nii.gz"),
        entity_name({"sub": subject, "desc": "preproc"}, "T1w", ".nii.gz"),
    ]
    names = [n for n in preferred if n in own] or (own if len(own) == 1 else [])
    if not names:
        return None
    t1w = found[own.index(names[0])]
    prefix = t1w.name[: -len("desc-preproc_T1w.nii.gz")]
    spaces = sorted(
        p.name[len(prefix) :].split("_")[1].removeprefix("to-")
        for p in t1w.parent.glob(prefix + "from-T1w_to-*_mode-image_xfm.h5")
    )
    transform = t1w.with_name(f"{prefix}from-T1w_to-{space}_mode-image_xfm.h5")
    tissue = {t: t1w.with_name(f"{prefix}label-{t}_probseg.nii.gz") for t in ("GM", "WM", "CSF")}
    return AnatomyFiles(
        t1w=t1w,
        brain_mask=t1w.with_name(prefix + "desc-brain_mask.nii.gz"),
        transform=transform if transform.is_file() else None,
        spaces=tuple(spaces),
        tissue={t: path for t, path in tissue.items() if path.is_file()},
    )


# TemplateFlow's layout, read back from its home.


def templateflow_folder(home, space):
    """A template's folder in a TemplateFlow home."""
    return Path(home) / f"tpl-{space}"


def templateflow_files(home, space, kind):
    """{resolution label: path} of a template's non-empty ``kind`` images (``T1w``,
    ``desc-brain_mask``, ``label-GM_probseg``, ...) in a TemplateFlow home; TemplateFlow marks the
    files it has not downloaded as empty placeholders."""
    folder = templateflow_folder(home, space)
    pattern = re.compile(rf"tpl-{re.escape(space)}_res-(\d+)_{re.escape(kind)}\.nii\.gz")
    found = {}
    for path in folder.glob(f"tpl-{space}_res-*.nii.gz"):
        match = pattern.fullmatch(path.name)
        if match and path.stat().st_size:
            found[match.group(1)] = path
    return found


def templateflow_path(home, space, res, kind):
    """Where TemplateFlow keeps a template's ``kind`` image at resolution label ``res``."""
    return templateflow_folder(home, space) / f"tpl-{space}_res-{res}_{kind}.nii.gz"


def template_cache_path(cache_dir, space, resolution, digest):
    """A template resampled to ``resolution``, kept in ``cache_dir`` under the ``digest`` of
    what it was computed from (``template``)."""
    return Path(cache_dir) / f"tpl-{space}_res-{resolution_label(resolution)}_{digest}.npz"


# Group level.


def group_statmap_path(group_dir, method, target, comparison, stat, space, correction=None):
    """A voxel-wise group map: ``comparison`` is ('HC', 'RRMS') for a two-sample test,
    ('RRMS',) for the coverage test within one group, or ('ses-01', 'ses-02') for the paired
    change from session 01 to 02 (``desc-ses02minus01``)."""
    if len(comparison) == 1:
        desc = f"{label(comparison[0])}coverage"
    elif all(str(c).startswith("ses-") for c in comparison):
        before, after = (label(c.removeprefix("ses-")) for c in comparison)
        desc = f"ses{after}minus{before}"
    else:
        desc = "vs".join(label(g) for g in comparison)
    entities = {
        "space": space,
        "method": method,
        "target": label(target),
        "desc": desc,
        "stat": stat,
        "corr": correction,
    }
    return Path(group_dir) / entity_name(entities, "statmap", ".nii.gz", GROUP_ORDER)


def group_figure_path(statmap_path):
    """Where a group run keeps the drawn views of a stat map for ``--reports-only`` to reuse:
    ``group/figures/`` with the map's name, ``_views.json`` for ``_statmap.nii.gz``."""
    statmap_path = Path(statmap_path)
    name = statmap_path.name.removesuffix("_statmap.nii.gz") + "_views.json"
    return statmap_path.parent / "figures" / name


def group_mosaic_path(group_dir, method, target, space):
    """Where a group run keeps the cohort mosaic of one method and class (``reports.mosaic``)
    for ``--reports-only`` to reuse, beside the stat maps' views."""
    entities = {"space": space, "method": method, "target": label(target)}
    return Path(group_dir) / "figures" / entity_name(entities, "mosaic", ".json", GROUP_ORDER)


def group_table_path(out_dir, name):
    return Path(out_dir) / "group" / f"{name}.tsv"


def bundle_dir(out_dir, name):
    return Path(out_dir) / "models" / str(name)


def training_checkpoint_dir(out_dir, name):
    """``OUTPUT_DIR/cache/training/<bundle>``: the checkpoints of a training run in progress."""
    return Path(out_dir) / "cache" / "training" / str(name)


def member_name(repeat, fold, run=1):
    """A bundle member: ``repeat-1_fold-2``, with ``_run-3`` for the third training run of that
    fold (``train --seeds 3``: the same data, another seed)."""
    return f"repeat-{repeat}_fold-{fold}" + (f"_run-{run}" if run > 1 else "")


_MEMBER = re.compile(r"repeat-(?P<repeat>\d+)_fold-(?P<fold>\d+)(_run-(?P<run>\d+))?$")


ENSEMBLE = "ensemble"  # the final member's name when the fold models are averaged (models.ensemble)


def ensemble_members(names):
    """The members the fold models' ensemble averages, in fold order: the fold models of repeat 1
    and run 1 (those the out-of-fold metrics come from)."""
    chosen = [n for n in names if (parse_member(n) or (0, 0, 0))[::2] == (1, 1)]
    return sorted(chosen, key=lambda n: parse_member(n)[1])


def parse_member(name):
    """(repeat, fold, run) of a member name from ``member_name``; None for any other name."""
    match = _MEMBER.match(str(name))
    if match is None:
        return None
    return int(match["repeat"]), int(match["fold"]), int(match["run"] or 1)


def bundle_meta_path(out_dir, name):
    return bundle_dir(out_dir, name) / "model.json"


def group_report_path(out_dir):
    return Path(out_dir) / "group.html"


# Run records.


def settings_log_path(out_dir, level, run_id):
    return Path(out_dir) / "logs" / f"{level}-{run_id}.toml"


def run_log_path(out_dir, level, run_id):
    return Path(out_dir) / "logs" / f"{level}-{run_id}.log"


def crash_dir(out_dir, run_id):
    """Where one run's tracebacks of unexpected failures go, one file per session."""
    return Path(out_dir) / "logs" / f"crash-{run_id}"


def citation_paths(out_dir):
    return Path(out_dir) / "logs" / "CITATION.md", Path(out_dir) / "logs" / "CITATION.bib"
