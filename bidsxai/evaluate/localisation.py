"""Does the map find the reference region (a lesion mask, say)?

- AUROC: the probability that a voxel inside the mask outscores one outside it, within the brain
  (Mann-Whitney, ties counted half), so a constant map scores exactly 0.5;
- pointing game: whether the map's peak within the brain lies within ``tolerance_mm`` of the mask.
  Where several voxels share the maximum (a plateau, a constant map), the hit is the share of
  them within the tolerance and the peak distance their mean: the expectation of breaking the tie
  at random, so a constant map scores the chance rate instead of a hit or a miss decided by
  where the first brain voxel lies in raster order;
- mass inside: the share of the map's positive mass within the brain that lies inside the mask;
- rank accuracy (Arras et al. 2022): of the map's K highest brain voxels, K the mask's size, the
  share inside the mask; where voxels tie at the K-th value, each tied voxel counts by the share
  of the tie that fits, as a random tie-break would on average;
- separation: the AUROC of one mask's voxels against another's (a distractor's), over those
  voxels only. A map that follows the image lights every lesion and scores 0.5; a map that
  follows the decision lights the signal lesions only and scores near 1. Over the whole brain a
  few bright false positives barely move an AUROC, so this and the pointing game are what tell
  the two apart.
"""

from functools import lru_cache

import numpy as np
from scipy import ndimage

from bidsxai.training.metrics import binary_auc


def distance_to(inside, voxel_size):
    """Each voxel's distance in mm to the nearest voxel of the boolean ``inside`` (0 within it),
    read-only. The Euclidean distance transform is most of what scoring a map costs (0.13 of
    0.15 s at 2 mm) and depends on the mask alone, so the last few masks' transforms are kept:
    a session's maps, its baselines and its chance rate are scored against one mask with one."""
    inside = np.ascontiguousarray(inside, bool)
    sampling = tuple(float(v) for v in np.broadcast_to(voxel_size, (inside.ndim,)))
    return _distance(inside.tobytes(), inside.shape, sampling)


@lru_cache(maxsize=8)
def _distance(packed, shape, sampling):
    inside = np.frombuffer(packed, bool).reshape(shape)
    distance = ndimage.distance_transform_edt(~inside, sampling=sampling)
    distance.setflags(write=False)
    return distance


def localisation(
    maps: np.ndarray,
    masks: np.ndarray,
    *,
    brain: np.ndarray,
    tolerance_mm: float = 6.0,
    voxel_size: tuple | float = 1.0,
) -> dict[str, np.ndarray]:
    """{"auroc", "pointing", "peak_distance_mm", "mass_inside", "rank_accuracy"}, one value per
    map.

    maps: (N, *spatial) or (*spatial), in any number of dimensions; masks: boolean, the same
    shape or one (*spatial) for all; brain: (*spatial) boolean, the voxels that count.
    """
    maps = np.asarray(maps, np.float64)
    brain = np.asarray(brain, bool)
    single = maps.shape == brain.shape
    maps = maps[None] if single else maps
    masks = np.broadcast_to(np.asarray(masks, bool), maps.shape)
    names = ("auroc", "pointing", "peak_distance_mm", "mass_inside", "rank_accuracy")
    out = {k: np.empty(len(maps)) for k in names}
    for i, (heatmap, mask) in enumerate(zip(maps, masks)):
        inside = mask & brain
        values = heatmap[brain]
        positive = inside[brain]
        out["auroc"][i] = binary_auc(values[positive], values[~positive])
        if not inside.any():
            for name in names[1:]:
                out[name][i] = np.nan
            continue
        distance = distance_to(inside, voxel_size)[brain]
        tied = distance[values == values.max()]
        out["peak_distance_mm"][i] = tied.mean()
        out["pointing"][i] = np.mean(tied <= tolerance_mm)
        mass = np.clip(heatmap, 0, None)
        total = mass[brain].sum()
        out["mass_inside"][i] = mass[inside].sum() / total if total > 0 else np.nan
        out["rank_accuracy"][i] = rank_accuracy(values, positive)
    return {k: v[0] if single else v for k, v in out.items()}


def rank_accuracy(values, inside):
    """The share of the ``inside.sum()`` highest ``values`` that are ``inside``, ties at the cut
    shared out by expectation."""
    k = int(inside.sum())
    cut = np.partition(values, len(values) - k)[len(values) - k]
    above, tied = values > cut, values == cut
    wanted = k - int(above.sum())
    hits = (above & inside).sum() + wanted * (tied & inside).sum() / tied.sum()
    return float(hits / k)


def separation(heatmap, signal, distractor, brain):
    """The AUROC of ``heatmap`` over the brain voxels of ``signal`` against those of
    ``distractor`` (NaN where either is empty)."""
    values = np.asarray(heatmap, np.float64)
    brain = np.asarray(brain, bool)
    return binary_auc(values[signal & brain & ~distractor], values[distractor & brain & ~signal])


# A reference mask of this label holds lesions that do not decide the class (bidsxai-synth
# --distractor): every other mask's separation from it is measured.
DISTRACTOR = "distractor"


def on_footing(heatmap, sign):
    """The map as ``--evaluate-sign`` compares it: its absolute values, or as it is ("signed")."""
    return np.abs(heatmap) if sign == "absolute" else heatmap


def template_localisation_row(heatmap, masks, template, tolerance_mm):
    """``localisation_row`` of a map on ``template``'s grid, within its brain."""
    return localisation_row(
        heatmap,
        masks,
        brain=template.brain_mask,
        tolerance_mm=tolerance_mm,
        voxel_size=(template.resolution,) * 3,
    )


def localisation_row(heatmap, masks, *, brain, tolerance_mm, voxel_size):
    """{<measure>_<label>: value} of one map against every mask of ``masks`` ({label: mask}),
    with ``separation_<label>`` from the ``distractor`` mask where there is one: the columns of
    an evaluation row."""
    row = {}
    for label, mask in masks.items():
        found = localisation(
            heatmap, mask, brain=brain, tolerance_mm=tolerance_mm, voxel_size=voxel_size
        )
        row.update({f"{k}_{label}": float(v) for k, v in found.items()})
    distractor = masks.get(DISTRACTOR)
    if distractor is not None:
        for label, mask in masks.items():
            if label != DISTRACTOR:
                row[f"separation_{label}"] = float(separation(heatmap, mask, distractor, brain))
    return row
