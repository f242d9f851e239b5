"""Intensity normalisation within the brain mask, so models see comparable scales across
scanners."""

import numpy as np

METHODS = ("percentile", "zscore")


def normalise(data, mask, method="percentile", low=1.0, high=99.0):
    """Map brain intensities to [0, 1] between robust percentiles (or z-score); 0 outside the
    mask."""
    values = data[mask]
    if values.size == 0:
        raise ValueError("empty brain mask")
    if method == "percentile":
        lo, hi = np.percentile(values, [low, high])
        out = np.clip((data - lo) / max(hi - lo, 1e-6), 0, 1)
    elif method == "zscore":
        out = (data - values.mean()) / max(values.std(), 1e-6)
    else:
        raise ValueError(f"unknown normalisation {method!r}; choose from {METHODS}")
    return np.where(mask, out, 0).astype(np.float32)
