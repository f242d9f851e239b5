"""Layer-wise relevance propagation (Bach et al. 2015) with composites of rules, batch-norm
canonisation and the gated-attention rule and attention start of Lu et al. (2023).

The model is copied, canonised (each batch norm that directly follows a convolution or linear
layer is merged into it) and given rule hooks; the caller's model is never touched. A batch norm
that is not merged (e.g. BN -> ReLU -> conv, as in DenseNet) passes relevance unchanged: merging
it into the next convolution the way Binder's canonisation does (scaling the convolution's input
weights by the BN scale and turning the ReLU into a shifted one) leaves every product a_j w_jk of
that convolution as it was, so with biases excluded the relevance is the same.

Composites (which rule each layer gets; "input layer" is any convolution or linear layer that reads
the network input directly, so every path of a multi-path network has one):
- ``zbeta-alphabeta-epsilon`` (default; ``paper001`` is an older name for it): z-beta on input
  layers with the intensity bounds, alpha1-beta0 on convolutions, epsilon (1e-8) on linear layers
  (Lu et al. 2023, §II-F)
- ``epsilon``: epsilon everywhere; ``alpha1beta0`` and ``alpha2beta1``: that rule on every
  convolution and linear layer; ``gamma``: gamma on convolutions, epsilon on linear layers
Biases are left out of the rules (Lu et al. 2023), ``bias=True`` puts them back. Tanh, sigmoid and
softmax pass relevance through; gated products follow ``gate`` ("proportional": Lu et al. 2023,
eqs. 6-7; "all": LRP-all).

``start="logit"`` starts from the target's logit (R = logit, conserved down to the input up to
the epsilon absorbed); ``start="attention"`` starts from the attention scores of a gated-attention
model, each contrast's score holding its attention weight as relevance (Lu et al. 2023, strategy
ii).
"""

import copy

import torch
import torch.nn as nn

from bidsxai.explain.lrp_rules import (
    AlphaBeta,
    Epsilon,
    Gamma,
    Gate,
    Pass,
    ZBeta,
    stabilise,
)
from bidsxai.models.gated_attention import GateProduct, attention_module

LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
COMPOSITES = ("zbeta-alphabeta-epsilon", "epsilon", "alpha1beta0", "alpha2beta1", "gamma")
COMPOSITE_ALIASES = {"paper001": "zbeta-alphabeta-epsilon"}  # older names users may still type


def canonise(model):
    """An eval-mode copy with every batch norm that directly follows a linear or convolutional
    layer (in module order) merged into it, and in-place activations made out of place."""
    work = copy.deepcopy(model).eval()
    previous = None
    for module in work.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
        if len(list(module.children())):
            continue
        if (
            isinstance(module, NORMS)
            and isinstance(previous, LINEAR)
            and previous.weight.shape[0] == module.num_features
        ):
            _merge(previous, module)
        previous = module
    return work


@torch.no_grad()
def _merge(layer, norm):
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
    layer.weight.mul_(scale.reshape(shape))
    layer.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
    norm.reset_parameters()
    norm.running_mean.zero_()
    norm.running_var.fill_(1.0 - norm.eps)  # exactly the identity: 1 / sqrt(var + eps) = 1


def _rules(composite, bounds, epsilon, gamma, bias):
    """(rule for input layers, for convolutions, for linear layers) of a named composite."""
    dense_epsilon = Epsilon(epsilon, bias)
    table = {
        "zbeta-alphabeta-epsilon": (
            ZBeta(*bounds, bias=bias),
            AlphaBeta(1.0, 0.0, bias=bias),
            dense_epsilon,
        ),
        "epsilon": (dense_epsilon, dense_epsilon, dense_epsilon),
        "alpha1beta0": (AlphaBeta(1.0, 0.0, bias=bias),) * 3,
        "alpha2beta1": (AlphaBeta(2.0, 1.0, bias=bias),) * 3,
        "gamma": (Gamma(gamma, bias=bias), Gamma(gamma, bias=bias), dense_epsilon),
    }
    composite = COMPOSITE_ALIASES.get(composite, composite)
    if composite not in table:
        raise ValueError(
            f"unknown LRP composite {composite!r}; choose from {', '.join(COMPOSITES)}"
        )
    return table[composite]


