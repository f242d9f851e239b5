"""The intensity normalisations a model's input can have, and the range of values each gives it:
for LRP's z-beta bounds, the centre that voxel inverting reflects about, and an imported min-max
model's own range (``preprocess.normalise`` writes the images).

- ``percentile``: the 1st to 99th brain percentiles to [0, 1], clipped (bidsxai's default);
- ``zscore``: zero mean and unit variance within the brain;
- ``minmax``: the brain's minimum and maximum to [0, 1], unclipped, so one bright voxel compresses
  the rest (as MONAI's ``ScaleIntensity`` does); an imported model's card may ask for another
  range, which the model's input then takes linearly (``scaled_input``);
- ``none``: the bias-corrected intensities as they are, for models trained on raw values.

Every normalisation writes 0 outside the brain.
"""

import numpy as np

METHODS = ("percentile", "zscore", "minmax", "none")


def scaled_input(x, spec):
    """The model's input from the written images ``x``: min-max images ([0, 1]) are taken
    linearly to the card's ``intensity_range`` [a, b] where it names one, so that the background,
    0, becomes a, as MONAI's ``ScaleIntensity(minv=a, maxv=b)`` makes a skull-stripped image's
    background its minimum; every other input is used as written."""
    if spec.get("normalisation") == "minmax" and spec.get("intensity_range"):
        a, b = spec["intensity_range"]
        return (a + (b - a) * x).astype(np.float32)
    return x


def input_bounds(spec, x):
    """(low, high): the range of values the model's input can take: [0, 1] after percentile
    normalisation, the card's range (else [0, 1]) after min-max, and ``x``'s own minimum and
    maximum after z-scoring or none."""
    if spec.get("normalisation") == "percentile":
        return 0.0, 1.0
    if spec.get("normalisation") == "minmax":
        low, high = spec.get("intensity_range") or (0.0, 1.0)
        return float(low), float(high)
    return float(x.min()), float(x.max())


def inverting_centre(spec, x):
    """The value voxel inverting reflects about: the brain's mean, 0, after z-scoring; otherwise
    the middle of ``input_bounds``, which is Lu et al.'s 1 - x for inputs in [0, 1]."""
    if spec.get("normalisation") == "zscore":
        return 0.0
    low, high = input_bounds(spec, x)
    return (low + high) / 2
