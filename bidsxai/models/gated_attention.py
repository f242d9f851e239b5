"""The gated attention of GAMER-MRI (Lu et al. 2023 eqs. 1-3): one attention weight per contrast.

a_l = softmax_l(w' (tanh(U m_l) * sigm(V m_l))) and n = sum_l a_l m_l. The element-wise products
are ``GateProduct`` modules, and tanh, sigmoid and softmax are modules too, so that LRP can give
them their own rules (the gate rule of eqs. 6-7, pass-through for the activations).
"""

import torch
import torch.nn as nn

from bidsxai.models.ensemble import FoldEnsemble


class GateProduct(nn.Module):
    """h = signal * gate, element-wise (broadcasting)."""

    def forward(self, signal, gate):
        return signal * gate


class GatedAttention(nn.Module):
    """m (N, L, M) hidden vectors of L contrasts -> (n (N, M), weights a (N, L), scores (N, L))."""

    def __init__(self, features, hidden=16):
        super().__init__()
        self.signal = nn.Linear(features, hidden)
        self.tanh = nn.Tanh()
        self.gate = nn.Linear(features, hidden)
        self.sigmoid = nn.Sigmoid()
        self.product = GateProduct()
        self.score = nn.Linear(hidden, 1)
        self.softmax = nn.Softmax(dim=1)
        self.combine = GateProduct()

    def forward(self, m):
        h = self.product(self.tanh(self.signal(m)), self.sigmoid(self.gate(m)))
        scores = self.score(h).squeeze(-1)
        weights = self.softmax(scores)
        return self.combine(m, weights.unsqueeze(-1)).sum(1), weights, scores


def attention_module(model):
    """The model's gated attention, or None."""
    return next((m for m in model.modules() if isinstance(m, GatedAttention)), None)


@torch.no_grad()
def attention_weights(model, *inputs):
    """The attention weights (N, L) of a gated-attention model for one forward pass; of an
    ensemble (``models.ensemble``), its members' mean."""
    if isinstance(model, FoldEnsemble):
        return torch.stack([attention_weights(m, *inputs) for m in model.members.values()]).mean(0)
    store = {}
    handle = attention_module(model).register_forward_hook(
        lambda module, args, output: store.update(weights=output[1])
    )
    try:
        model(*inputs)
    finally:
        handle.remove()
    return store["weights"]
