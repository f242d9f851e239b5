"""Diagnostics of Avci (2021): evaluation-layer iteration (§4.1.3) and the mirroring test (§4.1.1).

Layer iteration shows the same CAM-family map at every convolutional layer, to see where the
class evidence appears and how it blurs with depth. The mirroring test explains the left-right
flipped input and compares that map with the flipped map of the original input: a faithful
explanation of a model without a side bias gives a correlation near 1.
"""

from contextlib import ExitStack

import torch
from torch import nn

from bidsxai.explain.api import _targets, explain_many
from bidsxai.explain.gradcam import gradcam_from
from bidsxai.explain.layers import capture_output, eval_mode, get_layer
from bidsxai.explain.upsample import upsample_linear


def conv_layers(model):
    """Dotted names of every convolution, in forward order of definition."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]


def layer_iteration(model, x, target=None, layers=None):
    """{layer: Grad-CAM maps (N, *spatial)} at each layer (default: every convolution), from one
    forward pass and one backward pass that yields the gradients of every layer at once. None
    for a model without convolution modules to hook (a TorchScript or export program)."""
    layers = list(layers or conv_layers(model))
    if not layers:
        return {}
    with eval_mode(model), ExitStack() as stack:
        stores = [stack.enter_context(capture_output(get_layer(model, name))) for name in layers]
        logits = model(x)
        targets = _targets(target, logits.detach())
        activations = [store["output"] for store in stores]
        gradients = torch.autograd.grad(logits.gather(1, targets[:, :1]).sum(), activations)
    maps = {}
    for name, activation, gradient in zip(layers, activations, gradients):
        cam = gradcam_from(activation.detach(), gradient)[:, None]
        maps[name] = upsample_linear(cam, tuple(x.shape[2:]))[:, 0]
    return maps


def pearson(a, b):
    """Correlation per sample of two (N, *spatial) maps; 1 when both are constant and equal."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    same = torch.isclose(a, b).all(1)
    return torch.where(norm > 0, (a * b).sum(1) / torch.where(norm > 0, norm, 1), same.double())


def mirroring(model, x, methods=("gradcam",), layer=None, target=None, axis=0):
    """{method: (correlation (N,), map of x, map of the flipped x)} for a flip of spatial ``axis``
    (0 = left-right in RAS); ``target`` None means each sample's predicted class on x, which the
    flipped input is explained for too. Two passes of explain_many serve every method."""
    dim = 2 + axis
    original = explain_many(model, x, list(methods), layer=layer, targets=target)
    flipped = explain_many(
        model, torch.flip(x, (dim,)), list(methods), layer=layer, targets=original["targets"]
    )
    return {
        m: (
            pearson(torch.flip(original[m][:, 0], (dim - 1,)), flipped[m][:, 0]),
            original[m][:, 0],
            flipped[m][:, 0],
        )
        for m in methods
    }
