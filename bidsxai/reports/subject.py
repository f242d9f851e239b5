"""The per-subject HTML report, built from the files on disk (so --reports-only can redo it)."""

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.config import described_settings
from bidsxai.derivatives import HeatmapSidecar, LayerIterationSidecar, MeasuresRow, QualityGate
from bidsxai.errors import UnreadableImageError
from bidsxai.evaluate.evaluations import column_notes
from bidsxai.evaluate.similarity import normalised_mutual_information
from bidsxai.group.atlas import atlas_option
from bidsxai.nifti import read_image
from bidsxai.outputs import (
    MASK_DATASET,
    brain_mask_path,
    bundle_meta_path,
    evaluation_path,
    find_label_masks,
    heatmap_path,
    measures_path,
    model_input_path,
    preproc_path,
    resolution_label,
    sidecar_path,
    slices_path,
    subject_report_path,
)
from bidsxai.qc_ratings import COLUMNS, RATINGS
from bidsxai.reports import brain_figures, figures, svg
from bidsxai.reports.render import methods_text, methods_views, page_script, render_report
from bidsxai.reports.sections import METHODS, Section
from bidsxai.reports.viewer import viewer_data
from bidsxai.template import load_template
from bidsxai.template_files import templateflow_home
from bidsxai.training.targets import known_classes


def _load(path):
    return read_image(path)[1]


def session_view(settings, session, chosen, error=None):
    """Everything the report shows of one session, read from its files, drawn on the report's
    ``chosen`` cuts; ``error`` is the one-line reason the session failed in this run. A session
    whose outputs cannot be read (damaged since they were written) is shown with that reason."""
    try:
        return _session_view(settings, session, chosen, error)
    except UnreadableImageError as exc:
        reason = (
            error if error and str(exc) in error else "; ".join(filter(None, [error, str(exc)]))
        )
        return _session_view(settings, session, chosen, reason, read_outputs=False)


def _session_view(settings, session, chosen, error, read_outputs=True):
    out = Path(settings.output_dir)
    grid = (settings.resolution, settings.output_space)
    template = load_template(*grid)
    mask = template.brain_mask
    view = {
        "key": session.key,
        "subject": session.subject,
        "session": session.session,
        "error": error,
        "crash_log": _crash_log(settings, session, error),
        "inputs": _geometry(session),
        "gate": None,
        "own_mask": None,
        "registration": {},
        "heatmaps": [],
        "references": [],
        "prediction": None,
        "layers": None,
        "slices": None,
        "evaluation": None,
        "tissue": None,
        "viewer": None,
    }
    t1_path = preproc_path(out, session.subject, session.session, "T1w", *grid)
    if not read_outputs or not t1_path.is_file():
        return view
    t1 = _load(t1_path)
    t1_sidecar = sidecar_path(t1_path)
    gate = QualityGate.in_sidecar(t1_sidecar) if t1_sidecar.is_file() else None
    view["gate"] = gate and gate.to_json()
    own_mask, view["own_mask"] = _own_brain_mask(out, session, grid)
    images = {}
    for contrast in session.files:
        path = preproc_path(out, session.subject, session.session, contrast, *grid)
        if path.is_file():
            image = images[contrast] = t1 if contrast == "T1w" else _load(path)
            figure = brain_figures.with_contours(image, template, chosen, own_mask)
            nmi = normalised_mutual_information(image, template.t1w, mask)
            view["registration"][contrast] = {"figure": figure, "nmi": nmi}
    view["tissue"] = _tissue(out, session, grid, t1, template, chosen)
    # A session that failed the gate is not classified: explanations from an earlier run on other
    # preprocessed images would be shown as if they were this one's.
    gated = gate is not None and not gate.passed and not settings.qc_override
    measures = measures_path(out, session.subject, session.session)
    atlas = _atlas(settings.atlas, template.space, template.resolution)
    images = dict(sorted(images.items(), key=lambda item: item[0] != "T1w"))  # T1w first
    if not measures.is_file() or gated:
        view["viewer"] = viewer_data(images, {}, {}, template, atlas)
        return view
    references = _reference_masks(settings, session, template)
    maps = {}
    heatmaps, prediction = view["heatmaps"], None
    for row in MeasuresRow.read_tsv(measures):
        path = heatmap_path(out, session.subject, session.session, row.method, row.target, *grid)
        if not path.is_file():
            continue
        sidecar = HeatmapSidecar.from_json(sidecar_path(path))
        values = maps[f"{row.method}, class {row.target}"] = _load(path)
        peak = float(values[mask].max()) if mask.any() else 0.0
        heatmaps.append(
            {
                "method": row.method,
                "target": row.target,
                "p95": row.p95,
                "mirror_r": float("nan") if row.mirror_r is None else row.mirror_r,
                "peak": peak,
                "figure": brain_figures.heatmap(
                    t1,
                    values / peak if peak > 0 else values,
                    template,
                    chosen,
                    references.values(),
                ),
            }
        )
        prediction = {
            "predicted": sidecar.predicted_class,
            "probabilities": sidecar.predicted_probabilities,
            "model": sidecar.provenance.bundle,
            "sha256": sidecar.provenance.sha256,
            "split": sidecar.provenance.split,
            "member": sidecar.provenance.member,
            "choice": sidecar.provenance.choice,
            "mc": sidecar.mc_dropout and sidecar.mc_dropout.to_json(),
            "attention": sidecar.attention_weights,
            "layer": sidecar.layer or "",
        }
    view["prediction"] = prediction
    view["references"] = sorted(references)
    view["viewer"] = viewer_data(images, maps, references, template, atlas)
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
        made_by = LayerIterationSidecar.from_json(sidecar_path(path)) if path.is_file() else None
        # Only the strip of the model that made this session's maps: a model that cannot be
        # hooked layer by layer (TorchScript) writes none and leaves an earlier model's in place.
        if made_by and made_by.provenance.sha256 == prediction["sha256"]:
            view["layers"] = figures.layer_strip(t1, _load(path), mask, made_by.layers)
        view["evaluation"] = _evaluation(out, session, prediction)
    slices_table = slices_path(out, session.subject, session.session)
    if slices_table.is_file():
        table = pd.read_csv(slices_table, sep="\t")
        view["slices"] = {"n": len(table), "rows": list(zip(table["slice"], table["predicted"]))}
    return view


