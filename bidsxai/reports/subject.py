"""The per-subject HTML report, built from the files on disk (so --reports-only can redo it)."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.outputs import (
    bundle_meta_path,
    evaluation_path,
    heatmap_path,
    measures_path,
    preproc_path,
    sidecar_path,
    slices_path,
    subject_report_path,
)
from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report
from bidsxai.template import load_template


def _load(path):
    return np.asarray(nib.load(str(path)).dataobj, np.float32)


def session_view(settings, session):
    """Everything the report shows of one session, read from its files."""
    out = Path(settings.output_dir)
    grid = (settings.resolution, settings.output_space)
    template = load_template(*grid)
    mask = template.brain_mask
    t1_path = preproc_path(out, session.subject, session.session, "T1w", *grid)
    t1 = _load(t1_path)
    t1_sidecar = sidecar_path(t1_path)
    gate = json.loads(t1_sidecar.read_text()).get("QualityGate") if t1_sidecar.is_file() else None
    qc = {}
    for contrast in session.files:
        path = preproc_path(out, session.subject, session.session, contrast, *grid)
        if path.is_file():
            image = t1 if contrast == "T1w" else _load(path)
            qc[contrast] = figures.registration_mosaic(image, template.t1w, mask)
    heatmaps, prediction = [], None
    measures = measures_path(out, session.subject, session.session)
    # A session that failed the gate is not classified: explanations from an earlier run on other
    # preprocessed images would be shown as if they were this one's.
    gated = gate is not None and not gate["Passed"] and not settings.qc_override
    if measures.is_file() and not gated:
        table = pd.read_csv(measures, sep="\t")
        for row in table.itertuples():
            path = heatmap_path(
                out, session.subject, session.session, row.method, row.target, *grid
            )
            if not path.is_file():
                continue
            sidecar = json.loads(sidecar_path(path).read_text())
            heatmaps.append(
                {
                    "method": row.method,
                    "target": row.target,
                    "p95": row.p95,
                    "mirror_r": getattr(row, "mirror_r", float("nan")),
                    "figure": figures.heatmap_mosaic(t1, _load(path), mask),
                }
            )
            prediction = {
                "predicted": sidecar["PredictedClass"],
                "probabilities": sidecar["PredictedProbabilities"],
                "model": sidecar["Model"],
                "sha256": sidecar["ModelSha256"],
                "split": sidecar["SplitAssignment"],
                "member": sidecar.get("ModelMember", ""),
                "choice": sidecar.get("ModelChoice", ""),
                "mc": sidecar.get("MCDropout"),
                "attention": sidecar.get("AttentionWeights"),
                "layer": sidecar.get("Layer", ""),
            }
    layers = None
    if prediction:
        path = heatmap_path(
            out,
            session.subject,
            session.session,
            "gradcam",
            prediction["predicted"],
            *grid,
            desc="layers",
        )
        if path.is_file():
            names = json.loads(sidecar_path(path).read_text())["Layers"]
            layers = figures.layer_strip(t1, _load(path), mask, names)
    slices = None
    evaluation = None if gated else _evaluation(out, session, prediction)
    slices_table = slices_path(out, session.subject, session.session)
    if slices_table.is_file():
        table = pd.read_csv(slices_table, sep="\t")
        slices = {"n": len(table), "rows": list(zip(table["slice"], table["predicted"]))}
    return {
        "key": session.key,
        "gate": gate,
        "qc_figures": qc,
        "heatmaps": heatmaps,
        "prediction": prediction,
        "layers": layers,
        "slices": slices,
        "evaluation": evaluation,
        "inputs": [str(p) for p in session.files.values()],
    }


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
    path = subject_report_path(settings.output_dir, item.subject)
    sessions = [session_view(settings, s) for s in item.sessions]
    render_report(
        "subject.html.j2",
        path,
        subject=item.key,
        target=settings.target,
        known=known,
        sessions=sessions,
        space=settings.output_space,
        resolution=f"{settings.resolution:g}",
        command=" ".join(sys.argv),
        settings_toml=settings.to_toml(),
        methods=methods_text(settings, model_meta),
        model_warning=_model_warning(settings, model_meta, sessions),
    )
    return path


def _evaluation(out, session, prediction):
    """The evaluation table and the faithfulness curves of the predicted class, if evaluated."""
    path = evaluation_path(out, session.subject, session.session)
    if not path.is_file() or prediction is None:
        return None
    table = pd.read_csv(path, sep="\t")
    curves = json.loads(sidecar_path(path).read_text()).get("Curves", {})
    figures_by_method = [
        {
            "method": key.split("/")[0],
            "figure": figures.faithfulness_curves(c, key.replace("/", ", class ")),
        }
        for key, c in curves.items()
        if key.split("/", 1)[1] == prediction["predicted"]
    ]
    return {
        "columns": list(table.columns),
        "rows": table.round(3).astype(object).where(table.notna(), "").values.tolist(),
        "figures": figures_by_method,
    }


def _model_warning(settings, model_meta, sessions):
    """The warning of the bundle that explained these sessions, also in a report rewritten
    without --model: its name is in the heatmaps' sidecars."""
    if model_meta is None:
        names = [s["prediction"]["model"] for s in sessions if s["prediction"]]
        meta_file = bundle_meta_path(settings.output_dir, names[0]) if names else None
        if meta_file is None or not meta_file.is_file():
            return None
        model_meta = json.loads(meta_file.read_text())
    return model_meta.get("warning")
