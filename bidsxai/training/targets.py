"""What a model learns to predict: a categorical participants.tsv column, a numeric one split at a
threshold (Lu et al. 2023: EDSS >= 5) or cut into ordered bins (Avci 2021: modified Rankin scale
0-2 and 3-6), and the per-subject loss weight Lu et al. (2023) derives from a threshold.

Subjects without a value (n/a) are left out, and counted, never silently."""

import re

import numpy as np
import pandas as pd

from bidsxai.errors import UsageError


def threshold_classes(column, threshold):
    """The two class names of a thresholded column, BIDS-label safe once punctuation is dropped."""
    return [f"{column}-lt{threshold:g}", f"{column}-ge{threshold:g}"]


_BIN = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*")


def parse_bins(text):
    """'0-2,3-6' -> [(0.0, 2.0), (3.0, 6.0)]: closed intervals, increasing, not overlapping."""
    bins = []
    for part in text.split(","):
        match = _BIN.fullmatch(part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not LOW-HIGH (e.g. 0-2,3-6)")
        low, high = float(match.group(1)), float(match.group(2))
        if low > high or (bins and low <= bins[-1][1]):
            raise ValueError("bins must be LOW <= HIGH, in increasing order, without overlap")
        bins.append((low, high))
    if len(bins) < 2:
        raise ValueError("give at least two bins")
    return bins


def bin_classes(column, bins):
    """The class names of binned values, in the bins' order: 'mrs0to2', 'mrs3to6'."""
    return [f"{column}{low:g}to{high:g}" for low, high in bins]


def target_classes(column, threshold=None, bins=None):
    """The classes a threshold or bins define (in order), or None for a categorical column."""
    if bins:
        return bin_classes(column, bins)
    if threshold is not None:
        return threshold_classes(column, threshold)
    return None


def _numbers(values, column, option):
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers[numbers.isna()].index.tolist()
    if bad:
        raise UsageError(
            f"{option}: column {column} is not numeric for sub-{', sub-'.join(bad[:3])}"
        )
    return numbers


def subject_targets(participants, column, threshold=None, bins=None):
    """(labels {subject: class name}, values {subject: number or None}, missing [subjects with
    n/a]) of the ``column``; a numeric column needs ``threshold`` or ``bins``."""
    if column not in participants.columns:
        raise UsageError(
            f"--target {column}: no such column in participants.tsv "
            f"(columns: {', '.join(participants.columns)})"
        )
    if threshold is not None and bins:
        raise UsageError("--target-threshold and --target-bins: give one of them")
    present = participants[column].dropna()
    missing = sorted(set(participants.index) - set(present.index))
    if threshold is None and not bins:
        numeric = pd.to_numeric(present, errors="coerce").notna().all() and len(present)
        if numeric and present.nunique() > 2:
            raise UsageError(
                f"--target {column}: a numeric column; give --target-threshold (two classes, "
                "e.g. 5) or --target-bins (ordered classes, e.g. 0-2,3-6)"
            )
        return {s: str(v) for s, v in present.items()}, {s: None for s in present.index}, missing
    if bins:
        numbers = _numbers(present, column, "--target-bins")
        names = bin_classes(column, bins)
        labels = {}
        for subject, v in numbers.items():
            found = [n for n, (low, high) in zip(names, bins) if low <= v <= high]
            if not found:
                raise UsageError(f"--target-bins: sub-{subject}'s {column} {v:g} lies in no bin")
            labels[subject] = found[0]
        return labels, {s: float(v) for s, v in numbers.items()}, missing
    numbers = _numbers(present, column, "--target-threshold")
    below, above = threshold_classes(column, threshold)
    return (
        {s: above if v >= threshold else below for s, v in numbers.items()},
        {s: float(v) for s, v in numbers.items()},
        missing,
    )


def known_classes(participants, meta):
    """{subject: class} of the subjects a bundle's target defines (its column, threshold or
    bins), for the reports and the group level; subjects without a value are left out."""
    if meta.get("target") not in participants.columns:
        return {}
    labels, _, _ = subject_targets(
        participants, meta["target"], meta.get("target_threshold"), meta.get("target_bins")
    )
    return labels


def closeness_weights(values, threshold):
    """Lu et al.'s (2023) loss weight 2 - |value - threshold| / threshold (EDSS: 2 - |EDSS - 5| /
    5): subjects near the decision boundary weigh up to 2, those far from it down to 1."""
    values = np.asarray(values, float)
    return 2.0 - np.abs(values - threshold) / threshold
