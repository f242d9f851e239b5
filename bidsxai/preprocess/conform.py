"""Load an anatomical image, refuse what is not a readable 3D volume, and reorient it to RAS."""

import nibabel as nib
import numpy as np

from bidsxai.errors import NoInputError
from bidsxai.nifti import read_image

# N4 finds its head mask on a 4 mm copy (preprocess/bias.py), which needs two voxels per axis.
MIN_EXTENT_MM = 8.0


def load_volume(path):
    """A float32 RAS-oriented 3D image; one-line ``NoInputError`` for corrupt, truncated or 4D
    files.

    Reorientation changes only the voxel order, never world coordinates, so transforms estimated
    on the conformed image apply to the original file too.
    """
    img, data = read_image(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NoInputError(f"{path}: expected a 3D image, got shape {data.shape}")
    if not np.isfinite(data).all() or float(data.max()) <= float(data.min()):
        raise NoInputError(f"{path}: image is empty or has non-finite values")
    linear = np.asarray(img.affine[:3, :3], np.float64)
    if not np.isfinite(linear).all() or abs(np.linalg.det(linear)) < 1e-9:
        raise NoInputError(
            f"{path}: its affine is degenerate (zero or non-finite voxel sizes), so "
            "the image has no place in space"
        )
    extent = np.array(data.shape) * np.linalg.norm(linear, axis=0)
    if extent.min() < MIN_EXTENT_MM:
        raise NoInputError(
            f"{path}: its field of view is {extent.min():.3g} mm along one axis, too small for a "
            f"head (at least {MIN_EXTENT_MM:g} mm)"
        )
    img = nib.Nifti1Image(data, img.affine)
    img.header.set_xyzt_units("mm", "sec")
    return nib.as_closest_canonical(img)
