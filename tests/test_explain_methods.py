"""CAM, Grad-CAM++, saliency, SmoothGrad and integrated gradients: against independent references
(eq. 19 written out with autograd derivatives, torchcam, captum) and the methods' promises."""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from bidsxai.explain import explain, explain_many
from bidsxai.explain.gradients import make_baseline, quadrature_rule


def gap_net(dims, seed=0):
    conv, pool = {2: (nn.Conv2d, nn.AdaptiveAvgPool2d), 3: (nn.Conv3d, nn.AdaptiveAvgPool3d)}[dims]
    torch.manual_seed(seed)
    return nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), conv(4, 6, 3, padding=1), nn.ReLU(),
                         pool(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def maxpool_net(dims):
    """A non-GAP head (max pooling, two linear layers) after the explained layer."""
    conv, pool = {2: (nn.Conv2d, nn.MaxPool2d), 3: (nn.Conv3d, nn.MaxPool3d)}[dims]
    torch.manual_seed(1)
    size = 6 * (2 ** dims)
    return nn.Sequential(conv(2, 6, 3, padding=1), nn.ReLU(), pool(2), nn.Flatten(),
                         nn.Linear(size, 5), nn.ReLU(), nn.Linear(5, 3)).eval()


def gradcampp_eq19(net, split, x, n, c):
    """Eq. 19 of Chattopadhyay et al. with Y = exp(S), every derivative taken by autograd."""
    net = net.double()
    activation = net[:split](x.double())[n:n + 1].detach().requires_grad_(True)
    y = torch.exp(net[split:](activation)[0, c])
    (d1,) = torch.autograd.grad(y, activation, create_graph=True)
    flat1 = d1.flatten()
    d2 = torch.zeros_like(flat1)
    d3 = torch.zeros_like(flat1)
    for i in range(flat1.numel()):
        (g2,) = torch.autograd.grad(flat1[i], activation, create_graph=True)
        d2[i] = g2.flatten()[i]
        if g2.flatten()[i].requires_grad:
            (g3,) = torch.autograd.grad(g2.flatten()[i], activation, retain_graph=True)
            d3[i] = g3.flatten()[i]
    d2, d3 = d2.reshape(d1.shape), d3.reshape(d1.shape)
    spatial = tuple(range(2, activation.dim()))
    sum_a = activation.detach().sum(dim=spatial, keepdim=True)
    denominator = 2 * d2 + sum_a * d3
    alpha = torch.where(denominator != 0, d2 / torch.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * torch.relu(d1.detach())).sum(dim=spatial, keepdim=True)
    return torch.relu((weights * activation.detach()).sum(1))[0], y.detach()


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcampp_equals_eq19_at_a_non_final_layer(dims):
    net = maxpool_net(dims)
    x = torch.randn(2, 2, *([4] * dims)) * 0.5
    ours = explain_many(net.double(), x.double(), ["gradcampp"], layer="1", targets="all",
                        upsample=False)["gradcampp"]
    for n in range(2):
        for c in range(3):
            reference, exp_score = gradcampp_eq19(net, 2, x, n, c)
            # bidsxai returns eq. 19 without the voxel-independent factor exp(S^c)
            torch.testing.assert_close(ours[n, c] * exp_score, reference, rtol=1e-9, atol=1e-12)


def test_gradcampp_does_not_overflow_on_large_logits():
    net = gap_net(3)
    with torch.no_grad():
        net[-1].weight.mul_(1e4)  # logits in the hundreds: exp(S) is inf in float32
    x = torch.randn(2, 2, 5, 5, 5)
    result = explain_many(net, x, ["gradcampp"], layer="3", targets="all")
    assert torch.isinf(torch.exp(result["logits"])).any()
    assert torch.isfinite(result["gradcampp"]).all() and result["gradcampp"].max() > 0


@pytest.mark.parametrize("dims", [2, 3])
def test_cam_matches_torchcam_and_is_grad_cam_without_relu_on_gap_models(dims):
    from torchcam.methods import CAM

    net = gap_net(dims)
    x = torch.randn(3, 2, *([6] * dims))
    ours = explain_many(net, x, ["cam", "gradcam"], layer="3", targets="all", upsample=False)
    extractor = CAM(net, target_layer="3", fc_layer="6")  # torchcam's CAM has no ReLU either
    scores = net(x)
    for c in range(3):
        ref = extractor(class_idx=c, scores=scores, normalized=False)[0]
        torch.testing.assert_close(ours["cam"][:, c], ref, rtol=1e-5, atol=1e-6)
    extractor.remove_hooks()
    # Grad-CAM on a GAP model: dy/dA = w / Z everywhere, so Grad-CAM = ReLU(CAM) / Z
    z = 6 ** dims
    torch.testing.assert_close(ours["gradcam"], torch.relu(ours["cam"]) / z, rtol=1e-5, atol=1e-7)
    assert (ours["cam"] < 0).any()  # CAM itself keeps negative evidence, as in the paper


def test_cam_refuses_models_without_gap():
    with pytest.raises(ValueError, match="GAP model"):
        explain(maxpool_net(2), torch.randn(1, 2, 4, 4), "cam", layer="1")


@pytest.mark.parametrize("dims", [2, 3])
def test_saliency_matches_captum(dims):
    net = gap_net(dims)
    x = torch.randn(2, 2, *([5] * dims))
    for c in range(3):
        absolute = Saliency(net).attribute(x, target=c, abs=True)
        signed = Saliency(net).attribute(x, target=c, abs=False)
        torch.testing.assert_close(explain(net, x, "saliency", target=c), absolute.amax(1))
        torch.testing.assert_close(explain(net, x, "saliency", target=c, mode="signed"), signed.sum(1))


def test_smoothgrad_without_noise_is_saliency_and_is_seeded():
    net = gap_net(3)
    x = torch.randn(2, 2, 5, 5, 5)
    torch.testing.assert_close(explain(net, x, "smoothgrad", target=1, noise=0.0, samples=3),
                               explain(net, x, "saliency", target=1))
    a = explain(net, x, "smoothgrad", target=1, samples=4, seed=3)
    assert torch.equal(a, explain(net, x, "smoothgrad", target=1, samples=4, seed=3))
    assert not torch.equal(a, explain(net, x, "smoothgrad", target=1, samples=4, seed=4))


@pytest.mark.parametrize("quad", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_integrated_gradients_match_captum(quad):
    """captum's riemann_trapezoid puts n points on [0, 1] but weights them 1/n (ends halved), so
    its weights sum to (n - 1)/n: the true trapezoid rule is captum's result times n/(n - 1)."""
    steps = 16
    scale = steps / (steps - 1) if quad == "riemann_trapezoid" else 1.0
    net = gap_net(3).double()
    x = torch.randn(2, 2, 5, 5, 5, dtype=torch.float64)
    baseline = make_baseline(x, "blur", blur_sigma=1.0)
    result = explain_many(net, x, ["ig"], targets="all", steps=steps, baseline="blur",
                          blur_sigma=1.0, quadrature=quad)
    captum = IntegratedGradients(net)
    for c in range(3):
        ref = captum.attribute(x, baselines=baseline, target=c, n_steps=steps, method=quad)
        torch.testing.assert_close(result["ig"][:, c], ref.sum(1) * scale, rtol=1e-8, atol=1e-10)


def test_ig_completeness_error_shrinks_with_steps():
    net = gap_net(3).double()
    x = torch.randn(2, 2, 5, 5, 5, dtype=torch.float64)
    errors = [explain_many(net, x, ["ig"], targets="all", steps=s, quadrature="riemann_right")[
        "ig_completeness_error"].max().item() for s in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2]


def test_ig_of_a_linear_model_is_weight_times_input():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double().eval()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    ig = explain(net, x, "ig", target=2, steps=8)
    expected = (net[1].weight[2].reshape(2, 4, 4) * x).sum(1)
    torch.testing.assert_close(ig, expected.detach())


def test_quadrature_weights_sum_to_one():
    for method in ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"):
        points, weights = quadrature_rule(10, method)
        assert abs(weights.sum() - 1) < 1e-12 and points.min() >= 0 and points.max() <= 1


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="steps"):
        explain(gap_net(2), torch.randn(1, 2, 4, 4), "gradcam", layer="3", steps=5)
