"""Meaningful-perturbation masks (Thibeau-Sutre et al. 2020): the properties the method promises."""

import copy

import torch
from torch import nn

from bidsxai.explain import explain_many
from bidsxai.explain.perturbation import _power, mask_loss


class BoxReader(nn.Module):
    """Class 1's logit is 6 x (mean of channel 0 inside a fixed box) - 3 (p = 0.95 on ones, not
    saturated); class 0's is 0."""

    def __init__(self, box):
        super().__init__()
        self.box = box
        self.scale = nn.Parameter(torch.tensor(6.0))

    def forward(self, x):
        inside = x[:, 0, self.box[0], self.box[1], self.box[2]].flatten(1).mean(1)
        return torch.stack([torch.zeros_like(inside), self.scale * inside - 3], 1)


def iou(a, b):
    return (a & b).sum().item() / (a | b).sum().item()


def test_mask_recovers_the_box_the_model_reads():
    box = (slice(4, 8), slice(3, 9), slice(5, 9))
    model = BoxReader(box).eval()
    state = copy.deepcopy(model.state_dict())
    x = torch.ones(1, 2, 12, 12, 12)
    result = explain_many(model, x, ["perturbation"], targets=[1], max_epochs=400, patience=50)
    importance = result["perturbation"][0, 0]
    truth = torch.zeros(12, 12, 12, dtype=torch.bool)
    truth[box] = True
    assert iou(importance > 0.5, truth) > 0.5
    before = result["perturbation_probability_before"][0, 0]
    after = result["perturbation_probability_after"][0, 0]
    assert before > 0.95 and after < 0.1
    assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(model.state_dict()["scale"], state["scale"])


def test_group_mask_is_shared_by_the_batch():
    # In a volume this size masking the box is eq. 2's optimum: its boundary costs 96 x l2 = 0.096,
    # masking all 4096 voxels 0.41 (in an 8^3 volume masking everything, 0.05, would win).
    box = (slice(6, 10), slice(6, 10), slice(6, 10))
    model = BoxReader(box).eval()
    x = torch.ones(3, 1, 16, 16, 16) * torch.tensor([1.0, 0.9, 1.1]).reshape(3, 1, 1, 1, 1)
    maps = explain_many(
        model, x, ["perturbation"], targets=[1, 1, 1], group=True, max_epochs=150, patience=20
    )["perturbation"]
    assert torch.equal(maps[0], maps[1]) and torch.equal(maps[1], maps[2])
    truth = torch.zeros(16, 16, 16, dtype=torch.bool)
    truth[box] = True
    assert iou(maps[0, 0] > 0.5, truth) > 0.5


def test_fractional_power_has_a_finite_gradient_where_the_mask_is_one():
    mask = torch.ones(1, 4, 4, 4, requires_grad=True)
    _power(1 - mask, 0.1).sum().backward()
    assert torch.isfinite(mask.grad).all() and (mask.grad == 0).all()


def test_loss_terms_follow_eq2():
    """Sparsity counts |1-m|^b1, smoothness |forward difference|^b2 along every axis."""
    model = BoxReader((slice(0, 2), slice(0, 2), slice(0, 2))).eval()
    mask = torch.ones(1, 3, 3, 3)
    mask[0, 1, 1, 1] = 0.0
    x = torch.zeros(1, 1, 3, 3, 3)
    loss, prob = mask_loss(
        mask, model, x, torch.tensor([1]), lambda1=2.0, lambda2=3.0, beta1=0.5, beta2=1.0, mu=0.0
    )
    # one voxel at 0: sparsity 1; it differs by 1 from its 6 neighbours: smoothness 6
    expected = 2.0 * 1.0 + 3.0 * 6.0 + torch.softmax(torch.tensor([0.0, -3.0]), 0)[1]
    torch.testing.assert_close(loss[0], expected)