def _install(work, pass_state, rules, gate):
    first, conv, dense = rules
    passing = Pass()
    handles = []

    def linear_hook(module, inputs, output):
        a = inputs[0]
        if a is pass_state["input"] or a._base is pass_state["input"]:
            rule = first
        else:
            rule = dense if isinstance(module, nn.Linear) else conv
        return rule(module, a, output, pass_state)

    for module in work.modules():
        if isinstance(module, LINEAR):
            handles.append(module.register_forward_hook(linear_hook))
        elif isinstance(module, (*NORMS, nn.Tanh, nn.Sigmoid, nn.Softmax)):
            handles.append(
                module.register_forward_hook(
                    lambda m, inputs, output: passing(m, inputs[0], output, pass_state)
                )
            )
        elif isinstance(module, GateProduct):
            handles.append(
                module.register_forward_hook(lambda m, inputs, output: gate.product(*inputs))
            )
    return handles


def lrp_relevance(
    model,
    x,
    targets,
    *,
    composite="zbeta-alphabeta-epsilon",
    start="logit",
    gate="proportional",
    bounds=(0.0, 1.0),
    epsilon=1e-8,
    gamma=0.25,
    bias=False,
):
    """Relevance at the input, (N, T, C, *spatial), for targets (N, T) class indices, and the
    logits (N, classes). With start="attention" the targets do not matter (the attention weights
    are per contrast) and T = 1."""
    if start not in ("logit", "attention"):
        raise ValueError(f"start must be 'logit' or 'attention'; got {start!r}")
    work = canonise(model)
    if start == "attention" and attention_module(work) is None:
        raise ValueError("start='attention' needs a model with gated attention (e.g. gamer_mril)")
    x = x.detach().clone().requires_grad_()
    pass_state = {"input": x}
    handles = _install(
        work, pass_state, _rules(composite, bounds, epsilon, gamma, bias), Gate(gate)
    )
    captured = {}
    if start == "attention":
        handles.append(
            attention_module(work).register_forward_hook(
                lambda m, inputs, output: captured.update(weights=output[1], scores=output[2])
            )
        )
    try:
        with torch.enable_grad():
            logits = work(x)
            seeds = _seeds(logits, targets, captured, start)
            relevance = []
            for i, (output, seed) in enumerate(seeds):
                inputs = [x, *pass_state.get("bounds", ())]
                grads = torch.autograd.grad(
                    output,
                    inputs,
                    grad_outputs=seed,
                    retain_graph=i < len(seeds) - 1,
                    allow_unused=True,
                )
                relevance.append(
                    sum(t.detach() * g for t, g in zip(inputs, grads) if g is not None)
                )
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(relevance, 1), logits.detach()


def _seeds(logits, targets, captured, start):
    """(tensor, gradient seed) pairs whose output * seed is the starting relevance."""
    if start == "attention":
        scores = captured["scores"]
        return [(scores, captured["weights"].detach() / stabilise(scores.detach(), 1e-12))]
    seeds = []
    for t in range(targets.shape[1]):
        seed = torch.zeros_like(logits)
        seed.scatter_(1, targets[:, t : t + 1], 1.0)
        seeds.append((logits, seed))
    return seeds


def lrp(
    model,
    x,
    targets,
    *,
    composite="zbeta-alphabeta-epsilon",
    start="logit",
    gate="proportional",
    bounds=(0.0, 1.0),
    epsilon=1e-8,
    gamma=0.25,
    bias=False,
    channels="sum",
):
    """LRP maps (N, T, *spatial), and no extras (the explain_many method interface): the relevance
    summed over input channels (``channels="sum"``) or the combined map of Lu et al. 2023, eq. 8,
    the sum over contrasts of R_x * x (``"combined"``). From the attention weights the map does not
    depend on the class, so every target gets the same map."""
    if channels not in ("sum", "combined"):
        raise ValueError(f"channels must be 'sum' or 'combined'; got {channels!r}")
    relevance, _ = lrp_relevance(
        model,
        x,
        targets,
        composite=composite,
        start=start,
        gate=gate,
        bounds=bounds,
        epsilon=epsilon,
        gamma=gamma,
        bias=bias,
    )
    if channels == "combined":
        relevance = relevance * x.detach().unsqueeze(1)
    maps = relevance.sum(2)
    return maps.expand(-1, targets.shape[1], *maps.shape[2:]), {}
