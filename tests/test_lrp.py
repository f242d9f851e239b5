"""LRP against zennit (bias-free rules, batch-norm merging) and against the properties the rules
promise: conservation, the gate rule's split, LRP-0 = IG = w * x on a linear model."""

import pytest
import torch
import torch.nn as nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import AlphaBeta, Epsilon, Gamma, Norm, Pass, ZBox

from bidsxai.explain import explain, explain_many
from bidsxai.explain.gradients import integrated_gradients
from bidsxai.explain.lrp import canonise, lrp_relevance
from bidsxai.models.gated_attention import (
    GatedAttention,
    GateProduct,
    attention_weights,
)
from bidsxai.models.registry import get_architecture

BIAS_FREE = {"zero_params": "bias"}


def _net(dim, batch_norm_after_relu=False, batch_norm=True):
    conv, norm, pool = {
        2: (nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d),
        3: (nn.Conv3d, nn.BatchNorm3d, nn.AvgPool3d),
    }[dim]
    torch.manual_seed(dim)
    layers = [
        conv(2, 5, 3, padding=1),
        norm(5) if batch_norm else nn.Identity(),
        nn.ReLU(),
        nn.MaxPool2d(2) if dim == 2 else nn.MaxPool3d(2),
        conv(5, 6, 3, padding=1),
        nn.LeakyReLU(0.1),
    ]
    if batch_norm_after_relu:
        layers += [norm(6), nn.ReLU()]  # BN -> ReLU -> conv, as in DenseNet: not merged
    layers += [
        conv(6, 4, 3, padding=1),
        nn.ReLU(),
        pool(2),
        nn.Flatten(),
        nn.Linear(4 * 2**dim, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    ]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net.eval()


def _zennit(net, x, targets, conv_rule, dense_rule, first_rule=None):
    conv = (nn.Conv2d, nn.Conv3d)
    layer_map = [
        (conv, conv_rule),
        (nn.Linear, dense_rule),
        ((nn.AvgPool2d, nn.AvgPool3d), Norm(stabilizer=1e-300)),
        ((nn.LeakyReLU, nn.BatchNorm2d, nn.BatchNorm3d), Pass()),
    ]
    composite = SpecialFirstLayerMapComposite(
        layer_map=layer_map,
        first_map=[(conv, first_rule or conv_rule)],
        canonizers=[SequentialMergeBatchNorm()],
    )
    logits = net(x).detach()
    seed = torch.zeros_like(logits).scatter_(1, targets, 1.0) * logits
    with Gradient(net, composite) as attributor:
        _, relevance = attributor(x, seed)
    return relevance


CASES = {
    "epsilon": (
        lambda: Epsilon(1e-6, **BIAS_FREE),
        lambda: Epsilon(1e-6, **BIAS_FREE),
        None,
        {"epsilon": 1e-6},
    ),
    "alpha1beta0": (
        lambda: AlphaBeta(1.0, 0.0, **BIAS_FREE),
        lambda: AlphaBeta(1.0, 0.0, **BIAS_FREE),
        None,
        {},
    ),
    "alpha2beta1": (
        lambda: AlphaBeta(2.0, 1.0, **BIAS_FREE),
        lambda: AlphaBeta(2.0, 1.0, **BIAS_FREE),
        None,
        {},
    ),
    "gamma": (
        lambda: Gamma(0.25, **BIAS_FREE),
        lambda: Epsilon(1e-6, **BIAS_FREE),
        None,
        {"epsilon": 1e-6},
    ),
    "paper001": (
        lambda: AlphaBeta(1.0, 0.0, **BIAS_FREE),
        lambda: Epsilon(1e-8, **BIAS_FREE),
        lambda: ZBox(0.0, 1.0, **BIAS_FREE),
        {},
    ),
}


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("composite", sorted(CASES))
def test_rules_equal_zennit(dim, composite):
    net = _net(dim, batch_norm=False)
    x = torch.rand(3, 2, *(8,) * dim, dtype=torch.float64)
    targets = torch.tensor([[0], [2], [1]])
    conv_rule, dense_rule, first_rule, params = CASES[composite]
    ours, logits = lrp_relevance(net, x, targets, composite=composite, **params)
    ref = _zennit(net, x, targets, conv_rule(), dense_rule(), first_rule() if first_rule else None)
    torch.testing.assert_close(ours[:, 0], ref, rtol=1e-7, atol=1e-10)
    assert torch.equal(logits, net(x).detach())


def test_bias_kept_on_request_equals_zennit_with_biases():
    net = _net(2, batch_norm=False)
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    targets = torch.tensor([[1], [1]])
    ours, _ = lrp_relevance(net, x, targets, composite="alpha2beta1", bias=True)
    ref = _zennit(net, x, targets, AlphaBeta(2.0, 1.0), AlphaBeta(2.0, 1.0))
    torch.testing.assert_close(ours[:, 0], ref, rtol=1e-7, atol=1e-10)


def test_batch_norm_merging_equals_zennits_weights_and_keeps_the_function_exactly():
    import copy

    net = _net(3)
    x = torch.rand(2, 2, 8, 8, 8, dtype=torch.float64)
    ours = canonise(net)
    theirs = copy.deepcopy(net)
    instances = SequentialMergeBatchNorm().apply(theirs)
    torch.testing.assert_close(ours[0].weight, theirs[0].weight, rtol=0, atol=0)
    torch.testing.assert_close(ours[0].bias, theirs[0].bias, rtol=0, atol=0)
    torch.testing.assert_close(ours(x), net(x), rtol=1e-13, atol=1e-15)
    # zennit sets the merged batch norm to running_var = 1, so it still divides by sqrt(1 + eps)
    assert (theirs(x) - net(x)).abs().max() > 1e-8
    for instance in instances:
        instance.remove()
    assert isinstance(ours[1], nn.BatchNorm3d)
    torch.testing.assert_close(ours[1](ours[0](x)), ours[0](x), rtol=1e-15, atol=1e-15)
    # LRP of the network equals LRP of the merged network written out without the batch norm
    targets = torch.tensor([[1], [2]])
    written_out = nn.Sequential(ours[0], nn.Identity(), *list(ours)[2:])
    for composite in ("paper001", "alpha2beta1", "gamma"):
        merged, _ = lrp_relevance(net, x, targets, composite=composite)
        by_hand, _ = lrp_relevance(written_out, x, targets, composite=composite)
        torch.testing.assert_close(merged, by_hand, rtol=1e-9, atol=1e-12)


def test_unmerged_batch_norm_before_relu_and_conv_passes_relevance_as_zennit_pass():
    net = _net(3, batch_norm_after_relu=True, batch_norm=False)
    x = torch.rand(2, 2, 8, 8, 8, dtype=torch.float64)
    targets = torch.tensor([[2], [0]])
    ours, _ = lrp_relevance(net, x, targets, composite="epsilon", epsilon=1e-6)
    ref = _zennit(net, x, targets, Epsilon(1e-6, **BIAS_FREE), Epsilon(1e-6, **BIAS_FREE))
    torch.testing.assert_close(ours[:, 0], ref, rtol=1e-7, atol=1e-10)


def test_epsilon_conserves_the_logit_and_merging_keeps_the_function():
    net = _net(2, batch_norm_after_relu=True)
    x = torch.rand(4, 2, 8, 8, dtype=torch.float64)
    targets = torch.tensor([[0, 1, 2]] * 4)
    relevance, logits = lrp_relevance(net, x, targets, composite="epsilon", epsilon=1e-12)
    torch.testing.assert_close(relevance.sum((2, 3, 4)), logits, rtol=1e-6, atol=1e-9)


class _TwoPaths(nn.Module):
    """Each input channel through its own convolution, as the encoders of GAMER-MRIL."""

    def __init__(self):
        super().__init__()
        self.paths = nn.ModuleList(nn.Conv3d(1, 3, 3, padding=1) for _ in range(2))
        self.fc = nn.Linear(2 * 3 * 6**3, 3)

    def forward(self, x):
        return self.fc(
            torch.cat(
                [torch.relu(conv(x[:, i : i + 1])).flatten(1) for i, conv in enumerate(self.paths)],
                1,
            )
        )


def test_z_beta_on_every_path_of_a_multi_path_network_conserves_per_path():
    """z-beta then epsilon is conservative, and each path's bound terms stay on its channel."""
    torch.manual_seed(2)
    net = _TwoPaths().double().eval()
    x = torch.rand(2, 2, 6, 6, 6, dtype=torch.float64)
    targets = torch.tensor([[0], [2]])
    relevance, logits = lrp_relevance(net, x, targets, composite="paper001", epsilon=1e-12)
    torch.testing.assert_close(
        relevance.sum((2, 3, 4, 5))[:, 0], logits.gather(1, targets)[:, 0], rtol=1e-5, atol=1e-9
    )
    for i in range(2):  # each path alone: the other silenced, its relevance all on its own channel
        single = _TwoPaths().double().eval()
        single.load_state_dict(net.state_dict())
        with torch.no_grad():
            single.paths[1 - i].weight.zero_()
            single.paths[1 - i].bias.fill_(-1.0)  # the other path silent: its ReLU outputs are 0
        alone, single_logits = lrp_relevance(
            single, x, targets, composite="paper001", epsilon=1e-12
        )
        assert float(alone[:, 0, 1 - i].abs().sum()) == 0
        torch.testing.assert_close(
            alone[:, 0, i].sum((1, 2, 3)),
            single_logits.gather(1, targets)[:, 0],
            rtol=1e-5,
            atol=1e-9,
        )


def test_linear_model_lrp0_equals_integrated_gradients_equals_w_times_x():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 4, 3, bias=False)).double().eval()
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    targets = torch.tensor([[2], [0]])
    relevance, _ = lrp_relevance(net, x, targets, composite="epsilon", epsilon=1e-300)
    w_times_x = net[1].weight[targets[:, 0]].reshape(2, 2, 5, 4) * x
    torch.testing.assert_close(relevance[:, 0], w_times_x.detach(), rtol=1e-10, atol=1e-12)
    ig, _ = integrated_gradients(net, x, targets, steps=8)
    torch.testing.assert_close(relevance[:, 0].sum(1), ig[:, 0], rtol=1e-8, atol=1e-10)


