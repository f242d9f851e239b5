"""participant --model: class probabilities, Grad-CAM for every class, the subject measures.

Heatmaps are raw Grad-CAM values on the full template grid (the model's crop is undone) with the
template's affine; each has a sidecar with method, layer, target, probabilities, model and split.
"""

import re

import numpy as np
import pandas as pd
import torch

from bidsxai import __version__
from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.bids import bids_uri, derivative_path, sidecar_path
from bidsxai.explain import explain_many
from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.models.bundle import load_bundle, resolve_bundle
from bidsxai.models.registry import get_architecture
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.template import SPACE, load_template, resolution_label
from bidsxai.training.dataset import load_inputs, uncrop
from bidsxai.workflows.device import pick_device
from bidsxai.workflows.sessions import run_sessions


def class_label(name):
    """A BIDS-safe label for a class name ('RRMS' stays, 'EDSS>=5' becomes 'EDSS5')."""
    return re.sub(r"[^A-Za-z0-9]", "", str(name)) or "class"


def heatmap_path(out_dir, session, method, target, resolution):
    return derivative_path(out_dir, session.subject, session.session, "heatmap", ".nii.gz",
                           space=SPACE, res=resolution_label(resolution), method=method,
                           target=class_label(target))


def measures_path(out_dir, session):
    return derivative_path(out_dir, session.subject, session.session, "measures", ".tsv")


def classify_sessions(settings, sessions):
    folder = resolve_bundle(settings.model, settings.output_dir)
    device = pick_device(settings.device)
    model, meta = load_bundle(folder, device)
    layer = settings.explain_layer or meta.get("explain_layer") or \
        get_architecture(meta["architecture"]).default_layer(model)
    context = (settings, model, meta, layer, device, folder.name)
    return run_sessions(_classify_one, sessions, context, settings.output_dir / "logs", nprocs=1,
                        desc="explaining")


def _classify_one(session, settings, model, meta, layer, device, model_name):
    spec = meta["input"]
    out = settings.output_dir
    template = load_template(spec["resolution"])
    x = torch.from_numpy(load_inputs(out, session.subject, session.session, spec))[None].to(device)
    result = explain_many(model, x, ["gradcam"], layer=layer, targets="all")
    probabilities = torch.softmax(result["logits"], 1)[0].cpu().numpy()
    classes = meta["classes"]
    predicted = classes[int(probabilities.argmax())]
    split = meta.get("split", {}).get(session.subject, "not seen in training")
    sources = [bids_uri("bidsxai", preproc_path(out, session.subject, session.session, c,
                                                 spec["resolution"]), out) for c in spec["contrasts"]]
    rows = []
    maps = result["gradcam"][0].detach().cpu().numpy()
    for index, name in enumerate(classes):
        heatmap = uncrop(maps[index].astype(np.float32), spec["crop"], template.shape)
        path = heatmap_path(out, session, "gradcam", name, spec["resolution"])
        save_nifti(template.image(heatmap), path)
        write_json(sidecar_path(path), {
            "Method": "gradcam", "Layer": layer, "TargetClass": name, "TargetIndex": index,
            "PredictedClass": predicted,
            "PredictedProbabilities": {c: float(p) for c, p in zip(classes, probabilities)},
            "Model": model_name, "ModelSha256": meta["sha256"], "SplitAssignment": split,
            "Values": "raw Grad-CAM (ReLU of the gradient-weighted activations), trilinearly "
                      "upsampled to the model grid, zero outside the model's crop",
            "SpatialReference": SPACE, "Resolution": f"{spec['resolution']:g} mm isotropic",
            "Sources": sources, "SoftwareVersions": f"bidsxai {__version__}, torch {torch.__version__}",
        })
        rows.append({"method": "gradcam", "target": name, "p95": percentile_in_mask(heatmap, template.brain_mask),
                     "probability": float(probabilities[index]), "predicted": predicted, "split": split})
    with atomic_path(measures_path(out, session)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return predicted
