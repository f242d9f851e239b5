"""Intensity normalisation within the brain mask, so models see comparable scales across
scanners; the choices and what each gives a model are in ``bidsxai.normalisations``."""

import numpy as np

from bidsxai.normalisations import METHODS


def normalise(data, mask, method="percentile", low=1.0, high=99.0):
    """``data`` normalised within ``mask`` by ``method`` (see the module); 0 outside the mask."""
    values = data[mask]
    if values.size == 0:
        raise ValueError("empty brain mask")
    if method == "percentile":
        lo, hi = np.percentile(values, [low, high])
        out = np.clip((data - lo) / max(hi - lo, 1e-6), 0, 1)
    elif method == "zscore":
        out = (data - values.mean()) / max(values.std(), 1e-6)
    elif method == "minmax":
        lo, hi = values.min(), values.max()
        out = (data - lo) / max(hi - lo, 1e-6)
    elif method == "none":
        out = data
    else:
        raise ValueError(f"unknown normalisation {method!r}; choose from {METHODS}")
    return np.where(mask, out, 0).astype(np.float32)
