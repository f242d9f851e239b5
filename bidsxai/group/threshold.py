"""Per-subject thresholding of heatmaps before voxel-wise tests: at the subject's own 95th brain
percentile (Zhang et al. 2021) or as a top-N % quantile mask of the positive values (Lu et al.
2023)."""

import numpy as np

from bidsxai.explain.quantify import max_normalise


def threshold_at_percentile(heatmap, mask, q=95.0):
    """The max-normalised map where it reaches its own q-th brain percentile, 0 elsewhere."""
    normalised = max_normalise(heatmap, mask)
    cut = np.percentile(normalised[mask], q)
    return np.where(mask & (normalised >= cut) & (normalised > 0), normalised, 0.0).astype(
        np.float32
    )


def quantile_mask(heatmap, mask, top_percent):
    """Brain voxels among the top ``top_percent`` % of the map's positive values (Lu et al. 2023:
    quantiles of positive relevance within the brain), as a bool array."""
    values = np.asarray(heatmap, np.float64)
    positive = mask & (values > 0)
    if not positive.any():
        return positive
    cut = np.percentile(values[positive], 100.0 - top_percent)
    return positive & (values >= cut)


def parse_threshold(spec):
    """A function (heatmap, mask) -> thresholded max-normalised map for ``p<q>`` (the subject's own
    q-th brain percentile, Zhang et al. 2021) or ``top<N>`` (top N % quantile mask, Lu et al.
    2023)."""
    kind = "top" if spec.startswith("top") else spec[:1]
    number = spec[len(kind) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if kind not in ("p", "top") or not 0 < value < 100:
        raise ValueError(
            f"threshold {spec!r}: use p<q> (e.g. p95) or top<N> (e.g. top40), 0 < q, N < 100"
        )
    if kind == "p":
        return lambda heatmap, mask: threshold_at_percentile(heatmap, mask, value)
    return lambda heatmap, mask: np.where(
        quantile_mask(heatmap, mask, value), max_normalise(heatmap, mask), 0.0
    ).astype(np.float32)
