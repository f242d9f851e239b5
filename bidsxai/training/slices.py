"""Axial slices of template-space volumes for the 2D models of Zhang et al. (2021): which slices
hold brain, slices resized to the model's input size, and per-slice maps stacked back into a
volume."""

import numpy as np
import torch
import torch.nn.functional as F

from bidsxai.training.dataset import VolumeDataset


def kept_slices(brain_mask, min_fraction=0.05):
    """Axial indices whose brain area is at least ``min_fraction`` of the largest slice's
    (Zhang et al. 2021 dropped the top and bottom slices without visible brain)."""
    area = np.asarray(brain_mask, bool).sum(axis=(0, 1))
    return [int(z) for z in np.flatnonzero(area >= min_fraction * area.max())]


def to_slices(volume, kept, size):
    """(C, X, Y, Z) array -> (len(kept), C, size, size) float32 tensor (bilinear resize)."""
    slices = torch.as_tensor(
        np.ascontiguousarray(np.moveaxis(np.asarray(volume, np.float32)[..., kept], -1, 0))
    )
    return F.interpolate(slices, size=(size, size), mode="bilinear", align_corners=False)


def restack(maps, kept, shape):
    """(len(kept), T, size, size) slice maps -> (T, X, Y, Z) volume; slices not kept are 0."""
    x, y, z = shape
    resized = F.interpolate(maps, size=(x, y), mode="bilinear", align_corners=False)
    volume = torch.zeros(maps.shape[1], x, y, z, dtype=maps.dtype, device=maps.device)
    volume[..., kept] = resized.permute(1, 2, 3, 0)
    return volume


class SliceDataset(VolumeDataset):
    """Every kept axial slice of every volume, subject-major, resized to ``size`` x ``size``;
    labels, weights and covariates are given per volume and shared by its slices."""

    def __init__(self, arrays, labels, kept, size, weights=None, covariates=None, augment=None):
        super().__init__(arrays, labels, weights, covariates, augment)
        self.kept, self.size = list(kept), size
        self.labels = np.repeat(self.labels, len(self.kept))

    def owner(self, i):
        return i // len(self.kept)

    def sample(self, i):
        subject, k = divmod(i, len(self.kept))
        image = np.asarray(self.arrays[subject][..., self.kept[k]], np.float32)  # (C, X, Y)
        return F.interpolate(
            torch.from_numpy(image)[None],
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
        )[0]

    def subject_labels(self):
        return self.labels[:: len(self.kept)]

    def subject_probabilities(self, probabilities):
        return subject_probabilities(probabilities, len(self.kept))


def subject_probabilities(slice_probabilities, n_slices):
    """Mean slice probability per subject, from subject-major (N * n_slices, classes) rows."""
    return slice_probabilities.reshape(-1, n_slices, slice_probabilities.shape[-1]).mean(1)
