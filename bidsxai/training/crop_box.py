"""The model's crop: the box around the template's brain that a model reads, and the moves into
and out of it. Plain numpy, so the evaluations' records and the reports read it without torch."""

import numpy as np


def brain_crop(mask, margin=2):
    """[[lo, hi), ...] per axis around a boolean brain mask, widened by ``margin`` voxels."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append([max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[axis])])
    return box


def crop(volume, box):
    return volume[..., box[0][0] : box[0][1], box[1][0] : box[1][1], box[2][0] : box[2][1]]


def uncrop(volume, box, shape):
    """Place a cropped volume back into a zero volume of the full grid ``shape``."""
    full = np.zeros(tuple(volume.shape[:-3]) + tuple(shape), dtype=volume.dtype)
    full[..., box[0][0] : box[0][1], box[1][0] : box[1][1], box[2][0] : box[2][1]] = volume
    return full
