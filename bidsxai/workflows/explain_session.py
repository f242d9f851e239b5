"""Classify one session with one model and explain the decision: every method for every target
class, MC dropout, attention weights and the diagnostics. Computes only; ``explanation_outputs``
writes the result."""

from dataclasses import dataclass, field

import numpy as np
import torch

from bidsxai.explain import CAM_FAMILY, METHODS, explain_many
from bidsxai.explain.diagnostics import layer_iteration, mirroring
from bidsxai.models.gated_attention import attention_module, attention_weights
from bidsxai.models.mc_dropout import has_mc_dropout, mc_predict
from bidsxai.training.crop_box import uncrop
from bidsxai.training.slices import to_slices
from bidsxai.workflows.slice_explain import explain_slices


@dataclass
class TargetMap:
    """One method's map for one target class, on the full template grid."""

    method: str
    target: str
    index: int
    heatmap: np.ndarray
    extras: dict = field(default_factory=dict)  # per-map numbers: ``HeatmapSidecar`` fields


@dataclass
class SessionExplanation:
    classes: list
    probabilities: np.ndarray
    logits: np.ndarray
    parameters: dict  # every requested method's parameters as used
    maps: list  # [TargetMap]
    mc: tuple | None = None  # (mean, SD) of the class probabilities under MC dropout
    attention: dict | None = None  # contrast -> gated-attention weight
    mirror: dict = field(default_factory=dict)  # CAM-family method -> mirroring r (predicted class)
    layers: dict | None = None  # layer name -> Grad-CAM of the predicted class (template grid)
    slices: dict | None = None  # 2D models: kept slice indices and their class probabilities

    @property
    def predicted(self):
        return self.classes[int(self.probabilities.argmax())]


def method_parameters(options, spec, x):
    """Each requested method's parameters: its signature's defaults, the options of the run that
    set them (``Method.options``) and what the model's input implies (``Method.adapt``)."""
    return {m: METHODS[m].parameters(options, spec, x) for m in options.methods}


def mc_summary(model, spec, x, samples, seed):
    """MC-dropout mean and SD of the subject's class probabilities (2D: slices averaged per
    pass)."""
    inputs = (
        to_slices(x[0].cpu().numpy(), spec["slices"]["kept"], spec["slices"]["size"]).to(x.device)
        if spec.get("slices")
        else x
    )
    draws = mc_predict(model, inputs, samples, seed).mean(1)  # (samples, classes)
    return draws.mean(0).cpu().numpy(), draws.std(0, unbiased=samples > 1).cpu().numpy()


def explain_session(model, x, spec, classes, options, layer, targets, template, predicted=None):
    """The ``SessionExplanation`` of input ``x`` (1, C, *crop) under ``model``, with the run's
    explanation stage ``options`` (``Settings.stage("explanation")``). ``predicted``: the class
    index the diagnostics (mirroring, the layer strip) explain, the model's prediction by default
    (an ensemble member is given the ensemble's)."""
    params = method_parameters(options, spec, x)
    flat = {k: v for method_params in params.values() for k, v in method_params.items()}
    if spec.get("slices"):
        result = explain_slices(
            model, spec, x, options.methods, layer=layer, targets=targets, **flat
        )
    else:
        result = explain_many(model, x, options.methods, layer=layer, targets=targets, **flat)
    logits = result["logits"][0].detach().cpu().numpy()
    explanation = SessionExplanation(
        classes, torch.softmax(result["logits"], 1)[0].cpu().numpy(), logits, params, maps=[]
    )
    for method in options.methods:
        maps = result[method][0].detach().cpu().numpy()
        for t, index in enumerate(result["targets"][0].tolist()):
            heatmap = uncrop(maps[t].astype(np.float32), spec["crop"], template.shape)
            explanation.maps.append(
                TargetMap(
                    method, classes[index], index, heatmap, METHODS[method].map_extras(result, t)
                )
            )
    if options.mc_samples and has_mc_dropout(model):
        explanation.mc = mc_summary(model, spec, x, options.mc_samples, options.seed)
    if attention_module(model) is not None:
        explanation.attention = dict(
            zip(spec["contrasts"], attention_weights(model, x)[0].tolist())
        )
    if spec.get(
        "slices"
    ):  # the diagnostics run on whole volumes; a slice model gets its slice table
        explanation.slices = {
            "kept": list(result["kept"]),
            "probabilities": result["slice_probabilities"].cpu().numpy(),
        }
        return explanation
    predicted_index = classes.index(explanation.predicted) if predicted is None else predicted
    cam_methods = [m for m in options.methods if m in CAM_FAMILY]
    if cam_methods:
        explanation.mirror = {
            m: float(r[0][0])
            for m, r in mirroring(
                model, x, cam_methods, layer=layer, target=predicted_index
            ).items()
        }
    explanation.layers = {
        name: uncrop(m[0].detach().cpu().numpy().astype(np.float32), spec["crop"], template.shape)
        for name, m in layer_iteration(model, x, target=predicted_index).items()
    }
    return explanation
