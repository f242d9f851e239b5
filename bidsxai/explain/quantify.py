"""Heatmap measures (Zhang et al. 2021): the 95th percentile of the brain-masked, max-normalised
map."""

import numpy as np


def max_normalise(heatmap, mask):
    """Divide by the maximum inside the mask (all zeros stay zeros); 0 outside the mask."""
    inside = np.where(mask, heatmap, 0.0)
    peak = float(inside.max()) if mask.any() else 0.0
    return inside / peak if peak > 0 else inside


def percentile_in_mask(heatmap, mask, q=95.0):
    """The q-th percentile of the max-normalised map, taken over brain voxels only."""
    return float(np.percentile(max_normalise(heatmap, mask)[mask], q))
