"""Does the map find the reference region (a lesion mask, say)?

- AUROC: the probability that a voxel inside the mask outscores one outside it, within the brain
  (Mann-Whitney, ties counted half), so a constant map scores exactly 0.5;
- pointing game: whether the map's peak within the brain lies within ``tolerance_mm`` of the mask.
  Where several voxels share the maximum (a plateau, a constant map), the hit is the share of
  them within the tolerance and the peak distance their mean: the expectation of breaking the tie
  at random, so a constant map scores the chance rate instead of a hit or a miss decided by
  where the first brain voxel lies in raster order;
- mass inside: the share of the map's positive mass within the brain that lies inside the mask.
"""

import numpy as np
from scipy import ndimage

from bidsxai.training.metrics import binary_auc


def localisation(
    maps: np.ndarray,
    masks: np.ndarray,
    *,
    brain: np.ndarray,
    tolerance_mm: float = 6.0,
    voxel_size: tuple | float = 1.0,
) -> dict[str, np.ndarray]:
    """{"auroc", "pointing", "peak_distance_mm", "mass_inside"}, one value per map.

    maps: (N, *spatial) or (*spatial), in any number of dimensions; masks: boolean, the same
    shape or one (*spatial) for all; brain: (*spatial) boolean, the voxels that count.
    """
    maps = np.asarray(maps, np.float64)
    brain = np.asarray(brain, bool)
    single = maps.shape == brain.shape
    maps = maps[None] if single else maps
    masks = np.broadcast_to(np.asarray(masks, bool), maps.shape)
    out = {k: np.empty(len(maps)) for k in ("auroc", "pointing", "peak_distance_mm", "mass_inside")}
    for i, (heatmap, mask) in enumerate(zip(maps, masks)):
        inside = mask & brain
        values = heatmap[brain]
        positive = inside[brain]
        out["auroc"][i] = binary_auc(values[positive], values[~positive])
        if not inside.any():
            out["pointing"][i] = out["peak_distance_mm"][i] = out["mass_inside"][i] = np.nan
            continue
        distance = ndimage.distance_transform_edt(~inside, sampling=voxel_size)[brain]
        tied = distance[values == values.max()]
        out["peak_distance_mm"][i] = tied.mean()
        out["pointing"][i] = np.mean(tied <= tolerance_mm)
        mass = np.clip(heatmap, 0, None)
        total = mass[brain].sum()
        out["mass_inside"][i] = mass[inside].sum() / total if total > 0 else np.nan
    return {k: v[0] if single else v for k, v in out.items()}
