"""Classify and explain sessions with the fold models' ensemble (``models.ensemble``).

The ensemble's probabilities are its members' mean. Every member explains the classes the
ensemble's prediction names ("predicted" means the ensemble's class, not each member's), and the
session's maps are the members' maps averaged voxel by voxel. For integrated gradients (signed,
summed over channels, the same baseline and path for every member) this is exactly the map of the
members' mean score for the class, since it is linear in the function explained; for every other
method (saliency and SmoothGrad take absolute values) it is the mean of the members' maps. Per-map
numbers are the members' mean: integrated gradients' completeness error is then the mean of the
members' absolute errors, an upper bound on the averaged map's. The diagnostics (mirroring, the
layer strip, attention weights) are averaged the same way; MC dropout samples the ensemble as a
whole.
"""

import dataclasses

import numpy as np

from bidsxai.models.mc_dropout import has_mc_dropout
from bidsxai.training.slices import to_slices
from bidsxai.workflows.explain_session import (
    SessionExplanation,
    TargetMap,
    explain_sessions,
    mc_summary,
)
from bidsxai.workflows.slice_explain import chunked_probabilities


def subject_probabilities(model, x, spec):
    """Each subject's class probabilities (N, classes) under ``model``; a 2D model's are the mean
    of its slice probabilities."""
    if not spec.get("slices"):
        return chunked_probabilities(model, x).cpu().numpy()
    kept, size = spec["slices"]["kept"], spec["slices"]["size"]
    slices = [to_slices(volume.cpu().numpy(), kept, size).to(x.device) for volume in x]
    return np.stack([chunked_probabilities(model, s).mean(0).cpu().numpy() for s in slices])


def explain_ensemble(ensemble, x, spec, classes, options, layer, targets, template):
    """``explain_sessions``'s result for the ensemble, one per input of the batch ``x``: its
    members' explanations of the ensemble's classes, averaged (``mean_explanation``)."""
    probabilities = subject_probabilities(ensemble, x, spec)
    predicted = [int(p.argmax()) for p in probabilities]
    if targets == "predicted":
        targets = [[p] for p in predicted]
    each = dataclasses.replace(options, mc_samples=0)
    parts = [
        explain_sessions(member, x, spec, classes, each, layer, targets, template, predicted)
        for member in ensemble.members.values()
    ]
    explanations = [
        mean_explanation([part[n] for part in parts], probabilities[n]) for n in range(len(x))
    ]
    if options.mc_samples and has_mc_dropout(ensemble):
        for n, explanation in enumerate(explanations):
            explanation.mc = mc_summary(
                ensemble, spec, x[n : n + 1], options.mc_samples, options.seed
            )
    return explanations


def mean_explanation(parts, probabilities):
    """One ``SessionExplanation`` from the members' (``parts``, the same maps in the same order):
    maps, per-map numbers and diagnostics averaged, with the ensemble's ``probabilities`` and
    their log as the logits (the ensemble's output)."""
    first = parts[0]
    maps = []
    for items in zip(*(p.maps for p in parts)):
        maps.append(
            TargetMap(
                items[0].method,
                items[0].target,
                items[0].index,
                np.mean([i.heatmap for i in items], 0).astype(np.float32),
                {k: float(np.mean([i.extras[k] for i in items])) for k in items[0].extras},
            )
        )
    return SessionExplanation(
        first.classes,
        probabilities,
        np.log(probabilities),
        first.parameters,
        maps,
        attention=_mean_of_dicts([p.attention for p in parts]),
        mirror=_mean_of_dicts([p.mirror for p in parts]) or {},
        layers=_mean_of_dicts([p.layers for p in parts]),
        slices=first.slices
        and {
            "kept": first.slices["kept"],
            "probabilities": np.mean([p.slices["probabilities"] for p in parts], 0),
        },
    )


def _mean_of_dicts(dicts):
    """{key: mean over the dicts} of dicts with the same keys: floats, or float32 maps (None
    stays None)."""
    if dicts[0] is None:
        return None
    means = {k: np.mean([d[k] for d in dicts], 0) for k in dicts[0]}
    return {k: v.astype(np.float32) if np.ndim(v) else float(v) for k, v in means.items()}