def _tissue(out, session, grid, t1, template, chosen):
    """The session's GM map over its T1w, who made it, and the GM volume from modulated GM; None
    without --tissue-maps."""
    gm_path = model_input_path(out, session.subject, session.session, "GM", *grid)
    modulated = model_input_path(out, session.subject, session.session, "GMmod", *grid)
    if not (gm_path.is_file() and modulated.is_file()):
        return None
    voxel_ml = float(grid[0]) ** 3 / 1000
    return {
        "figure": brain_figures.heatmap(t1, _load(gm_path), template, chosen),
        "method": json.loads(sidecar_path(gm_path).read_text()).get("Segmentation", ""),
        "gm_ml": float(_load(modulated).sum()) * voxel_ml,
    }


def _own_brain_mask(out, session, grid):
    """(the session's own brain mask on the template grid, who made it: deepbet, sMRIPrep), or
    (None, None) where the template's mask was used."""
    path = brain_mask_path(out, session.subject, session.session, *grid)
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None, None
    method = json.loads(sidecar.read_text()).get("SkullStripping", "template")
    if method == "template":
        return None, None
    return _load(path) > 0, method.split(" (")[0]


def _geometry(session):
    """Each input image's file, voxel grid and voxel size, read from its header."""
    rows = []
    for contrast, path in session.files.items():
        try:
            header = nib.load(str(path)).header
            shape = "x".join(str(n) for n in header.get_data_shape())
            zooms = " x ".join(f"{z:.2f}" for z in header.get_zooms()[:3])
        except Exception:  # noqa: BLE001 - a broken input is reported, not a broken report
            shape = zooms = "unreadable"
        rows.append({"contrast": contrast, "file": Path(path).name, "shape": shape, "mm": zooms})
    return rows


def _crash_log(settings, session, error):
    """The crash log this run wrote for the session, if any."""
    log = Path(settings.crash_dir) / f"{session.key}.txt"
    return str(log) if error and log.is_file() else None


@lru_cache(maxsize=2)
def _atlas(spec, space, resolution):
    """The atlas of ``--atlas`` on the template grid (``group.atlas``), read once per grid."""
    return atlas_option(spec, load_template(resolution, space))


def _reference_masks(settings, session, template):
    """{label: mask} of the reference masks on this run's grid: those --evaluate wrote (warped
    from T1w space where needed), else those given in template space."""
    folder = settings.derivatives.get(MASK_DATASET)
    if folder is None:
        return {}
    res = resolution_label(template.resolution)
    masks = {}
    roots = [folder, settings.output_dir]  # the run's own copies win
    found_masks = [
        m for root in roots for m in find_label_masks(root, session.subject, session.session)
    ]
    for found in found_masks:
        if found.space == template.space and found.res == res:
            image = nib.load(str(found.path))
            if image.shape == template.shape:
                masks[found.label] = np.asarray(image.dataobj) > 0
    return masks


