"""Grad-CAM (Selvaraju et al.; Zhang et al. 2021, eq. 1): the one place its formula lives.

w_k^c = mean over *all* spatial axes of d y^c / d A^k (one weight per channel and sample, also
in 3D); L^c = ReLU(sum_k w_k^c A^k).
"""

import torch


def gradcam_from(activation, gradient):
    """Maps (N, *spatial) from a layer's activation and the gradient of one score per sample."""
    spatial = tuple(range(2, activation.dim()))
    weights = gradient.mean(dim=spatial, keepdim=True)
    return torch.relu((weights * activation).sum(1))
