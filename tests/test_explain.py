"""Grad-CAM against captum's LayerGradCam (which averages gradients over all spatial axes and
handles batches correctly) and against the properties the method promises."""

import copy

import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn

from bidsxai.explain import explain, explain_many
from bidsxai.explain.gradcam import gradcam_from
from bidsxai.models.registry import get_architecture


def tiny_net(dims):
    conv, bn, pool = {2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d),
                      3: (nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d)}[dims]
    torch.manual_seed(0)
    net = nn.Sequential(conv(2, 4, 3, padding=1), bn(4), nn.ReLU(), conv(4, 6, 3, padding=1),
                        nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(6, 3))
    with torch.no_grad():  # non-trivial BN statistics, so eval mode matters
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


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
    ref = LayerGradCam(net, net[3]).attribute(x, target=torch.tensor(target), relu_attributions=True)
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


def test_batch_equals_single_samples_and_predicted_target():
    net = tiny_net(3)
    x = torch.randn(5, 2, 6, 6, 6)
    batch = explain(net, x, "gradcam", layer="3")
    singles = torch.cat([explain(net, x[i:i + 1], "gradcam", layer="3") for i in range(5)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)
    predicted = net(x).argmax(1)
    torch.testing.assert_close(batch, explain(net, x, "gradcam", layer="3", target=predicted.tolist()))


def test_model_is_unchanged_after_explaining():
    net = tiny_net(3).train()
    net[1].eval()  # a mixed state must come back exactly
    flags = [m.training for m in net.modules()]
    state = copy.deepcopy(net.state_dict())
    explain_many(net, torch.randn(2, 2, 5, 5, 5), ["gradcam"], layer="3")
    assert [m.training for m in net.modules()] == flags
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])


def test_upsampled_maps_have_the_input_shape_and_raw_values():
    net = tiny_net(3)
    x = torch.randn(2, 2, 6, 7, 8)
    maps = explain_many(net, x, ["gradcam"], layer="3")["gradcam"]
    assert maps.shape == (2, 3, 6, 7, 8)
    assert maps.min() >= 0 and maps.max() > 0
    assert not torch.allclose(maps.amax(dim=(2, 3, 4)), torch.ones(2, 3))  # not rescaled


def test_cnn3d_default_layer_is_its_last_convolutional_block():
    arch = get_architecture("cnn3d")
    model = arch.build(in_channels=3, n_classes=2, input_shape=(24, 28, 24))
    layer = arch.default_layer(model)
    assert layer.startswith(f"blocks.{len(model.blocks) - 1}.sub")
    maps = explain(model, torch.randn(2, 3, 24, 28, 24), "gradcam", layer=layer, upsample=False)
    assert maps.shape[0] == 2 and maps.dim() == 4


def test_unknown_layer_and_method_are_clear_errors():
    net = tiny_net(2)
    with pytest.raises(ValueError, match="not in the model"):
        explain(net, torch.randn(1, 2, 5, 5), "gradcam", layer="nope")
    with pytest.raises(ValueError, match="unknown method"):
        explain(net, torch.randn(1, 2, 5, 5), "lime", layer="3")


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
            scores = net(x[n:n + 1])
            ref = extractor(class_idx=c, scores=scores, normalized=False, retain_graph=True)[0][0]
            torch.testing.assert_close(ours[n, c], ref, rtol=1e-5, atol=1e-6)
    extractor.remove_hooks()


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "saliency", "ig", "lrp"])
def test_float32_agrees_with_float64(method):
    net = tiny_net(3)
    x = torch.rand(2, 2, 6, 6, 6)
    layer = {"layer": "3"} if method.startswith("gradcam") else {}
    single = explain_many(net, x, [method], targets="all", **layer)[method]
    double = explain_many(copy.deepcopy(net).double(), x.double(), [method], targets="all", **layer)[method]
    scale = double.abs().max()
    torch.testing.assert_close(single.double() / scale, double / scale, rtol=0, atol=1e-4)


@pytest.mark.parametrize("size_in, size_out", [((5,), (17,)), ((3, 4), (11, 9)), ((4, 5, 3), (13, 16, 12)),
                                                ((6, 6, 6), (6, 6, 6)), ((8, 3, 5), (5, 7, 5))])
def test_separable_upsampling_equals_torch_interpolate(size_in, size_out):
    from torch.nn import functional as F

    from bidsxai.explain.upsample import upsample_linear

    maps = torch.randn(2, 3, *size_in, dtype=torch.float64)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size_in)]
    ref = F.interpolate(maps, size=size_out, mode=mode, align_corners=False)
    torch.testing.assert_close(upsample_linear(maps, size_out), ref, rtol=1e-12, atol=1e-12)