def test_gate_rule_splits_relevance_by_absolute_size_and_is_symmetric():
    from bidsxai.explain.lrp_rules import Gate

    signal = torch.tensor([0.5, -0.2, 0.9], dtype=torch.float64, requires_grad=True)
    gate = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64, requires_grad=True)
    h = Gate("proportional").product(signal, gate)
    relevance_h = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    gs, gg = torch.autograd.grad(h, [signal, gate], grad_outputs=relevance_h / h.detach())
    r_s, r_g = signal.detach() * gs, gate.detach() * gg
    torch.testing.assert_close(r_s + r_g, relevance_h)
    total = signal.abs() + gate.abs()
    torch.testing.assert_close(r_s, (signal.abs() / total * relevance_h).detach())
    swapped = Gate("proportional").product(gate, signal)
    gg2, gs2 = torch.autograd.grad(
        swapped, [gate, signal], grad_outputs=relevance_h / swapped.detach()
    )
    torch.testing.assert_close(gate.detach() * gg2, r_g)
    h_all = Gate("all").product(signal, gate)
    gs3, gg3 = torch.autograd.grad(h_all, [signal, gate], grad_outputs=relevance_h / h_all.detach())
    torch.testing.assert_close(signal.detach() * gs3, relevance_h)
    assert torch.all(gg3 == 0)


