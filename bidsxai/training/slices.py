"""Axial slices of template-space volumes for the 2D models of paper 000: which slices hold brain,
slices resized to the model's input size, and per-slice maps stacked back into a volume."""

import numpy as np
import torch
import torch.nn.functional as F


def kept_slices(brain_mask, min_fraction=0.05):
    """Axial indices whose brain area is at least ``min_fraction`` of the largest slice's
    (paper 000 dropped the top and bottom slices without visible brain)."""
    area = np.asarray(brain_mask, bool).sum(axis=(0, 1))
    return [int(z) for z in np.flatnonzero(area >= min_fraction * area.max())]


def to_slices(volume, kept, size):
    """(C, X, Y, Z) array -> (len(kept), C, size, size) float32 tensor (bilinear resize)."""
    slices = torch.as_tensor(np.ascontiguousarray(np.moveaxis(np.asarray(volume, np.float32)[..., kept], -1, 0)))
    return F.interpolate(slices, size=(size, size), mode="bilinear", align_corners=False)


def restack(maps, kept, shape):
    """(len(kept), T, size, size) slice maps -> (T, X, Y, Z) volume; slices not kept are 0."""
    x, y, z = shape
    resized = F.interpolate(maps, size=(x, y), mode="bilinear", align_corners=False)
    volume = torch.zeros(maps.shape[1], x, y, z, dtype=maps.dtype, device=maps.device)
    volume[..., kept] = resized.permute(1, 2, 3, 0)
    return volume


class SliceDataset(torch.utils.data.Dataset):
    """Every kept slice of every volume, subject-major; volumes held once as float16; optional
    left-right flips for training."""

    def __init__(self, volumes, labels, kept, size, flip=False, seed=0):
        self.volumes = np.asarray(volumes, np.float16)
        self.kept, self.size, self.flip = list(kept), size, flip
        self.labels = np.repeat(np.asarray(labels, np.int64), len(self.kept))
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        subject, k = divmod(i, len(self.kept))
        image = self.volumes[subject][..., self.kept[k]].astype(np.float32)  # (C, X, Y)
        if self.flip and self.rng.random() < 0.5:
            image = image[:, ::-1].copy()  # X is left-right in RAS
        x = F.interpolate(torch.from_numpy(image)[None], size=(self.size, self.size), mode="bilinear",
                          align_corners=False)[0]
        return x, int(self.labels[i])


def subject_probabilities(slice_probabilities, n_slices):
    """Mean slice probability per subject, from subject-major (N * n_slices, classes) rows."""
    return slice_probabilities.reshape(-1, n_slices, slice_probabilities.shape[-1]).mean(1)
