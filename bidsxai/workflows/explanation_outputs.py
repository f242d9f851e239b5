"""Write one session's ``SessionExplanation`` as BIDS-Derivatives: a heatmap NIfTI with its sidecar
per method and target class, the measures TSV, the layer-iteration 4D map and, for 2D models, the
slice table.

Heatmaps are raw values on the full template grid (the model's crop is undone) with the template's
affine; each sidecar records method, parameters, layer, target, probabilities, model and split.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bidsxai import __version__
from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.bids import bids_uri
from bidsxai.explain import CAM_FAMILY, METHODS
from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.outputs import (
    heatmap_path,
    measures_path,
    model_input_path,
    sidecar_path,
    slices_path,
)


@dataclass
class Provenance:
    """Which model explained the session, and why that one."""

    bundle: str
    member: str
    sha256: str
    split: str  # the subject's role for that member: validation (out of fold), test, new
    choice: str  # why this member was chosen


def write_explanation(
    out, session, explanation, provenance, spec, layer, template, mc_samples, loads=None
):
    """Every file of one explained session; returns the predicted class. ``loads`` (the
    session's lesion load) join every row of the measures TSV."""
    resolution, space, classes = template.resolution, template.space, explanation.classes
    inputs = [
        model_input_path(out, session.subject, session.session, c, resolution, space)
        for c in spec["contrasts"]
    ]
    sources = [bids_uri("bidsxai", p, out) for p in inputs]
    common = _common_sidecar(explanation, provenance, mc_samples)
    rows = []
    for item in explanation.maps:
        path = heatmap_path(
            out, session.subject, session.session, item.method, item.target, resolution, space
        )
        save_nifti(template.image(item.heatmap), path)
        sidecar = {
            "Method": item.method,
            "Parameters": METHODS[item.method].record(explanation.parameters[item.method]),
            "Layer": layer if item.method in CAM_FAMILY else None,
            "TargetClass": item.target,
            "TargetIndex": item.index,
            "Logit": float(explanation.logits[item.index]),
            **common,
            "Values": f"raw {METHODS[item.method].values}, on the model grid, zero outside the "
            "model's crop",
            "SpatialReference": space,
            "Resolution": f"{resolution:g} mm isotropic",
            "Sources": sources,
            "SoftwareVersions": f"bidsxai {__version__}, torch {torch.__version__}",
            **item.extras,
        }
        write_json(sidecar_path(path), {k: v for k, v in sidecar.items() if v is not None})
        rows.append(dict(_measures_row(item, explanation, provenance, template), **(loads or {})))
    _write_tsv(measures_path(out, session.subject, session.session), rows)
    if explanation.slices is not None:
        write_slice_predictions(out, session, explanation.slices, classes)
    if explanation.layers is not None:
        provenance_entries = {k: v for k, v in common.items() if k.startswith(("Model", "Split"))}
        write_layer_iteration(
            out,
            session,
            explanation,
            template,
            dict(provenance_entries, Sources=sources),
        )
    return explanation.predicted


def _common_sidecar(explanation, provenance, mc_samples):
    """The sidecar entries every heatmap of the session shares: prediction and provenance."""
    classes, mc = explanation.classes, explanation.mc
    return {
        "PredictedClass": explanation.predicted,
        "PredictedProbabilities": {c: float(p) for c, p in zip(classes, explanation.probabilities)},
        "Model": provenance.bundle,
        "ModelMember": provenance.member,
        "ModelSha256": provenance.sha256,
        "SplitAssignment": provenance.split,
        "ModelChoice": provenance.choice,
        "AttentionWeights": explanation.attention,
        "MCDropout": {
            "Samples": mc_samples,
            "MeanProbabilities": {c: float(p) for c, p in zip(classes, mc[0])},
            "SDProbabilities": {c: float(p) for c, p in zip(classes, mc[1])},
        }
        if mc
        else None,
    }


def _measures_row(item, explanation, provenance, template):
    mc = explanation.mc
    predicted = explanation.predicted
    return {
        "method": item.method,
        "target": item.target,
        "p95": percentile_in_mask(item.heatmap, template.brain_mask),
        "probability": float(explanation.probabilities[item.index]),
        "predicted": predicted,
        "split": provenance.split,
        "model": provenance.member,
        **({"mc_mean": float(mc[0][item.index]), "mc_sd": float(mc[1][item.index])} if mc else {}),
        "mirror_r": explanation.mirror.get(item.method) if item.target == predicted else None,
    }


def write_slice_predictions(out, session, slices, classes):
    """One row per classified slice of a 2D model: axial index on the template grid, the slice's
    predicted class and its class probabilities."""
    rows = [
        {
            "slice": int(z),
            "predicted": classes[int(p.argmax())],
            **{f"probability_{c}": float(v) for c, v in zip(classes, p)},
        }
        for z, p in zip(slices["kept"], slices["probabilities"])
    ]
    _write_tsv(slices_path(out, session.subject, session.session), rows)


def write_layer_iteration(out, session, explanation, template, provenance):
    """Grad-CAM of the predicted class at every convolution, as one 4D NIfTI (Avci 2021, §4.1.3),
    with the same model provenance and sources as the session's other heatmaps."""
    layers, predicted = explanation.layers, explanation.predicted
    grid = (template.resolution, template.space)
    path = heatmap_path(
        out, session.subject, session.session, "gradcam", predicted, *grid, desc="layers"
    )
    save_nifti(template.image(np.stack(list(layers.values()), axis=-1)), path)
    write_json(
        sidecar_path(path),
        {
            "Method": "gradcam",
            "TargetClass": predicted,
            "Layers": list(layers),
            "Description": "Grad-CAM of the predicted class at every convolutional layer (4th "
            "axis, in the order of Layers): the evaluation-layer iteration of Avci (2021)",
            "SpatialReference": template.space,
            **provenance,
        },
    )


def _write_tsv(path, rows):
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