@pytest.fixture
def gamer():
    torch.manual_seed(3)
    model = get_architecture("gamer_mril").build(3, 2, (24, 24, 24)).double().eval()
    return model, torch.rand(2, 3, 24, 24, 24, dtype=torch.float64)


def test_gamer_attention_start_gives_each_contrast_its_weight(gamer):
    model, x = gamer
    relevance, _ = lrp_relevance(
        model, x, None, composite="epsilon", start="attention", epsilon=1e-12
    )
    per_contrast = relevance[:, 0].sum((2, 3, 4))
    torch.testing.assert_close(per_contrast, attention_weights(model, x), rtol=1e-7, atol=1e-9)
    logit_start, logits = lrp_relevance(
        model, x, torch.tensor([[1], [0]]), composite="epsilon", epsilon=1e-12
    )
    # bias-free rules conserve the logit from the top down (the age input is 0 here)
    expected = logits.gather(1, torch.tensor([[1], [0]]))[:, 0]
    torch.testing.assert_close(logit_start[:, 0].sum((1, 2, 3, 4)), expected, rtol=1e-6, atol=1e-9)


def test_gamer_lrp_through_explain_api_and_model_untouched(gamer):
    model, x = gamer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    maps = explain_many(model, x, ["lrp"], targets="all", start="logit", channels="combined")["lrp"]
    assert maps.shape == (2, 2, 24, 24, 24) and torch.isfinite(maps).all()
    single = explain(model, x[:1], "lrp", target=1, channels="combined")
    torch.testing.assert_close(single[0], maps[0, 1], rtol=1e-9, atol=1e-12)  # batch = one by one
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules()) and not model.training
    with pytest.raises(ValueError, match="gated attention"):
        explain(
            nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
            torch.rand(1, 1, 2, 2),
            "lrp",
            start="attention",
        )


def test_gated_attention_weights_sum_to_one():
    attention = GatedAttention(6, 4).double()
    m = torch.randn(5, 3, 6, dtype=torch.float64)
    combined, weights, scores = attention(m)
    torch.testing.assert_close(weights.sum(1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(combined, (weights[..., None] * m).sum(1))
    assert isinstance(attention.product, GateProduct)


def test_the_class_sensitivity_of_lrp_is_what_sixt_et_al_found():
    """Sixt et al. (2020): rules that propagate positive relevance only (alpha1-beta0, z+) give
    nearly the same map for every class. Here the two classes' maps of one input correlate above
    0.9 under alpha1-beta0, less under the default composite, and hardly at all for saliency;
    the evaluation's control-otherclass-<method> rows measure the same on real data."""
    import numpy as np
    from networks import tiny_net
    from scipy.stats import spearmanr

    def class_agreement(method, **params):
        rhos = []
        for seed in range(5):
            torch.manual_seed(seed)
            x, net = torch.rand(1, 2, 10, 12, 8), tiny_net(3)
            a, b = (explain(net, x, method, target=t, **params)[0].numpy() for t in (0, 1))
            rhos.append(spearmanr(a.ravel(), b.ravel())[0])
        return np.array(rhos)

    blind = class_agreement("lrp", composite="alpha1beta0")
    default = class_agreement("lrp")
    assert (blind > 0.9).all()
    assert default.mean() < blind.mean() - 0.1 and (default < 0.9).all()
    assert class_agreement("saliency").mean() < 0.5