@dataclass
class SubjectSessions:
    subject: str
    sessions: list

    @property
    def key(self):
        return f"sub-{self.subject}"


LOW_MARGIN = 0.1  # a top probability this close to the runner-up is flagged


def summary(prediction, known):
    """The probability bars (true class marked), correct or misclassified, and the margin."""
    if prediction is None:
        return None
    ranked = sorted(prediction["probabilities"].items(), key=lambda kv: -kv[1])
    margin = ranked[0][1] - ranked[1][1] if len(ranked) > 1 else 1.0
    return {
        "bars": [
            {"label": c, "p": p, "true": c == known, "predicted": c == prediction["predicted"]}
            for c, p in prediction["probabilities"].items()
        ],
        "correct": None if known is None else prediction["predicted"] == known,
        "margin": margin,
        "low_margin": margin < LOW_MARGIN,
    }


def across_sessions(sessions):
    """The subject's change over sessions, where two or more were classified: per session, each
    class's probability and each map's p95, and the change from the first to the last."""
    classified = [v for v in sessions if v["prediction"]]
    if len(classified) < 2:
        return None
    classes = list(classified[0]["prediction"]["probabilities"])
    maps = sorted({(h["method"], h["target"]) for v in classified for h in v["heatmaps"]})
    rows = []
    for view in classified:
        p95 = {(h["method"], h["target"]): h["p95"] for h in view["heatmaps"]}
        rows.append(
            {
                "key": view["key"],
                "predicted": view["prediction"]["predicted"],
                "values": [view["prediction"]["probabilities"].get(c) for c in classes]
                + [p95.get(m) for m in maps],
            }
        )
    first, last = rows[0]["values"], rows[-1]["values"]
    change = [b - a if None not in (a, b) else None for a, b in zip(first, last)]
    columns = [f"P({c})" for c in classes] + [f"p95 {method}, {target}" for method, target in maps]
    return {"columns": columns, "rows": rows, "change": change}


def write_subject_report(item, settings, participants, model_meta, errors=None):
    """The subject's report: every session, with its errors from this run (``errors``: {session
    key: one-line reason}), also for sessions that produced nothing."""
    errors = errors or {}
    known = None
    if model_meta and model_meta.get("target") == settings.target:
        known = known_classes(participants, model_meta).get(item.subject)  # threshold, bins
    elif settings.target in participants.columns and item.subject in participants.index:
        value = participants.loc[item.subject, settings.target]
        known = None if value != value else str(value)  # NaN check without pandas
    path = subject_report_path(settings.output_dir, item.subject)
    template = load_template(settings.resolution, settings.output_space)
    chosen = brain_figures.cuts(template)
    sessions = [session_view(settings, s, chosen, errors.get(s.key)) for s in item.sessions]
    for view in sessions:
        view["summary"] = summary(view["prediction"], known)
    contrasts = {c for s in item.sessions for c in s.files}
    methods = methods_text(described_settings(settings), model_meta, contrasts)
    context = {
        "sessions": sessions,
        "command": " ".join(sys.argv),
        "settings_toml": settings.to_toml(),
        "methods": methods_views(methods),
    }
    model_meta = _model_meta(settings, model_meta, sessions)
    context["external"] = external_model_view(model_meta)
    warning = model_meta and model_meta.get("warning")
    render_report(
        path,
        SECTIONS,
        context,
        title=f"bidsxai: {item.key}",
        heading=item.key,
        header="subject/header.html.j2",
        warning=warning and ("Warning about the model:", warning),
        target=settings.target,
        known=known,
        space=settings.output_space,
        resolution=f"{settings.resolution:g}",
        template_figure=brain_figures.template_with_contours(
            settings.resolution, settings.output_space, str(templateflow_home())
        ),
        contours=brain_figures.TISSUE_COLOURS,
        own_mask_colour=brain_figures.OWN_MASK_COLOUR,
        reference_colour=brain_figures.REFERENCE_COLOUR,
        display_threshold=brain_figures.DISPLAY_THRESHOLD,
        low_margin=LOW_MARGIN,
        scripts=[page_script("subject/viewer.js"), page_script("qc_ratings.js")],
    )
    return path


