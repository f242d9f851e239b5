"""The training protocol's parts: augmentation, balanced sampling across ranks, MC dropout, the
input cache, the paper-003 models and cross-validation's out-of-fold bookkeeping."""

import math

import numpy as np
import pytest
import torch

from bidsxai.models.mc_dropout import MCDropout, has_mc_dropout, mc_predict, sampling
from bidsxai.models.registry import get_architecture
from bidsxai.training import augment
from bidsxai.training.cache import MappedArrays
from bidsxai.training.crossval import cross_validate, out_of_fold, summarise
from bidsxai.training.dataset import VolumeDataset
from bidsxai.training.distributed import BalancedSampler, Context
from bidsxai.training.loop import TrainOptions


def test_augmentations_keep_shape_and_are_reproducible_from_the_torch_seed():
    x2, x3 = torch.rand(3, 24, 24), torch.rand(2, 10, 10, 8)
    for fn, x in ((augment.paper000, x2), (augment.paper001, x3), (augment.flip, x3)):
        torch.manual_seed(3)
        a = fn(x)
        torch.manual_seed(3)
        assert a.shape == x.shape and torch.equal(a, fn(x))
    torch.manual_seed(0)
    assert augment.paper001(torch.rand(1, 10, 12, 8)).shape == (1, 10, 12, 8)  # non-square plane: 180 deg


def test_resampling_rotates_by_the_angle_of_the_matrix():
    """A centred bright bar resampled with a rotation matrix (as paper000 builds it): its principal
    axis turns by that angle. Only the size of the turn is checked; the draws are symmetric about
    0, so the direction does not matter for augmentation."""
    torch.manual_seed(5)
    angle = float(augment._uniform(-30, 30))
    image = torch.zeros(1, 65, 65)
    image[0, 30:35, 8:57] = 1.0  # bar along Y
    theta = torch.tensor([[math.cos(math.radians(angle)), -math.sin(math.radians(angle)), 0.0],
                          [math.sin(math.radians(angle)), math.cos(math.radians(angle)), 0.0]])
    out = augment._resample(image, theta)[0]
    ys, xs = torch.nonzero(out > 0.5, as_tuple=True)
    coords = torch.stack([xs.float() - xs.float().mean(), ys.float() - ys.float().mean()])
    _, vectors = torch.linalg.eigh(coords @ coords.T)
    turned = math.degrees(math.atan2(float(vectors[1, 1]), float(vectors[0, 1])))
    assert min(abs(abs(turned) - abs(angle)), abs(180 - abs(turned) - abs(angle))) < 3


def test_ranks_share_one_balanced_draw():
    labels = np.array([0] * 30 + [1] * 6)
    whole = list(BalancedSampler(labels, seed=2, context=Context(0, 1)))
    ranks = [list(BalancedSampler(labels, seed=2, context=Context(r, 2))) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(whole) and len(ranks[0]) == len(ranks[1]) == 18
    draws = np.concatenate([list(BalancedSampler(labels, seed=s)) for s in range(200)])
    assert abs((labels[draws] == 1).mean() - 0.5) < 0.02  # classes drawn equally often


def test_mc_dropout_is_off_for_explanations_and_samples_when_asked():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), MCDropout(0.3), torch.nn.Linear(32, 2)).eval()
    x = torch.randn(5, 8)
    assert has_mc_dropout(model) and torch.equal(model(x), model(x))
    draws = mc_predict(model, x, samples=200, seed=1)
    assert draws.shape == (200, 5, 2) and draws.std(0).min() > 0
    assert torch.equal(draws, mc_predict(model, x, samples=200, seed=1))
    with sampling(model):  # one pass with dropout by hand equals the mean of masked passes in law
        torch.manual_seed(4)
        manual = torch.stack([torch.softmax(model(x), 1) for _ in range(2000)]).mean(0)
    torch.testing.assert_close(draws.mean(0), manual, atol=0.03, rtol=0)
    assert torch.equal(model(x), model(x))  # off again


@pytest.mark.parametrize("variant, params", [("flat", 1.61e6), ("gap", 1.57e6), ("shallow", 9.3e4)])
def test_stroke_variants_have_the_papers_size(variant, params):
    """Paper 003 Table 2 text: Flat 1.7 M, GAP 1.5 M, Shallow 94 000 parameters (192 x 192 input)."""
    model = get_architecture(f"stroke_{variant}").build(in_channels=1, n_classes=2, input_shape=[192, 192])
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.02)
    assert model(torch.zeros(2, 1, 192, 192)).shape == (2, 2)


def test_cached_arrays_survive_pickling_into_workers(tmp_path):
    import pickle

    data = np.random.default_rng(0).normal(size=(3, 2, 4, 4, 4)).astype(np.float16)
    paths = []
    for i, array in enumerate(data):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], array)
    arrays = MappedArrays(paths)
    assert isinstance(arrays[1], np.memmap)
    clone = pickle.loads(pickle.dumps(arrays))
    assert clone._maps == {} and np.array_equal(clone[2], data[2])


def test_cross_validation_predicts_every_cohort_sample_out_of_fold():
    """A nearest-mean 'model' that memorises its training samples: out of fold it must never
    have seen the sample it predicts."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1, 2, 2, 2)).astype(np.float32)
    y = np.array([0, 1] * 6)
    parts = [np.array([1, 1, 2, 2, 3, 3, 1, 1, 2, 2, "test", "test"], dtype=object)]
    seen = {}

    class Memoriser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

        def forward(self, v):
            return self.w.expand(len(v), 2) + 0 * v.flatten(1).sum(1, keepdim=True)

    def make_dataset(indices, train):
        if train:
            seen[len(seen)] = set(indices.tolist())
        return VolumeDataset(x[indices], y[indices])

    members = cross_validate(parts, make_dataset, Memoriser, n_folds=3,
                             options=TrainOptions(epochs=1, patience=1, batch_size=4), device=torch.device("cpu"),
                             seed=0)
    for member, trained in zip(members, seen.values()):
        assert not trained & set(member.validation.tolist())
        assert not trained & {10, 11}  # the test set never trains
    oof = out_of_fold(members, 1, 12, 2)
    assert np.isfinite(oof[:10]).all() and np.isnan(oof[10:]).all()
    metrics = summarise(members, y, parts, "loss")
    assert metrics["cross_validation"]["n"] == 10 and metrics["test"]["n"] == 2
