"""Cascading model-parameter randomisation (Adebayo et al. 2018): re-initialise the layers from
the output down, one more at a time, and compare each map with the trained model's. A map that
stays the same does not depend on what the model learned and fails this sanity check.

Each layer's parameters are replaced by Gaussian noise with the standard deviation the trained
parameters had (1 where that is 0), so activations keep their scale; batch norms also forget
their running statistics."""

import copy

import numpy as np
import torch

from bidsxai.evaluate.similarity import spearman, ssim
from bidsxai.explain import explain


def parametrised_layers(model):
    """Names of the modules that hold parameters of their own, from the output back."""
    names = [
        n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))
    ]
    return names[::-1]


def _map(model, x, method, target, params):
    if callable(method):
        return np.asarray(method(model, x), np.float64)
    return explain(model, x, method, target=target, **params)[0].detach().cpu().numpy()


def randomisation(
    model: torch.nn.Module,
    x: torch.Tensor,
    method,
    *,
    target: int | None = None,
    layers: list | None = None,
    region: np.ndarray | None = None,
    seed: int = 0,
    **explain_params,
) -> dict:
    """{"layers", "spearman", "ssim"}: after randomising each further layer of ``layers`` (default:
    every parametrised layer, output first), the similarity of the map to the trained model's.

    ``method`` is a name for ``bidsxai.explain.explain`` (with ``explain_params``) or a function
    (model, x) -> map; the target is the trained model's predicted class unless given.
    """
    if target is None:
        with torch.no_grad():
            target = int(model.eval()(x).argmax(1)[0])
    reference = _map(model, x, method, target, explain_params)
    layers = parametrised_layers(model) if layers is None else list(layers)
    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    rows = {"layers": layers, "spearman": [], "ssim": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            for p in modules[name].parameters(recurse=False):
                with torch.no_grad():
                    p.copy_(
                        torch.randn_like(p) * (p.std() if p.numel() > 1 and p.std() > 0 else 1.0)
                    )
            if hasattr(modules[name], "running_mean"):  # a batch norm's statistics are learned too
                modules[name].reset_running_stats()
            randomised = _map(work, x, method, target, explain_params)
            rows["spearman"].append(spearman(reference, randomised, region))
            rows["ssim"].append(ssim(reference, randomised, region))
    return {k: np.asarray(v) if k != "layers" else v for k, v in rows.items()}
