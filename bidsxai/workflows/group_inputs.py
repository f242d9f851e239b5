"""The heatmaps a group analysis takes: those on the run's grid, made by one model, of the
sessions whose QC rating is not fail. The group run and the rewrite of its report
(``group --reports-only``) select them alike."""

import pandas as pd

from bidsxai.derivatives import HeatmapSidecar
from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.bundle import resolve_bundle
from bidsxai.outputs import find_heatmaps as heatmap_files
from bidsxai.outputs import resolution_label, session_key, sidecar_path
from bidsxai.qc_ratings import failed_sessions


def find_heatmaps(out_dir, template, subjects=None, sessions=None):
    """DataFrame of the heatmap files on ``template``'s grid (subject, session, method, target,
    path, the model that made it, first), where ``first`` marks each subject's first session;
    ``subjects`` and ``sessions`` (labels) select."""
    found = heatmap_files(out_dir)
    res = resolution_label(template.resolution)
    rows = [
        {
            "subject": e["subject"],
            "session": e["session"],
            "method": e["method"],
            "target": e["target"],
            "path": path,
            "model": _made_by(path),
        }
        for path, e in found
        if (not subjects or e["subject"] in subjects)
        and (not sessions or e["session"] in sessions)
        and (e["space"], e["res"]) == (template.space, res)
    ]
    if not rows:
        grids = sorted({f"{e['space']} at res {e['res']}" for _, e in found})
        elsewhere = f" (there are heatmaps in {', '.join(grids)})" if grids else ""
        raise NoInputError(
            f"no heatmaps in {out_dir} in {template.space} at res {res}{elsewhere}; run the "
            "participant level with --model first, or give the --output-spaces and --resolution "
            "it ran with"
        )
    table = pd.DataFrame(rows).sort_values(["subject", "session"]).reset_index(drop=True)
    table["first"] = table["session"] == table.groupby("subject")["session"].transform("min")
    return table


def _made_by(path):
    """The model a heatmap's sidecar names; None for a map without a sidecar (made elsewhere)."""
    sidecar = sidecar_path(path)
    return HeatmapSidecar.from_json(sidecar).provenance.bundle if sidecar.is_file() else None


def of_one_model(heatmaps, model, out_dir):
    """The heatmaps that one model made: ``model`` (--model, a bundle name or path) where given,
    else the only model that made any. Maps of two models never meet in one analysis: a session
    explained again by another model overwrites its own files, and the rest keep the first's."""
    made_by = heatmaps["model"].fillna("(unknown)")
    if model:
        name = resolve_bundle(model, out_dir).name
        kept = heatmaps[made_by == name]
        if kept.empty:
            raise NoInputError(
                f"--model {model}: none of the heatmaps in {out_dir} was made by {name} (they "
                f"were made by {', '.join(sorted(made_by.unique()))}); run the participant level "
                f"with --model {model} first"
            )
        return kept.reset_index(drop=True)
    counts = made_by.value_counts()
    if len(counts) > 1:
        listed = ", ".join(f"{name} ({n} maps)" for name, n in sorted(counts.items()))
        raise UsageError(
            f"the heatmaps in {out_dir} were made by several models: {listed}; give --model to "
            "choose one"
        )
    return heatmaps


def rated(heatmaps, files):
    """(the heatmaps of the sessions whose latest QC rating in ``files`` is not fail, {session
    key: reason} of those left out)."""
    failed = failed_sessions(files) if files else {}
    keys = [session_key(s, ses or None) for s, ses in zip(heatmaps["subject"], heatmaps["session"])]
    kept = heatmaps[[key not in failed for key in keys]].reset_index(drop=True)
    return kept, {key: failed[key] for key in sorted(set(keys)) if key in failed}
