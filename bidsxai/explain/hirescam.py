"""HiResCAM (Draelos & Carin 2020): the one place its formula lives.

L^c = sum_k (d y^c / d A^k) * A^k, position by position: Grad-CAM without its averaging of the
gradient over space, so each position is weighted by its own gradient and no position the class
score did not use is lit. It is signed (no ReLU), like CAM: for a layer followed by global average
pooling and one linear layer it is CAM divided by the number of positions, and for a layer
followed by flattening and one linear layer its positions sum to the class score less the bias.
"""


def hirescam_from(activation, gradient):
    """Maps (N, *spatial) from a layer's activation and the gradient of one score per sample."""
    return (gradient * activation).sum(1)