def _provenance(context):
    """The command, the settings and the model that classified the sessions."""
    classified = [s["prediction"] for s in context["sessions"] if s["prediction"]]
    return {
        "command": context["command"],
        "settings_toml": context["settings_toml"],
        "model": classified[0] if classified else None,
        "external": context["external"],
    }


def _qc_rating(context):
    """The rating form: one row per session, the columns of ``qc_ratings``."""
    views = context["sessions"]
    return {
        "participant": f"sub-{views[0]['subject']}",
        "sessions": [(v["key"], f"ses-{v['session']}" if v["session"] else "n/a") for v in views],
        "ratings": RATINGS,
        "columns": list(COLUMNS),
    }


# The subject report, in order: the change over sessions, each session, errors, the QC rating,
# provenance.
SECTIONS = (
    Section(
        "across-sessions",
        "Across sessions",
        lambda context: across_sessions(context["sessions"]),
        "subject/across_sessions.html.j2",
    ),
    Section(
        "sessions",
        "Sessions",
        lambda context: [(view["key"], view["key"], view) for view in context["sessions"]],
        "subject/session.html.j2",
        repeated=True,
    ),
    Section(
        "errors",
        "Errors",
        lambda context: {"failed": [s for s in context["sessions"] if s["error"]]},
        "subject/errors.html.j2",
    ),
    Section("qc-rating", "QC rating", _qc_rating, "subject/qc_rating.html.j2"),
    Section("provenance", "Provenance", _provenance, "subject/provenance.html.j2"),
    METHODS,
)


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
        "notes": column_notes(list(table.columns)),
        "rows": table.round(3).astype(object).where(table.notna(), "").values.tolist(),
        "figures": figures_by_method,
        "beside": _beside_baselines(table, prediction["predicted"]),
    }


def _beside_baselines(table, target):
    """For each localisation AUROC and pointing game of the class ``target``: every method, every
    model-free baseline and every control on one axis (``svg.score_dots``)."""
    rows = table[table["target"].astype(str) == str(target)]
    charts = []
    for column in table.columns:
        label = svg.localisation_label(column)
        if label is None:
            continue
        points = [(m, float(v), None, None) for m, v in zip(rows["method"], rows[column])]
        if any(v == v for _, v, _, _ in points):
            charts.append({"label": label, "figure": svg.score_dots(points, label)})
    return charts


def _model_meta(settings, model_meta, sessions):
    """The record of the bundle that explained these sessions, also in a report rewritten
    without --model: its name is in the heatmaps' sidecars."""
    if model_meta is None:
        names = [s["prediction"]["model"] for s in sessions if s["prediction"]]
        meta_file = bundle_meta_path(settings.output_dir, names[0]) if names else None
        if meta_file is None or not meta_file.is_file():
            return None
        model_meta = json.loads(meta_file.read_text())
    return model_meta


FORMATS = {
    "monai": "MONAI network {network} with its weights",
    "entry_point": "network built by its authors' code ({network}) with its weights",
    "torchscript": "TorchScript program",
    "export": "torch.export program",
}


def external_model_view(model_meta):
    """What the report shows of an imported model: how it came in and its card, so a reader sees
    whose model made the decisions and what it claims to be for; None for bidsxai's own."""
    if not model_meta or "external" not in model_meta:
        return None
    card, record = model_meta["card"], model_meta["external"]
    training = card.get("training_data") or {}
    rows = [
        ("Format", FORMATS[record["format"]].format(network=record.get("network"))),
        ("Intended use", card.get("intended_use") or "not stated"),
        (
            "Input",
            f"{', '.join(card['channels'])} on {card['space']} at {card['resolution']:g} mm"
            f", {card['normalisation']} normalisation",
        ),
        ("Output", f"{card['output']} for {card['target']}: {', '.join(card['classes'])}"),
        (
            "Training data",
            " ".join(
                v
                for v in (training.get("name"), training.get("doi") and f"(doi:{training['doi']})")
                if v
            )
            or "not stated",
        ),
        (
            "Subjects it trained on",
            ", ".join(f"sub-{s}" for s in card.get("trained_on", [])) or "none named",
        ),
        ("Licence", card.get("licence") or "not stated"),
        ("Authors", ", ".join(card.get("authors", [])) or "not stated"),
        ("References", "; ".join(card.get("references", [])) or "none"),
    ]
    if record.get("monai_bundle"):
        bundle = record["monai_bundle"]
        rows.insert(1, ("MONAI bundle", f"{bundle.get('name', '')} {bundle.get('version', '')}"))
    return {"name": card["name"], "rows": rows}
