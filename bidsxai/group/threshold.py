"""Per-subject thresholding of heatmaps before voxel-wise tests (paper 000)."""

import numpy as np

from bidsxai.explain.quantify import max_normalise


def threshold_at_percentile(heatmap, mask, q=95.0):
    """The max-normalised map where it reaches its own q-th brain percentile, 0 elsewhere."""
    normalised = max_normalise(heatmap, mask)
    cut = np.percentile(normalised[mask], q)
    return np.where(mask & (normalised >= cut) & (normalised > 0), normalised, 0.0).astype(np.float32)
