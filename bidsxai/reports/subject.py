"""The per-subject HTML report, built from the files on disk (so --reports-only can redo it)."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.bids import read_participants, sidecar_path
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report
from bidsxai.template import SPACE, load_template
from bidsxai.workflows.classify import (
    heatmap_path,
    layers_path,
    measures_path,
    slices_path,
)


def _load(path):
    return np.asarray(nib.load(str(path)).dataobj, np.float32)


def session_context(settings, session):
    out = Path(settings.output_dir)
    template = load_template(settings.resolution)
    mask = template.brain_mask
    t1 = _load(preproc_path(out, session.subject, session.session, "T1w", settings.resolution))
    qc = {}
    for contrast in session.files:
        path = preproc_path(out, session.subject, session.session, contrast, settings.resolution)
        if path.is_file():
            image = t1 if contrast == "T1w" else _load(path)
            qc[contrast] = figures.registration_mosaic(image, template.t1w, mask)
    heatmaps, prediction = [], None
    measures = measures_path(out, session)
    if measures.is_file():
        table = pd.read_csv(measures, sep="\t")
        for row in table.itertuples():
            path = heatmap_path(out, session, row.method, row.target, settings.resolution)
            if not path.is_file():
                continue
            sidecar = json.loads(sidecar_path(path).read_text())
            heatmaps.append({"method": row.method, "target": row.target, "p95": row.p95,
                             "mirror_r": getattr(row, "mirror_r", float("nan")),
                             "figure": figures.heatmap_mosaic(t1, _load(path), mask)})
            prediction = {"predicted": sidecar["PredictedClass"],
                          "probabilities": sidecar["PredictedProbabilities"],
                          "model": sidecar["Model"], "sha256": sidecar["ModelSha256"],
                          "split": sidecar["SplitAssignment"], "member": sidecar.get("ModelMember", ""),
                          "choice": sidecar.get("ModelChoice", ""), "mc": sidecar.get("MCDropout"),
                          "attention": sidecar.get("AttentionWeights"),
                          "layer": sidecar.get("Layer", "")}
    layers = None
    if prediction:
        path = layers_path(out, session, "gradcam", prediction["predicted"], settings.resolution)
        if path.is_file():
            names = json.loads(sidecar_path(path).read_text())["Layers"]
            layers = figures.layer_strip(t1, _load(path), mask, names)
    slices = None
    if slices_path(out, session).is_file():
        table = pd.read_csv(slices_path(out, session), sep="\t")
        slices = {"n": len(table), "rows": list(zip(table["slice"], table["predicted"]))}
    return {"key": session.key, "qc_figures": qc, "heatmaps": heatmaps, "prediction": prediction,
            "layers": layers, "slices": slices,
            "inputs": [str(p) for p in session.files.values()]}


@dataclass
class SubjectSessions:
    subject: str
    sessions: list

    @property
    def key(self):
        return f"sub-{self.subject}"


def write_subject_report(item, settings, participants, model_meta):
    known = None
    if settings.target in participants.columns and item.subject in participants.index:
        value = participants.loc[item.subject, settings.target]
        known = None if value != value else str(value)  # NaN check without pandas
    path = Path(settings.output_dir) / f"sub-{item.subject}.html"
    render_report("subject.html.j2", path, subject=item.key, target=settings.target, known=known,
                  sessions=[session_context(settings, s) for s in item.sessions], space=SPACE,
                  resolution=f"{settings.resolution:g}", command=" ".join(sys.argv),
                  settings_toml=settings.to_toml(), methods=methods_text(settings, model_meta))
    return path


def write_subject_reports(settings, sessions):
    """One report per subject (all its sessions), written in parallel; returns the outcomes."""
    from bidsxai.workflows.sessions import run_sessions

    by_subject = {}
    for session in sessions:
        by_subject.setdefault(session.subject, []).append(session)
    items = [SubjectSessions(sub, items) for sub, items in sorted(by_subject.items())]
    model_meta = None
    if settings.model:
        from bidsxai.models.bundle import resolve_bundle

        model_meta = json.loads((resolve_bundle(settings.model, settings.output_dir) / "model.json").read_text())
    context = (settings, read_participants(settings.bids_dir), model_meta)
    return run_sessions(write_subject_report, items, context,
                        Path(settings.output_dir) / "logs", settings.nprocs, desc="reports")
