"""LRP rules as output replacements: each rule returns a tensor equal to the layer's true output
whose gradient, times the layer's input, redistributes the relevance of the output by the rule.

With relevance written as R = output * gradient at every layer, a rule that returns
    y.detach() + sum_i c_i * (z_i - z_i.detach()) * (y / z_i).detach()
makes input * gradient = sum_i c_i * a * dz_i/da * R / z_i, which is the rule's formula when z_i
are the rule's (bias-free, by default, as Lu et al. 2023 requires) pre-activations. The forward
values are the network's own (bias included), so later layers see what the network computes.

Rules (Montavon et al. 2019; Bach et al. 2015), a the layer input, w its weights:
- epsilon: R_j = sum_k a_j w_jk / (z_k + eps sign z_k) R_k
- alpha-beta: R_j = sum_k [alpha (a w)+_jk / z+_k - beta (a w)-_jk / z-_k] R_k, where
  (a w)+ = a+ w+ + a- w- and (a w)- = a+ w- + a- w+ (alpha1beta0 is z+)
- z-beta (input layer, bounds l <= a <= h): R_j = sum_k (a_j w_jk - l w+_jk - h w-_jk) / z_k R_k
- gamma: w + gamma w+ for outputs z > 0 and w + gamma w- for z < 0, applied to a+ and a-
  separately as zennit does (each sign of input meets the weights that push the output further
  from zero)
- pass: relevance unchanged (elementwise layers: batch norm left unmerged, tanh, sigmoid)
- gate (Lu et al. 2023 eqs. 6-7): R_s = |s| / (|s| + |g|) R_h, R_g = |g| / (|s| + |g|) R_h for
  h = s * g; ``all`` gives the signal everything (LRP-all, Arras et al. 2017).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def stabilise(z, epsilon):
    """z + epsilon * sign(z), with sign(0) taken as +1 (never divides by 0)."""
    return z + epsilon * torch.where(z >= 0, 1.0, -1.0)


def _share(y, terms):
    """y's value with gradient sum_i c_i (y / den_i) dz_i for terms (c_i, z_i, den_i)."""
    out = y.detach()
    for coefficient, z, denominator in terms:
        out = out + coefficient * (z - z.detach()) * (y / denominator).detach()
    return out


def linear_op(module, a, weight):
    """The module's linear map of ``a`` with ``weight`` and no bias."""
    if isinstance(module, nn.Linear):
        return F.linear(a, weight)
    return module._conv_forward(a, weight, None)


def _add_bias(z, bias):
    """z plus a per-channel bias vector (None adds nothing)."""
    return z if bias is None else z + bias.reshape((1, -1) + (1,) * (z.dim() - 2))


def _bias(module, include):
    return module.bias if include and module.bias is not None else None


class Epsilon:
    def __init__(self, epsilon=1e-6, bias=False):
        self.epsilon, self.bias = epsilon, bias

    def __call__(self, module, a, y, pass_state):
        z = _add_bias(linear_op(module, a, module.weight), _bias(module, self.bias))
        return _share(y, [(1.0, z, stabilise(z, self.epsilon))])


class AlphaBeta:
    def __init__(self, alpha=1.0, beta=0.0, epsilon=1e-6, bias=False):
        if alpha - beta != 1 or beta < 0:
            raise ValueError(
                f"alpha - beta must be 1 and beta >= 0; got alpha={alpha}, beta={beta}"
            )
        self.alpha, self.beta, self.epsilon, self.bias = alpha, beta, epsilon, bias

    def __call__(self, module, a, y, pass_state):
        w_pos, w_neg = module.weight.clamp(min=0), module.weight.clamp(max=0)
        a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)
        positive = linear_op(module, a_pos, w_pos) + linear_op(module, a_neg, w_neg)
        negative = linear_op(module, a_pos, w_neg) + linear_op(module, a_neg, w_pos)
        bias = _bias(module, self.bias)
        if bias is not None:
            positive, negative = (
                _add_bias(positive, bias.clamp(min=0)),
                _add_bias(negative, bias.clamp(max=0)),
            )
        terms = [(self.alpha, positive, stabilise(positive, self.epsilon))]
        if self.beta:
            terms.append((-self.beta, negative, stabilise(negative, self.epsilon)))
        return _share(y, terms)


