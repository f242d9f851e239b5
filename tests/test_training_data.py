"""What training reads: folds and targets, the brain crop, augmentation, the input cache and the
balanced draw shared by ranks."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bidsxai.errors import UsageError
from bidsxai.training import augment
from bidsxai.training.cache import MappedArrays
from bidsxai.training.crop_box import brain_crop, crop, uncrop
from bidsxai.training.distributed import BalancedSampler, Ranks
from bidsxai.training.folds import assign
from bidsxai.training.targets import closeness_weights, parse_bins, subject_targets


def test_folds_are_subject_level_stratified_seeded_and_keep_the_test_set():
    labels = {f"{i:02d}": "ABC"[i % 3] for i in range(33)}
    first = assign(labels, 5, 0.2, seed=4, repeat=1)
    assert first == assign(labels, 5, 0.2, seed=4, repeat=1)
    second = assign(labels, 5, 0.2, seed=4, repeat=2)
    assert second != first  # a new deal of the folds in each repeat...
    assert {s for s, p in first.items() if p == "test"} == {
        s for s, p in second.items() if p == "test"
    }
    test = [labels[s] for s, p in first.items() if p == "test"]
    assert (
        sorted(test) == ["A"] * 2 + ["B"] * 2 + ["C"] * 2
    )  # ...and one test set, 20 % of each class
    sizes = np.bincount([p for p in first.values() if p != "test"])[1:]
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 27
    for fold in range(1, 6):  # each class spread over the folds as evenly as it can be
        classes = [labels[s] for s, p in first.items() if p == fold]
        assert max(np.unique(classes, return_counts=True)[1]) <= 2


def test_numeric_target_is_split_at_the_threshold_with_closeness_weights():
    participants = pd.DataFrame({"edss": [1.0, 5.0, 6.5, None]}, index=["01", "02", "03", "04"])
    labels, values, missing = subject_targets(participants, "edss", 5)
    assert labels == {"01": "edss-lt5", "02": "edss-ge5", "03": "edss-ge5"} and values["03"] == 6.5
    assert missing == ["04"]  # n/a: left out, and named
    np.testing.assert_allclose(
        closeness_weights([1.0, 5.0, 6.5, 10.0, 0.0], 5), [1.2, 2.0, 1.7, 1.0, 1.0]
    )
    with pytest.raises(UsageError, match="not numeric"):
        subject_targets(pd.DataFrame({"g": ["a", "b"]}, index=["01", "02"]), "g", 1)


def test_crop_and_uncrop_round_trip():
    mask = np.zeros((10, 12, 9), bool)
    mask[3:7, 2:10, 4:6] = True
    box = brain_crop(mask, margin=1)
    assert box == [[2, 8], [1, 11], [3, 7]]
    volume = np.random.rand(10, 12, 9)
    back = uncrop(crop(volume, box), box, volume.shape)
    assert np.array_equal(back[mask], volume[mask])


def test_augmentations_keep_shape_and_are_reproducible_from_the_torch_seed():
    x2, x3 = torch.rand(3, 24, 24), torch.rand(2, 10, 10, 8)
    for fn, x in ((augment.slice_affine, x2), (augment.volume_affine, x3), (augment.flip, x3)):
        torch.manual_seed(3)
        a = fn(x)
        torch.manual_seed(3)
        assert a.shape == x.shape and torch.equal(a, fn(x))
    torch.manual_seed(0)
    assert augment.volume_affine(torch.rand(1, 10, 12, 8)).shape == (
        1,
        10,
        12,
        8,
    )  # non-square plane: 180 deg


def test_resampling_rotates_by_the_angle_of_the_matrix():
    """A centred bright bar resampled with a rotation matrix (as slice_affine builds it): its
    principal axis turns by that angle. Only the size of the turn is checked; the draws are
    symmetric about 0, so the direction does not matter for augmentation."""
    torch.manual_seed(5)
    angle = float(augment._uniform(-30, 30))
    image = torch.zeros(1, 65, 65)
    image[0, 30:35, 8:57] = 1.0  # bar along Y
    theta = torch.tensor(
        [
            [math.cos(math.radians(angle)), -math.sin(math.radians(angle)), 0.0],
            [math.sin(math.radians(angle)), math.cos(math.radians(angle)), 0.0],
        ]
    )
    out = augment._resample(image, theta)[0]
    ys, xs = torch.nonzero(out > 0.5, as_tuple=True)
    coords = torch.stack([xs.float() - xs.float().mean(), ys.float() - ys.float().mean()])
    _, vectors = torch.linalg.eigh(coords @ coords.T)
    turned = math.degrees(math.atan2(float(vectors[1, 1]), float(vectors[0, 1])))
    assert min(abs(abs(turned) - abs(angle)), abs(180 - abs(turned) - abs(angle))) < 3


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


def test_ranks_share_one_balanced_draw():
    labels = np.array([0] * 30 + [1] * 6)
    whole = list(BalancedSampler(labels, seed=2, ranks=Ranks(0, 1)))
    ranks = [list(BalancedSampler(labels, seed=2, ranks=Ranks(r, 2))) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(whole) and len(ranks[0]) == len(ranks[1]) == 18
    draws = np.concatenate([list(BalancedSampler(labels, seed=s)) for s in range(200)])
    assert abs((labels[draws] == 1).mean() - 0.5) < 0.02  # classes drawn equally often


def test_bins_make_ordered_classes_of_a_numeric_score():
    participants = pd.DataFrame({"mrs": [0, 2, 3, 6, None]}, index=["01", "02", "03", "04", "05"])
    bins = parse_bins("0-2,3-6")
    assert bins == [(0.0, 2.0), (3.0, 6.0)]
    labels, values, missing = subject_targets(participants, "mrs", bins=bins)
    assert labels == {"01": "mrs0to2", "02": "mrs0to2", "03": "mrs3to6", "04": "mrs3to6"}
    assert missing == ["05"] and values["04"] == 6.0
    with pytest.raises(UsageError, match="lies in no bin"):
        subject_targets(participants, "mrs", bins=parse_bins("0-1,3-6"))
    for text, message in (
        ("0-2", "at least two"),
        ("3-6,0-2", "increasing"),
        ("a-b,1-2", "LOW-HIGH"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_bins(text)


def test_a_numeric_target_needs_a_threshold_or_bins():
    participants = pd.DataFrame({"mrs": [0, 2, 3, 6], "sex": [0, 1, 1, 0]}, index=list("1234"))
    with pytest.raises(UsageError, match="give --target-threshold .* or --target-bins"):
        subject_targets(participants, "mrs")
    labels, _, _ = subject_targets(participants, "sex")  # two codes: categorical
    assert set(labels.values()) == {"0", "1"}
    with pytest.raises(UsageError, match="give one of them"):
        subject_targets(participants, "mrs", 3, parse_bins("0-2,3-6"))
