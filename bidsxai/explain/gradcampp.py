"""Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19; Zhang et al. 2021, eq. 2): the one place its
formula lives.

With Y^c = exp(S^c) and a network that is piecewise linear after the layer (ReLU, max pooling,
linear), d2Y/dA2 = exp(S) g^2 and d3Y/dA3 = exp(S) g^3 with g = dS/dA, so

    alpha_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)       (exp(S) cancels)
    w_k        = sum_ij alpha_ij^k ReLU(dY/dA_ij^k) = exp(S) * sum_ij alpha_ij^k ReLU(g_ij)
    L          = ReLU(sum_k w_k A^k) = exp(S) * ReLU(sum_k w'_k A^k)

The map is returned without the factor exp(S^c): it is one positive number per sample and class,
the same at every voxel, and exp of a logit overflows float32 beyond S = 88 (NaN maps in other
libraries). The eq. 19 scale is the returned map times exp(S^c); the logits are returned too.
Where the denominator is 0 the numerator is 0 as well and alpha is set to 0: no epsilon is added
(an added 1e-6 moves maps 7-33 % off eq. 19 when gradients are small).
"""

import torch


def gradcampp_from(activation, gradient):
    """Maps (N, *spatial) of Grad-CAM++ (eq. 19, without the factor exp(S^c))."""
    spatial = tuple(range(2, activation.dim()))
    g2 = gradient.pow(2)
    denominator = 2 * g2 + activation.sum(dim=spatial, keepdim=True) * gradient.pow(3)
    alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * torch.relu(gradient)).sum(dim=spatial, keepdim=True)
    return torch.relu((weights * activation).sum(1))
