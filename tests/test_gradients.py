"""Saliency, SmoothGrad and integrated gradients against captum and the methods' promises."""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from networks import gap_net
from torch import nn

from bidsxai.explain import explain, explain_many
from bidsxai.explain.gradients import make_baseline, quadrature_rule


@pytest.mark.parametrize("dims", [2, 3])
def test_saliency_matches_captum(dims):
    net = gap_net(dims)
    x = torch.randn(2, 2, *([5] * dims))
    for c in range(3):
        absolute = Saliency(net).attribute(x, target=c, abs=True)
        signed = Saliency(net).attribute(x, target=c, abs=False)
        torch.testing.assert_close(explain(net, x, "saliency", target=c), absolute.amax(1))
        torch.testing.assert_close(
            explain(net, x, "saliency", target=c, mode="signed"), signed.sum(1)
        )


def test_smoothgrad_without_noise_is_saliency_and_is_seeded():
    net = gap_net(3)
    x = torch.randn(2, 2, 5, 5, 5)
    torch.testing.assert_close(
        explain(net, x, "smoothgrad", target=1, noise=0.0, samples=3),
        explain(net, x, "saliency", target=1),
    )
    a = explain(net, x, "smoothgrad", target=1, samples=4, seed=3)
    assert torch.equal(a, explain(net, x, "smoothgrad", target=1, samples=4, seed=3))
    assert not torch.equal(a, explain(net, x, "smoothgrad", target=1, samples=4, seed=4))
    # Each sample's noise is its own: in a batch it gets the map it gets alone.
    alone = [explain(net, x[i : i + 1], "smoothgrad", target=1, samples=4, seed=3) for i in (0, 1)]
    torch.testing.assert_close(a, torch.cat(alone))


@pytest.mark.parametrize("quad", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_integrated_gradients_match_captum(quad):
    """captum's riemann_trapezoid puts n points on [0, 1] but weights them 1/n (ends halved), so
    its weights sum to (n - 1)/n: the true trapezoid rule is captum's result times n/(n - 1)."""
    steps = 16
    scale = steps / (steps - 1) if quad == "riemann_trapezoid" else 1.0
    net = gap_net(3).double()
    x = torch.randn(2, 2, 5, 5, 5, dtype=torch.float64)
    baseline = make_baseline(x, "blur", blur_sigma=1.0)
    result = explain_many(
        net, x, ["ig"], targets="all", steps=steps, baseline="blur", blur_sigma=1.0, quadrature=quad
    )
    captum = IntegratedGradients(net)
    for c in range(3):
        ref = captum.attribute(x, baselines=baseline, target=c, n_steps=steps, method=quad)
        torch.testing.assert_close(result["ig"][:, c], ref.sum(1) * scale, rtol=1e-8, atol=1e-10)


def test_ig_completeness_error_shrinks_with_steps():
    net = gap_net(3).double()
    x = torch.randn(2, 2, 5, 5, 5, dtype=torch.float64)
    errors = [
        explain_many(net, x, ["ig"], targets="all", steps=s, quadrature="riemann_right")[
            "ig_completeness_error"
        ]
        .max()
        .item()
        for s in (4, 16, 64)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_ig_of_a_linear_model_is_weight_times_input():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double().eval()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    ig = explain(net, x, "ig", target=2, steps=8)
    expected = (net[1].weight[2].reshape(2, 4, 4) * x).sum(1)
    torch.testing.assert_close(ig, expected.detach())


def test_quadrature_weights_sum_to_one():
    for method in (
        "gausslegendre",
        "riemann_trapezoid",
        "riemann_left",
        "riemann_right",
        "riemann_middle",
    ):
        points, weights = quadrature_rule(10, method)
        assert abs(weights.sum() - 1) < 1e-12 and points.min() >= 0 and points.max() <= 1
