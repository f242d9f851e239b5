"""What a model learns to predict: a categorical participants.tsv column, or a numeric one split
at a threshold (Lu et al. 2023: EDSS >= 5), and the per-subject loss weight Lu et al. (2023) derives
from it."""

import numpy as np
import pandas as pd

from bidsxai.errors import UsageError


def threshold_classes(column, threshold):
    """The two class names of a thresholded column, BIDS-label safe once punctuation is dropped."""
    return [f"{column}-lt{threshold:g}", f"{column}-ge{threshold:g}"]


def subject_targets(participants, column, threshold=None):
    """(labels {subject: class name}, values {subject: number or None}) of subjects with a value."""
    if column not in participants.columns:
        raise UsageError(
            f"--target {column}: no such column in participants.tsv "
            f"(columns: {', '.join(participants.columns)})"
        )
    values = participants[column].dropna()
    if threshold is None:
        return {s: str(v) for s, v in values.items()}, {s: None for s in values.index}
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers[numbers.isna()].index.tolist()
    if bad:
        raise UsageError(
            f"--target-threshold: column {column} is not numeric for sub-{', sub-'.join(bad[:3])}"
        )
    below, above = threshold_classes(column, threshold)
    return (
        {s: above if v >= threshold else below for s, v in numbers.items()},
        {s: float(v) for s, v in numbers.items()},
    )


def closeness_weights(values, threshold):
    """Lu et al.'s (2023) loss weight 2 - |value - threshold| / threshold (EDSS: 2 - |EDSS - 5| /
    5): subjects near the decision boundary weigh up to 2, those far from it down to 1."""
    values = np.asarray(values, float)
    return 2.0 - np.abs(values - threshold) / threshold
