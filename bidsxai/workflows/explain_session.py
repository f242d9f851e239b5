"""Classify sessions with one model and explain the decisions: every method for every target
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


def per_sample_targets(targets, n):
    """``targets`` ("predicted", "all" or one row of class indices per sample) for a batch of
    ``n``: a single row is every sample's."""
    if isinstance(targets, str) or len(targets) != 1:
        return targets
    return list(targets) * n


def explain_sessions(model, x, spec, classes, options, layer, targets, template, predicted=None):
    """The ``SessionExplanation`` of each of the N inputs ``x`` (N, C, *crop) under ``model``,
    with the run's explanation stage ``options`` (``Settings.stage("explanation")``), computed
    together: explain_many, mirroring and the layer strip take the whole batch (each sample's
    gradient is its own in eval mode, so a batch gives each session what it would get alone, to
    float rounding); MC dropout runs session by session, and a 2D model takes one session. Every
    session's method parameters must be the batch's (``method_parameters``: z-beta's bounds
    follow a z-scored input's own range). ``predicted``: per session, the class index the
    diagnostics (mirroring, the layer strip) explain, the model's prediction by default (an
    ensemble member is given the ensemble's)."""
    targets = per_sample_targets(targets, len(x))
    if spec.get("slices") and len(x) > 1:
        raise ValueError("a 2D model explains one session at a time (its batch is the slices)")
    params = method_parameters(options, spec, x[:1])
    if any(method_parameters(options, spec, x[i : i + 1]) != params for i in range(1, len(x))):
        raise ValueError("the sessions of a batch must share their method parameters")
    flat = {k: v for method_params in params.values() for k, v in method_params.items()}
    if spec.get("slices"):
        result = explain_slices(
            model, spec, x, options.methods, layer=layer, targets=targets, **flat
        )
    else:
        result = explain_many(model, x, options.methods, layer=layer, targets=targets, **flat)
    logits = result["logits"].detach()
    probabilities = torch.softmax(logits, 1).cpu().numpy()
    explanations = [
        SessionExplanation(classes, probabilities[n], logits[n].cpu().numpy(), params, maps=[])
        for n in range(len(x))
    ]
    for n, explanation in enumerate(explanations):
        for method in options.methods:
            maps = result[method][n].detach().cpu().numpy()
            for t, index in enumerate(result["targets"][n].tolist()):
                heatmap = uncrop(maps[t].astype(np.float32), spec["crop"], template.shape)
                extras = METHODS[method].map_extras(result, n, t)
                explanation.maps.append(TargetMap(method, classes[index], index, heatmap, extras))
        if options.mc_samples and has_mc_dropout(model):
            explanation.mc = mc_summary(model, spec, x[n : n + 1], options.mc_samples, options.seed)
    if attention_module(model) is not None:
        weights = attention_weights(model, x)
        for n, explanation in enumerate(explanations):
            explanation.attention = dict(zip(spec["contrasts"], weights[n].tolist()))
    if spec.get("slices"):  # the diagnostics run on whole volumes; a 2D model gets its slices
        explanations[0].slices = {
            "kept": list(result["kept"]),
            "probabilities": result["slice_probabilities"].cpu().numpy(),
        }
        return explanations
    predicted = torch.as_tensor(
        probabilities.argmax(1) if predicted is None else predicted, device=x.device
    )
    cam_methods = [m for m in options.methods if m in CAM_FAMILY]
    if cam_methods:
        mirrored = mirroring(model, x, cam_methods, layer=layer, target=predicted)
        for n, explanation in enumerate(explanations):
            explanation.mirror = {m: float(r[0][n]) for m, r in mirrored.items()}
    layers = layer_iteration(model, x, target=predicted)
    for n, explanation in enumerate(explanations):
        explanation.layers = {
            name: uncrop(
                m[n].detach().cpu().numpy().astype(np.float32), spec["crop"], template.shape
            )
            for name, m in layers.items()
        }
    return explanations
