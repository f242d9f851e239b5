"""Public explanation API: ``explain`` and ``explain_many`` (the CLI uses them too).

Maps are raw (not rescaled), shaped like the input's spatial axes (trilinear/bilinear upsampling)
or like the layer's with ``upsample=False``. The model is left as it was: no hook, same
training flags, no parameter gradients touched.
"""

import torch
import torch.nn.functional as F

from bidsxai.explain.gradcam import gradcam
from bidsxai.explain.layers import eval_mode

# name -> function(model, x, layer, targets) -> (maps (N, T, *spatial), logits)
METHODS = {"gradcam": gradcam}


def _targets(target, logits, n_classes):
    n = logits.shape[0]
    if target is None or (isinstance(target, str) and target == "predicted"):
        return logits.argmax(1, keepdim=True)
    if isinstance(target, str) and target == "all":
        return torch.arange(n_classes).expand(n, n_classes)
    if isinstance(target, int):
        return torch.full((n, 1), target, dtype=torch.long)
    t = torch.as_tensor(target, dtype=torch.long)
    if t.dim() == 1 and t.numel() == n:
        return t[:, None]
    raise ValueError(f"target must be None, an int, one int per sample, 'all' or 'predicted'; got {target!r}")


def _upsample(maps, size):
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    n, t = maps.shape[:2]
    out = F.interpolate(maps.reshape(n * t, 1, *maps.shape[2:]), size=size, mode=mode,
                        align_corners=False)
    return out.reshape(n, t, *size)


def explain_many(model, x, methods, *, layer=None, targets="all", upsample=True):
    """{method: maps (N, n_targets, *spatial)} plus 'logits' for the batch ``x``."""
    if layer is None:
        raise ValueError("layer is required (the architecture registry gives each model's default)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {sorted(METHODS)}")
    with eval_mode(model):
        with torch.no_grad():
            logits = model(x)
        target_index = _targets(targets, logits, logits.shape[1])
        results = {}
        for name in methods:
            maps, _ = METHODS[name](model, x, layer, target_index)
            results[name] = _upsample(maps, tuple(x.shape[2:])) if upsample else maps
    results["logits"] = logits
    results["targets"] = target_index
    return results


def explain(model, x, method, *, layer=None, target=None, upsample=True):
    """Maps (N, *spatial) of one method for one target per sample (None: the predicted class)."""
    return explain_many(model, x, [method], layer=layer, targets=target, upsample=upsample)[method][:, 0]
