"""Write one session's ``SessionExplanation`` as BIDS-Derivatives: a heatmap NIfTI with its sidecar
per method and target class, the measures TSV, the layer-iteration 4D map and, for 2D models, the
slice table.

Heatmaps are raw values on the full template grid (the model's crop is undone) with the template's
affine; each sidecar records method, parameters, layer, target, probabilities, model and split.
"""

import numpy as np
import torch

from bidsxai import __version__
from bidsxai.atomic import save_nifti, write_json
from bidsxai.bids import bids_uri
from bidsxai.derivatives import (
    HeatmapSidecar,
    LayerIterationSidecar,
    MCDropout,
    MeasuresRow,
    write_table,
)
from bidsxai.explain import CAM_FAMILY, METHODS
from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.outputs import (
    heatmap_path,
    measures_path,
    model_input_path,
    sidecar_path,
    slices_path,
)


def write_explanation(
    out, session, explanation, provenance, spec, layer, template, mc_samples, loads=None
):
    """Every file of one explained session; returns the predicted class. ``provenance`` is the
    explaining model's ``Provenance``; ``loads`` ({label: ``LesionLoad``}, the session's lesion
    load) join every row of the measures TSV."""
    resolution, space, classes = template.resolution, template.space, explanation.classes
    inputs = [
        model_input_path(out, session.subject, session.session, c, resolution, space)
        for c in spec["contrasts"]
    ]
    sources = [bids_uri("bidsxai", p, out) for p in inputs]
    probabilities = {c: float(p) for c, p in zip(classes, explanation.probabilities)}
    mc = _mc_dropout(explanation, mc_samples)
    rows = []
    for item in explanation.maps:
        path = heatmap_path(
            out, session.subject, session.session, item.method, item.target, resolution, space
        )
        save_nifti(template.image(item.heatmap), path)
        sidecar = HeatmapSidecar(
            method=item.method,
            parameters=METHODS[item.method].record(explanation.parameters[item.method]),
            layer=layer if item.method in CAM_FAMILY else None,
            target_class=item.target,
            target_index=item.index,
            logit=float(explanation.logits[item.index]),
            predicted_class=explanation.predicted,
            predicted_probabilities=probabilities,
            provenance=provenance,
            attention_weights=explanation.attention,
            mc_dropout=mc,
            values=f"raw {METHODS[item.method].values}, on the model grid, zero outside the "
            "model's crop",
            spatial_reference=space,
            resolution=f"{resolution:g} mm isotropic",
            sources=sources,
            software_versions=f"bidsxai {__version__}, torch {torch.__version__}",
            **item.extras,
        )
        write_json(sidecar_path(path), sidecar.to_json())
        rows.append(_measures_row(item, explanation, provenance, template, loads or {}))
    MeasuresRow.write_tsv(measures_path(out, session.subject, session.session), rows)
    if explanation.slices is not None:
        write_slice_predictions(out, session, explanation.slices, classes)
    if explanation.layers is not None:
        write_layer_iteration(out, session, explanation, template, provenance, sources)
    return explanation.predicted


def _mc_dropout(explanation, samples):
    """The session's ``MCDropout`` summary, or None without MC dropout."""
    if not explanation.mc:
        return None
    mean, sd = explanation.mc
    return MCDropout(
        samples=samples,
        mean_probabilities={c: float(p) for c, p in zip(explanation.classes, mean)},
        sd_probabilities={c: float(p) for c, p in zip(explanation.classes, sd)},
    )


def _measures_row(item, explanation, provenance, template, loads):
    mc = explanation.mc
    predicted = explanation.predicted
    return MeasuresRow(
        method=item.method,
        target=item.target,
        p95=percentile_in_mask(item.heatmap, template.brain_mask),
        probability=float(explanation.probabilities[item.index]),
        predicted=predicted,
        split=provenance.split,
        model=provenance.member,
        mc_mean=float(mc[0][item.index]) if mc else None,
        mc_sd=float(mc[1][item.index]) if mc else None,
        mirror_r=explanation.mirror.get(item.method) if item.target == predicted else None,
        lesion_load=loads,
    )


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
    write_table(slices_path(out, session.subject, session.session), rows)


def write_layer_iteration(out, session, explanation, template, provenance, sources):
    """Grad-CAM of the predicted class at every convolution, as one 4D NIfTI (Avci 2021, §4.1.3),
    with the same model provenance and sources as the session's other heatmaps; nothing for a
    model without convolution modules to hook (an imported TorchScript or export program)."""
    layers, predicted = explanation.layers, explanation.predicted
    if not layers:
        return
    grid = (template.resolution, template.space)
    path = heatmap_path(
        out, session.subject, session.session, "gradcam", predicted, *grid, desc="layers"
    )
    save_nifti(template.image(np.stack(list(layers.values()), axis=-1)), path)
    sidecar = LayerIterationSidecar(
        method="gradcam",
        target_class=predicted,
        layers=list(layers),
        description="Grad-CAM of the predicted class at every convolutional layer (4th axis, in "
        "the order of Layers): the evaluation-layer iteration of Avci (2021)",
        spatial_reference=template.space,
        provenance=provenance,
        sources=sources,
    )
    write_json(sidecar_path(path), sidecar.to_json())
