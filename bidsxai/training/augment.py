"""Training-time augmentation as the papers describe it, drawn from torch's generator so that
every DataLoader worker gets its own reproducible stream.

- ``slice-affine`` (2D slices; the Keras ImageDataGenerator settings of Zhang et al. 2021): rotation
  +-30 deg, shear range 0.2 (Keras reads it as an angle in degrees), zoom 0.8-1.2 per axis, shifts
  up to 10 % of the width and height, horizontal (left-right) flip.
- ``volume-affine`` (3D volumes; Lu et al. 2023): flips, 90-degree rotations in the axial plane (180
  degrees when the plane is not square), additive Gaussian noise (sd 0.2), affine
  rotation up to +-30 deg about each axis and scaling by +-10 %; each step with probability 0.5.
- ``flip``: left-right flip only; ``none``.
``paper000`` and ``paper001`` are older names of the first two.
Samples are (C, X, Y[, Z]) tensors with X left-right; outside the field of view is filled with 0.
"""

import math

import torch
import torch.nn.functional as F


def _uniform(low, high, size=()):
    return low + (high - low) * torch.rand(size)


def _chance(p=0.5):
    return bool(torch.rand(()) < p)


def _resample(x, theta):
    """x (C, *spatial) sampled at theta @ [output coordinates, 1] (normalised [-1, 1] grid)."""
    grid = F.affine_grid(theta[None].to(x.dtype), [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
        0
    ]


def slice_affine(x):
    """One random Keras-style 2D transform of a (C, X, Y) slice."""
    angle = math.radians(float(_uniform(-30, 30)))
    shear = math.radians(float(_uniform(-0.2, 0.2)))
    zoom = _uniform(0.8, 1.2, (2,))
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    shearing = torch.tensor([[1.0, -math.sin(shear)], [0.0, math.cos(shear)]])
    matrix = rotation @ shearing @ torch.diag(zoom)
    theta = torch.cat(
        [matrix, (_uniform(-0.1, 0.1, (2, 1)) * 2)], 1
    )  # shift: fraction of the width
    out = _resample(x, theta)
    return out.flip(1) if _chance() else out


def _rotation_3d(angles):
    a, b, c = (math.radians(float(v)) for v in angles)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def volume_affine(x):
    """One random 3D transform of a (C, X, Y, Z) volume."""
    for axis in (1, 2, 3):
        if _chance():
            x = x.flip(axis)
    if _chance():  # a quarter turn would change the shape of a non-square axial plane
        k = int(torch.randint(1, 4, ())) if x.shape[1] == x.shape[2] else 2
        x = torch.rot90(x, k, dims=(1, 2))
    if _chance():
        matrix = _rotation_3d(_uniform(-30, 30, (3,))) @ torch.diag(_uniform(0.9, 1.1, (3,)))
        x = _resample(x, torch.cat([matrix, torch.zeros(3, 1)], 1))
    if _chance():
        x = x + 0.2 * torch.randn(x.shape, dtype=x.dtype)
    return x.contiguous()


def flip(x):
    return x.flip(1) if _chance() else x


SCHEMES = {"none": None, "flip": flip, "slice-affine": slice_affine, "volume-affine": volume_affine}
SCHEME_ALIASES = {"paper000": "slice-affine", "paper001": "volume-affine"}


def augmenter(scheme):
    """The augmentation function of a scheme name (or an older alias), or None for 'none'."""
    return SCHEMES[SCHEME_ALIASES.get(scheme, scheme)]
