import torch
from torch import nn

from bidsxai.explain import explain
from bidsxai.explain.diagnostics import conv_layers, layer_iteration, mirroring, pearson


def mirror_symmetric_net():
    """Kernels symmetric along the first spatial axis + GAP: the model is flip-invariant."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    ).eval()
    with torch.no_grad():
        for conv in (net[0], net[2]):
            conv.weight.copy_((conv.weight + torch.flip(conv.weight, (2,))) / 2)
    return net


def test_flip_equivariance_on_a_flip_invariant_model():
    net = mirror_symmetric_net()
    x = torch.randn(3, 2, 6, 7, 5)
    results = mirroring(net, x, ("gradcam", "gradcampp", "saliency"), layer="2")
    for method in ("gradcam", "gradcampp", "saliency"):
        r, original, flipped = results[method]
        torch.testing.assert_close(torch.flip(original, (1,)), flipped, rtol=1e-4, atol=1e-6)
        assert torch.all(r > 0.9999)


def test_mirroring_detects_a_side_bias():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 4 * 4, 2)
    ).eval()
    with torch.no_grad():
        net[3].weight.view(2, 3, 6, 4, 4)[:, :, :3] = 0  # reads the right half only
    r, _, _ = mirroring(net, torch.rand(2, 1, 6, 4, 4), ["saliency"], target=[0, 0])["saliency"]
    assert torch.all(r < 0.5)


def test_layer_iteration_covers_every_convolution():
    net = mirror_symmetric_net()
    x = torch.randn(2, 2, 6, 6, 6)
    maps = layer_iteration(net, x, target=1)
    assert list(maps) == conv_layers(net) == ["0", "2"]
    torch.testing.assert_close(maps["2"], explain(net, x, "gradcam", layer="2", target=1))
    assert all(m.shape == (2, 6, 6, 6) for m in maps.values())


def test_pearson_of_identical_and_opposite_maps():
    a = torch.randn(2, 5, 5)
    torch.testing.assert_close(pearson(a, a), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(pearson(a, -a), -torch.ones(2, dtype=torch.float64))
    assert pearson(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 1
