"""The maps that never looked at the model, chance, the controls and the margins, each against a
hand computation on a small volume; the pointing game's tie rule on a plateau."""

from dataclasses import dataclass

import numpy as np
import pytest
import quantus
from scipy import ndimage

from bidsxai.evaluate.baselines import (
    chance_scores,
    is_reference,
    leave_one_out_frequency,
    model_free_maps,
    with_margins,
)
from bidsxai.evaluate.localisation import localisation

SHAPE = (10, 12, 8)


@dataclass
class TinyTemplate:
    brain_mask: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    resolution: float = 2.0


def _template():
    rng = np.random.default_rng(0)
    brain = np.zeros(SHAPE, bool)
    brain[1:9, 1:11, 1:7] = True
    gm, wm, csf = rng.random((3, *SHAPE))
    return TinyTemplate(brain, gm, wm, csf)


def _mask():
    mask = np.zeros(SHAPE, bool)
    mask[2:4, 3:6, 2:4] = True
    return mask


def test_model_free_maps_are_the_contrasts_their_inversions_the_priors_and_depth():
    template = _template()
    brain = template.brain_mask
    flair = np.random.default_rng(1).random(SHAPE) * 3
    maps = model_free_maps({"FLAIR": flair}, template)
    assert sorted(maps) == sorted(
        [
            "baseline-FLAIR",
            "baseline-FLAIRinverted",
            "baseline-priorGM",
            "baseline-priorWM",
            "baseline-priorCSF",
            "baseline-depth",
        ]
    )
    assert np.array_equal(maps["baseline-FLAIR"][brain], flair[brain])
    assert not maps["baseline-FLAIR"][~brain].any()
    inverted = maps["baseline-FLAIRinverted"]
    assert np.allclose(inverted[brain], flair[brain].max() - flair[brain])
    assert np.array_equal(maps["baseline-priorWM"][brain], template.wm[brain])
    # depth: 2 mm to the first voxel outside the brain from a voxel on its edge, 4 mm one further
    depth = maps["baseline-depth"]
    assert depth[1, 5, 3] == 2.0 and depth[2, 5, 3] == 4.0 and not depth[~brain].any()


def test_chance_scores_by_hand_and_as_the_mean_of_random_maps():
    template, mask = _template(), _mask()
    brain = template.brain_mask
    chance = chance_scores(mask, brain, tolerance_mm=2.0, voxel_size=(2.0,) * 3)
    distance = ndimage.distance_transform_edt(~mask, sampling=(2.0,) * 3)[brain]
    assert chance["auroc"] == 0.5
    assert chance["pointing"] == np.mean(distance <= 2.0)
    assert chance["peak_distance_mm"] == pytest.approx(distance.mean())
    assert chance["mass_inside"] == mask.sum() / brain.sum()
    rng = np.random.default_rng(2)
    draws = localisation(
        rng.random((4000, *SHAPE)), mask, brain=brain, tolerance_mm=2.0, voxel_size=2.0
    )
    for name in ("auroc", "pointing", "mass_inside", "rank_accuracy"):
        assert draws[name].mean() == pytest.approx(chance[name], abs=0.02), name
    empty = chance_scores(np.zeros(SHAPE, bool), brain, tolerance_mm=2, voxel_size=2)
    assert all(np.isnan(v) for v in empty.values())


def test_a_constant_map_points_at_the_chance_rate_whatever_the_raster_order():
    template, mask = _template(), _mask()
    brain = template.brain_mask
    chance = chance_scores(mask, brain, tolerance_mm=2.0, voxel_size=(2.0,) * 3)
    constant = localisation(np.ones(SHAPE), mask, brain=brain, tolerance_mm=2.0, voxel_size=2.0)
    assert constant["pointing"] == pytest.approx(chance["pointing"])
    assert constant["peak_distance_mm"] == pytest.approx(chance["peak_distance_mm"])
    flipped = localisation(
        np.ones(SHAPE), mask[::-1], brain=brain[::-1], tolerance_mm=2.0, voxel_size=2.0
    )
    assert flipped["pointing"] == pytest.approx(constant["pointing"])


def test_a_plateau_scores_the_share_of_its_voxels_near_the_mask():
    template, mask = _template(), _mask()
    brain = template.brain_mask
    plateau = np.zeros(SHAPE)
    plateau[2, 4, 2] = plateau[2, 4, 3] = 1.0  # inside the mask
    plateau[7, 9, 5] = 1.0  # far from it
    found = localisation(plateau, mask, brain=brain, tolerance_mm=0.0, voxel_size=2.0)
    assert found["pointing"] == pytest.approx(2 / 3)
    far = ndimage.distance_transform_edt(~mask, sampling=2.0)[7, 9, 5]
    assert found["peak_distance_mm"] == pytest.approx(far / 3)


