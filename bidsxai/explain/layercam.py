"""LayerCAM (Jiang et al. 2021): the one place its formula lives.

L^c = ReLU(sum_k ReLU(d y^c / d A^k) * A^k), position by position: each position of each feature
map is weighted by its own positive gradient, so the map keeps the layer's resolution and works at
earlier, finer layers, where Grad-CAM's one weight per channel blurs.
"""

import torch


def layercam_from(activation, gradient):
    """Maps (N, *spatial) from a layer's activation and the gradient of one score per sample."""
    return torch.relu((torch.relu(gradient) * activation).sum(1))
