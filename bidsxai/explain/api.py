"""``explain`` and ``explain_many``, the public explanation API (the CLI uses them too).

Maps are raw (not rescaled), shaped like the input's spatial axes (CAM family upsampled
linearly) or like the layer's with ``upsample=False``. The CAM family (cam, gradcam, gradcampp,
hirescam, layercam) shares one forward pass and one gradient per target. The model is left as it
was: no hook, same training flags, no parameter gradients touched. Keyword parameters go to the
methods that take them (e.g. ``steps``, ``baseline``, ``quadrature`` for ig; ``mode`` for
saliency/smoothgrad; ``composite``, ``start``, ``gate``, ``bounds``, ``channels`` for lrp; ``fc``
for cam); a parameter that no requested method takes is an error.
"""

from collections.abc import Sequence

import torch
from torch import nn

from bidsxai.explain.cam import cam_from, classifier_weights
from bidsxai.explain.layers import eval_mode, get_layer, graph_from
from bidsxai.explain.methods import CAM_FAMILY, INPUT_METHODS, METHODS
from bidsxai.explain.upsample import upsample_linear

# None or "predicted", "all", one class index for every sample, or indices per sample (N,) / (N, T).
Targets = str | int | Sequence | torch.Tensor | None


def _targets(target, logits):
    n, n_classes = logits.shape
    if target is None or (isinstance(target, str) and target == "predicted"):
        return logits.argmax(1, keepdim=True)
    if isinstance(target, str) and target == "all":
        return torch.arange(n_classes, device=logits.device).expand(n, n_classes)
    if isinstance(target, int):
        return torch.full((n, 1), target, dtype=torch.long, device=logits.device)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device)
    if t.dim() == 1 and t.numel() == n:
        return t[:, None]
    if t.dim() == 2 and t.shape[0] == n:
        return t
    raise ValueError(
        f"target must be None, an int, one int per sample, 'all' or 'predicted'; got {target!r}"
    )


def _cam_family(model, x, layer, targets, names, fc=None):
    """({name: (N, T, *layer spatial)}, logits, target indices) of the CAM-family methods, from
    the one forward pass that also decides the targets."""
    with torch.no_grad(), graph_from(get_layer(model, layer)) as store:
        logits = model(x)
    targets = _targets(targets, logits.detach())
    activation = store["output"]
    if not isinstance(activation, torch.Tensor) or activation.dim() < 3:
        raise ValueError(f"layer {layer!r} does not output a spatial feature map")
    weights = classifier_weights(model, activation.shape[1], fc) if "cam" in names else None
    needs_gradient = any(name != "cam" for name in names)
    maps = {name: [] for name in names}
    n_targets = targets.shape[1]
    for t in range(n_targets):
        if needs_gradient:
            # Sample i's score depends only on sample i's activation (eval mode), so the gradient
            # of the batch sum gives every sample its own gradient.
            score = logits.gather(1, targets[:, t : t + 1]).sum()
            (gradient,) = torch.autograd.grad(score, activation, retain_graph=t < n_targets - 1)
        for name in names:
            if name == "cam":
                maps[name].append(cam_from(activation.detach(), weights[targets[:, t]].detach()))
            else:
                maps[name].append(METHODS[name].function(activation.detach(), gradient))
    return {name: torch.stack(m, 1) for name, m in maps.items()}, logits.detach(), targets


def _split_params(methods, params):
    taken = {name: set(METHODS[name].defaults) for name in methods if name in INPUT_METHODS}
    unknown = set(params) - set().union(*taken.values(), {"fc"} if "cam" in methods else set())
    if unknown:
        raise ValueError(f"parameter(s) {sorted(unknown)} are not taken by {list(methods)}")
    return {name: {k: v for k, v in params.items() if k in keys} for name, keys in taken.items()}


def explain_many(
    model: nn.Module,
    x: torch.Tensor,
    methods: Sequence[str],
    *,
    layer: str | None = None,
    targets: Targets = "all",
    upsample: bool = True,
    **params,
) -> dict[str, torch.Tensor]:
    """{method: maps (N, n_targets, *spatial)}, plus 'logits', 'targets' and, for ig,
    'ig_completeness_error' (N, n_targets)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    cam_names = [m for m in methods if m in CAM_FAMILY]
    if cam_names and layer is None:
        raise ValueError(
            "the CAM family needs a layer (the architecture registry gives each model's default)"
        )
    per_method = _split_params(methods, params)
    if getattr(model, "one_at_a_time", False) and len(x) > 1:
        return _one_sample_at_a_time(model, x, methods, layer, targets, upsample, params)
    results = {}
    with eval_mode(model):
        if cam_names:
            maps, logits, target_index = _cam_family(
                model, x, layer, targets, cam_names, params.get("fc")
            )
            for name, m in maps.items():
                results[name] = upsample_linear(m, tuple(x.shape[2:])) if upsample else m
        else:
            with torch.no_grad():
                logits = model(x)
            target_index = _targets(targets, logits)
        for name in methods:
            if name in INPUT_METHODS:
                maps, extras = METHODS[name].function(model, x, target_index, **per_method[name])
                results[name] = maps
                results.update({k: v for k, v in extras.items() if k != "logits"})
    results["logits"] = logits
    results["targets"] = target_index
    return results


def _one_sample_at_a_time(model, x, methods, layer, targets, upsample, params):
    """explain_many of each sample alone, concatenated: a model that runs its samples one by one
    (an export program traced with a static batch of one) calls each layer once per sample, so
    a hooked layer would otherwise keep only the last sample's activation."""
    if not isinstance(targets, (str, int)) and targets is not None:
        targets = torch.as_tensor(targets, dtype=torch.long)
        if targets.dim() == 1:
            targets = targets[:, None]
    parts = [
        explain_many(
            model,
            x[i : i + 1],
            methods,
            layer=layer,
            targets=targets
            if isinstance(targets, (str, int)) or targets is None
            else targets[i : i + 1],
            upsample=upsample,
            **params,
        )
        for i in range(len(x))
    ]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def explain(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    *,
    layer: str | None = None,
    target: Targets = None,
    upsample: bool = True,
    **params,
) -> torch.Tensor:
    """Maps (N, *spatial) of one method for one target per sample (None: the predicted class)."""
    return explain_many(
        model, x, [method], layer=layer, targets=target, upsample=upsample, **params
    )[method][:, 0]
