"""CAM, Grad-CAM and Grad-CAM++ against independent references (captum's LayerGradCam, which
averages gradients over all spatial axes and handles batches correctly; torchcam; eq. 19 written
out with autograd derivatives) and the properties the methods promise."""

import pytest
import torch
from captum.attr import LayerGradCam
from networks import gap_net, maxpool_net, tiny_net

from bidsxai.explain import explain, explain_many
from bidsxai.explain.gradcam import gradcam_from


def gradcampp_eq19(net, split, x, n, c):
    """Eq. 19 of Chattopadhyay et al. with Y = exp(S), every derivative taken by autograd."""
    net = net.double()
    activation = net[:split](x.double())[n : n + 1].detach().requires_grad_(True)
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
def test_gradcam_matches_captum_for_every_class_in_a_batch(dims):
    net = tiny_net(dims)
    x = torch.randn(4, 2, *([7] * dims))
    ours = explain_many(net, x, ["gradcam"], layer="3", targets="all", upsample=False)["gradcam"]
    captum = LayerGradCam(net, net[3])
    for c in range(3):
        ref = captum.attribute(x, target=c, relu_attributions=True)[:, 0]
        torch.testing.assert_close(ours[:, c], ref, rtol=1e-5, atol=1e-6)


def test_gradcam_per_sample_targets_match_captum():
    net = tiny_net(3)
    x = torch.randn(3, 2, 6, 6, 6)
    target = [2, 0, 1]
    ours = explain(net, x, "gradcam", layer="3", target=target, upsample=False)
    ref = LayerGradCam(net, net[3]).attribute(
        x, target=torch.tensor(target), relu_attributions=True
    )
    torch.testing.assert_close(ours, ref[:, 0], rtol=1e-5, atol=1e-6)


def test_gradcam_formula_written_out():
    """w_k = mean over all voxels of dy/dA_k, map = ReLU(sum_k w_k A_k)."""
    activation = torch.randn(2, 3, 4, 5, 6)
    gradient = torch.randn(2, 3, 4, 5, 6)
    expected = torch.zeros(2, 4, 5, 6)
    for n in range(2):
        for k in range(3):
            expected[n] += gradient[n, k].sum() / gradient[n, k].numel() * activation[n, k]
    torch.testing.assert_close(gradcam_from(activation, gradient), expected.clamp(min=0))


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcam_matches_torchcam_unnormalised_for_every_class_in_a_batch(dims):
    """torchcam's GradCAM averages over every spatial axis of 2D and 3D maps; one sample at a time
    (its batched scores would mix the samples' gradients)."""
    from torchcam.methods import GradCAM

    net = tiny_net(dims)
    x = torch.randn(3, 2, *([7] * dims))
    ours = explain_many(net, x, ["gradcam"], layer="3", targets="all", upsample=False)["gradcam"]
    extractor = GradCAM(net, target_layer="3")
    for n in range(len(x)):
        for c in range(3):
            scores = net(x[n : n + 1])
            ref = extractor(class_idx=c, scores=scores, normalized=False, retain_graph=True)[0][0]
            torch.testing.assert_close(ours[n, c], ref, rtol=1e-5, atol=1e-6)
    extractor.remove_hooks()


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcampp_equals_eq19_at_a_non_final_layer(dims):
    net = maxpool_net(dims)
    x = torch.randn(2, 2, *([4] * dims)) * 0.5
    ours = explain_many(
        net.double(), x.double(), ["gradcampp"], layer="1", targets="all", upsample=False
    )["gradcampp"]
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
    z = 6**dims
    torch.testing.assert_close(ours["gradcam"], torch.relu(ours["cam"]) / z, rtol=1e-5, atol=1e-7)
    assert (ours["cam"] < 0).any()  # CAM itself keeps negative evidence, as in the paper


def test_cam_refuses_models_without_gap():
    with pytest.raises(ValueError, match="GAP model"):
        explain(maxpool_net(2), torch.randn(1, 2, 4, 4), "cam", layer="1")


@pytest.mark.parametrize("dims", [2, 3])
def test_layercam_matches_torchcam_unnormalised_for_every_class_in_a_batch(dims):
    from torchcam.methods import LayerCAM

    net = tiny_net(dims)
    x = torch.randn(3, 2, *([7] * dims))
    ours = explain_many(net, x, ["layercam"], layer="3", targets="all", upsample=False)
    extractor = LayerCAM(net, target_layer="3")
    for n in range(len(x)):
        for c in range(3):
            scores = net(x[n : n + 1])
            ref = extractor(class_idx=c, scores=scores, normalized=False, retain_graph=True)[0][0]
            torch.testing.assert_close(ours["layercam"][n, c], ref, rtol=1e-5, atol=1e-6)
    extractor.remove_hooks()


@pytest.mark.parametrize("dims", [2, 3])
def test_hirescam_is_cam_over_the_positions_on_gap_models(dims):
    """Draelos & Carin (2020): HiResCAM generalises CAM; after global average pooling and one
    linear layer the gradient at every position is the class weight over the number of positions."""
    net = gap_net(dims)
    x = torch.randn(2, 2, *([6] * dims))
    maps = explain_many(net, x, ["cam", "hirescam"], layer="3", fc="6", upsample=False)
    positions = 6**dims
    torch.testing.assert_close(maps["hirescam"], maps["cam"] / positions, rtol=1e-5, atol=1e-7)
    assert (maps["hirescam"] < 0).any()  # signed, as CAM is


def test_hirescam_positions_sum_to_the_score_less_the_bias_after_flattening():
    """For a layer followed by flattening and one linear layer, HiResCAM splits each class score
    (less its bias) exactly over the positions: no position it did not use is lit."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5**3, 3),
    ).eval()
    x = torch.randn(2, 2, 5, 5, 5)
    maps = explain_many(net, x, ["hirescam"], layer="1", upsample=False)
    expected = maps["logits"] - net[3].bias
    torch.testing.assert_close(maps["hirescam"].sum((2, 3, 4)), expected, rtol=1e-5, atol=1e-5)
