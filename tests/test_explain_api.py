"""The public API ``explain`` / ``explain_many``: batches, targets, layers, upsampling, precision,
parameter routing, and leaving the model as it was."""

import copy

import pytest
import torch
from networks import gap_net, tiny_net

from bidsxai.explain import explain, explain_many
from bidsxai.models.registry import get_architecture


def test_batch_equals_single_samples_and_predicted_target():
    net = tiny_net(3)
    x = torch.randn(5, 2, 6, 6, 6)
    batch = explain(net, x, "gradcam", layer="3")
    singles = torch.cat([explain(net, x[i : i + 1], "gradcam", layer="3") for i in range(5)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)
    predicted = net(x).argmax(1)
    torch.testing.assert_close(
        batch, explain(net, x, "gradcam", layer="3", target=predicted.tolist())
    )


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


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "saliency", "ig", "lrp"])
def test_float32_agrees_with_float64(method):
    net = tiny_net(3)
    x = torch.rand(2, 2, 6, 6, 6)
    layer = {"layer": "3"} if method.startswith("gradcam") else {}
    single = explain_many(net, x, [method], targets="all", **layer)[method]
    double = explain_many(
        copy.deepcopy(net).double(), x.double(), [method], targets="all", **layer
    )[method]
    scale = double.abs().max()
    torch.testing.assert_close(single.double() / scale, double / scale, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "size_in, size_out",
    [
        ((5,), (17,)),
        ((3, 4), (11, 9)),
        ((4, 5, 3), (13, 16, 12)),
        ((6, 6, 6), (6, 6, 6)),
        ((8, 3, 5), (5, 7, 5)),
    ],
)
def test_separable_upsampling_equals_torch_interpolate(size_in, size_out):
    from torch.nn import functional as F

    from bidsxai.explain.upsample import upsample_linear

    maps = torch.randn(2, 3, *size_in, dtype=torch.float64)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size_in)]
    ref = F.interpolate(maps, size=size_out, mode=mode, align_corners=False)
    torch.testing.assert_close(upsample_linear(maps, size_out), ref, rtol=1e-12, atol=1e-12)


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="steps"):
        explain(gap_net(2), torch.randn(1, 2, 4, 4), "gradcam", layer="3", steps=5)