def test_pointing_without_ties_equals_quantus():
    rng = np.random.default_rng(3)
    a = rng.random((6, 1, 16, 16))
    s = np.zeros((6, 1, 16, 16))
    for i in range(6):
        y, x = rng.integers(2, 12, 2)
        s[i, 0, y : y + 3, x : x + 3] = 1
    ours = localisation(a[:, 0], s[:, 0] > 0, brain=np.ones((16, 16), bool), tolerance_mm=0)
    theirs = quantus.PointingGame(disable_warnings=True)(
        model=None,
        x_batch=np.zeros((6, 1, 16, 16)),
        y_batch=np.zeros(6, int),
        a_batch=a,
        s_batch=s,
    )
    assert np.array_equal(ours["pointing"], np.asarray(theirs, float))


def test_leave_one_out_frequency_and_margins_by_hand():
    masks = {
        "01": np.array([1, 1, 0, 0], bool),
        "02": np.array([0, 1, 1, 0], bool),
        "03": np.array([0, 1, 0, 0], bool),
    }
    assert np.array_equal(leave_one_out_frequency(masks, "01"), [0, 1, 0.5, 0])
    assert leave_one_out_frequency({"01": masks["01"]}, "01") is None
    rows = [
        {"method": "lrp", "target": "MS", "auroc_lesion": 0.9, "pointing_lesion": 0.0},
        {"method": "baseline-FLAIR", "target": "MS", "auroc_lesion": 0.95, "pointing_lesion": 1.0},
        {"method": "baseline-random", "target": "MS", "auroc_lesion": 0.5, "pointing_lesion": 0.1},
        {"method": "control-otherclass-lrp", "target": "MS", "auroc_lesion": 0.7},
    ]
    marked = with_margins(rows, ["lesion"])
    assert marked[0]["auroc_margin_lesion"] == pytest.approx(0.9 - 0.95)
    assert marked[0]["pointing_margin_lesion"] == pytest.approx(-1.0)
    assert all("auroc_margin_lesion" not in r for r in marked[1:])
    assert is_reference("baseline-depth") and is_reference("control-swap-lrp")
    assert not is_reference("gradcampp")


def test_rank_accuracy_equals_quantus_without_ties_and_shares_ties_by_expectation():
    rng = np.random.default_rng(4)
    a = rng.random((6, 1, 16, 16))
    s = np.zeros((6, 1, 16, 16))
    for i in range(6):
        y, x = rng.integers(2, 12, 2)
        s[i, 0, y : y + 3, x : x + 2] = 1
    ours = localisation(a[:, 0], s[:, 0] > 0, brain=np.ones((16, 16), bool))["rank_accuracy"]
    theirs = quantus.RelevanceRankAccuracy(disable_warnings=True)(
        model=None,
        x_batch=np.zeros((6, 1, 16, 16)),
        y_batch=np.zeros(6, int),
        a_batch=a,
        s_batch=s,
    )
    assert np.allclose(ours, theirs)
    mask = np.array([1, 1, 0, 0, 0], bool)
    values = np.array([5.0, 1.0, 1.0, 1.0, 0.0])  # K = 2: one sure hit, then one of three ties
    found = localisation(values, mask, brain=np.ones(5, bool))["rank_accuracy"]
    assert found == pytest.approx((1 + 1 / 3) / 2)


def test_separation_tells_a_map_that_follows_the_image_from_one_that_follows_the_decision():
    from bidsxai.evaluate.localisation import localisation_row

    brain = np.ones(SHAPE, bool)
    signal, distractor = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    signal[1:3, 1:3, 1:3] = True
    distractor[6:8, 6:8, 4:6] = True
    image = (signal | distractor).astype(float)  # the FLAIR lights both
    decision = signal.astype(float) + 0.01 * np.random.default_rng(5).random(SHAPE)
    masks = {"lesion": signal, "distractor": distractor}
    kwargs = dict(brain=brain, tolerance_mm=0.0, voxel_size=2.0)
    follows_image = localisation_row(image, masks, **kwargs)
    follows_decision = localisation_row(decision, masks, **kwargs)
    assert follows_image["separation_lesion"] == 0.5
    assert follows_decision["separation_lesion"] == 1.0
    assert "separation_distractor" not in follows_image
    # over the whole brain both find the lesion almost perfectly: the AUROC cannot tell them apart
    assert follows_image["auroc_lesion"] > 0.9 and follows_decision["auroc_lesion"] == 1.0