class ZBeta:
    """For input layers only (``a`` is the network input or a view of it, e.g. one contrast of a
    multi-path network): the bounds enter as inputs whose relevance is subtracted. They are views
    of one pair of input-shaped tensors, laid over the input exactly as ``a`` is, so each path's
    bound terms land on its own channels."""

    def __init__(self, low=0.0, high=1.0, epsilon=1e-6, bias=False):
        self.low, self.high, self.epsilon, self.bias = low, high, epsilon, bias

    def __call__(self, module, a, y, pass_state):
        if "bounds" not in pass_state:
            x = pass_state["input"]
            pass_state["bounds"] = (
                torch.full_like(x, self.low).requires_grad_(),
                torch.full_like(x, self.high).requires_grad_(),
            )
        low, high = (
            torch.as_strided(b, a.size(), a.stride(), a.storage_offset())
            for b in pass_state["bounds"]
        )
        z = (
            linear_op(module, a, module.weight)
            - linear_op(module, low, module.weight.clamp(min=0))
            - linear_op(module, high, module.weight.clamp(max=0))
        )
        z = _add_bias(z, _bias(module, self.bias))
        return _share(y, [(1.0, z, stabilise(z, self.epsilon))])


class Gamma:
    def __init__(self, gamma=0.25, epsilon=1e-6, bias=False):
        self.gamma, self.epsilon, self.bias = gamma, epsilon, bias

    def __call__(self, module, a, y, pass_state):
        w = module.weight
        up = w + self.gamma * w.clamp(min=0)
        down = w + self.gamma * w.clamp(max=0)
        a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)
        toward_positive = linear_op(module, a_pos, up) + linear_op(module, a_neg, down)
        toward_negative = linear_op(module, a_pos, down) + linear_op(module, a_neg, up)
        bias = _bias(module, self.bias)
        if bias is not None:
            toward_positive = _add_bias(toward_positive, bias + self.gamma * bias.clamp(min=0))
            toward_negative = _add_bias(toward_negative, bias + self.gamma * bias.clamp(max=0))
        positive, negative = (y > 0).to(y.dtype), (y < 0).to(y.dtype)
        return _share(
            y,
            [
                (positive, toward_positive, stabilise(toward_positive, self.epsilon)),
                (negative, toward_negative, stabilise(toward_negative, self.epsilon)),
            ],
        )


class Pass:
    """Relevance passes unchanged through an elementwise layer: R_in = R_out."""

    def __init__(self, epsilon=1e-12):
        self.epsilon = epsilon

    def __call__(self, module, a, y, pass_state):
        return _share(y, [(1.0, a, stabilise(a, self.epsilon))])


class Gate:
    """The product h = s * g of a gated attention: relevance split by |s| : |g| (Lu et al. 2023) or
    all to the signal (``mode='all'``)."""

    def __init__(self, mode="proportional"):
        if mode not in ("proportional", "all"):
            raise ValueError(f"gate rule must be 'proportional' or 'all'; got {mode!r}")
        self.mode = mode

    def product(self, signal, gate):
        h = signal * gate
        if self.mode == "all":
            share_s, share_g = torch.ones_like(h), torch.zeros_like(h)
        else:
            total = signal.abs() + gate.abs()
            safe = torch.where(total > 0, total, 1.0)
            share_s, share_g = signal.abs() / safe, gate.abs() / safe
        # R_s = s * dh/ds-modified * R_h / h = share_s * R_h, using h / s = g (no division by s).
        return (
            h.detach()
            + (signal - signal.detach()) * (share_s * gate).detach()
            + (gate - gate.detach()) * (share_g * signal).detach()
        )
