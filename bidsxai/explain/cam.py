"""CAM (Zhou et al. 2016; Zhang et al. 2021): L^c = sum_k w_k^c A^k, with w^c the row of the linear
layer that follows global average pooling. Only defined for such (GAP) models; no ReLU, as in the
paper."""

from torch import nn


def classifier_weights(model, channels, name=None):
    """The (n_classes, channels) weight of the linear layer after GAP (default: the last Linear)."""
    modules = dict(model.named_modules())
    if name is not None:
        linear = modules.get(name)
    else:
        linears = [m for m in modules.values() if isinstance(m, nn.Linear)]
        linear = linears[-1] if linears else None
    if not isinstance(linear, nn.Linear) or linear.in_features != channels:
        raise ValueError(
            "CAM needs a model whose layer is followed by global average pooling and "
            f"a linear layer with {channels} inputs (a GAP model); use gradcam instead"
        )
    return linear.weight


def cam_from(activation, class_weights):
    """Maps (N, *spatial) from the activation and one weight row per sample (N, K)."""
    shape = class_weights.shape + (1,) * (activation.dim() - 2)
    return (class_weights.reshape(shape) * activation).sum(1)
