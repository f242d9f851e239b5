"""Grad-CAM (Selvaraju et al.; paper 000 eq. 1): the one place its formula lives.

w_k^c = mean over *all* spatial axes of d y^c / d A^k (one weight per channel and sample, also
in 3D); L^c = ReLU(sum_k w_k^c A^k). Every target's gradient comes from the same graph.
"""

import torch

from bidsxai.explain.layers import capture_output, get_layer


def gradcam_from(activation, gradient):
    """Maps (N, *spatial) from a layer's activation and the gradient of one score per sample."""
    spatial = tuple(range(2, activation.dim()))
    weights = gradient.mean(dim=spatial, keepdim=True)
    return torch.relu((weights * activation).sum(1))


def gradcam(model, x, layer, targets):
    """(N, T, *layer spatial) Grad-CAM maps for ``targets`` (LongTensor N x T), one forward pass."""
    with capture_output(get_layer(model, layer)) as store:
        logits = model(x)
    activation = store["output"]
    maps = []
    for t in range(targets.shape[1]):
        score = logits.gather(1, targets[:, t:t + 1].to(logits.device)).sum()
        # Sample i's score depends only on sample i's activation (eval mode), so the gradient of
        # the batch sum gives every sample its own gradient.
        (grad,) = torch.autograd.grad(score, activation, retain_graph=t < targets.shape[1] - 1)
        maps.append(gradcam_from(activation.detach(), grad))
    return torch.stack(maps, 1), logits.detach()
