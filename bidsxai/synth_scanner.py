"""Scans as scanners write them, for ``bidsxai-synth --scanner-like``.

Why: a cohort sampled on tidy grids around the head hides what real files do to a pipeline. Here the
T1w is a 1 mm sagittal acquisition of 256 x 256 x 176 voxels, the FLAIR a 0.9 x 0.9 x 1.2 mm volume
or 3 mm axial slices stored LAS or LPS, every grid is oblique, the field of view reaches down to the
neck and shoulders, the data are int16 with ``scl_slope``/``scl_inter``, and the headers vary the
way converters write them: qform and sform equal, different (the sform is right, as nibabel reads
it), or only one of them set.
"""

import nibabel as nib
import numpy as np

# Tissue intensities of the neck and shoulders (muscle, fat) per contrast, relative units as in
# synth.INTENSITY.
BODY = {
    "T1w": {"muscle": 0.32, "fat": 0.85},
    "T2w": {"muscle": 0.22, "fat": 0.60},
    "FLAIR": {"muscle": 0.28, "fat": 0.55},
}
HEADERS = ("both", "differ", "qform", "sform")
HEAD_TOP_MM = 82.0  # the top of the scalp in MNI z, about


def _rotation(axis, degrees):
    """A rotation matrix about x, y or z (0, 1, 2)."""
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def acquisition(contrast, pose, rng):
    """(shape, affine, description) of one oblique acquisition grid around the posed head.

    The axes are those a scanner stores: the T1w sagittal (superior to inferior, anterior to
    posterior, right to left), the others axial in LAS or LPS order. The grid is tilted by up to
    12 degrees and placed so the head's top is just inside the field of view, which then extends
    to the neck and shoulders."""
    if contrast == "T1w":
        shape, voxel = (256, 256, 176), np.array([1.0, 1.0, 1.0])
        axes = np.array([[0, 0, -1], [0, -1, 0], [-1, 0, 0]], float).T  # columns: S->I, A->P, R->L
        label = "sagittal 1 mm"
    else:
        thick = rng.random() < 0.5
        voxel = np.array([0.9, 0.9, 3.0 if thick else 1.2])
        shape = (256, 256, 50 if thick else 144)
        order = "LPS" if rng.random() < 0.5 else "LAS"
        axes = np.diag([-1.0, -1.0 if order == "LPS" else 1.0, 1.0])
        label = f"axial {order} {'3 mm slices' if thick else '0.9 x 0.9 x 1.2 mm'}"
    tilt = _rotation(0, rng.uniform(-12, 12)) @ _rotation(1, rng.uniform(-6, 6))
    linear = tilt @ axes * voxel
    edges = linear * (np.array(shape) - 1)  # each axis's full length, as a world vector
    up = pose[:3, :3] @ [0, 0, 1.0]
    up /= np.linalg.norm(up)
    top = pose[:3, :3] @ [0.0, -18.0, HEAD_TOP_MM] + pose[:3, 3]
    centre = pose[:3, :3] @ [0.0, -18.0, 10.0] + pose[:3, 3]
    # Centre the grid on the head, then slide it along the head's axis until the middle of its
    # upper face lies 8 mm above the top of the scalp.
    half_height = np.abs(edges.T @ up).max() / 2
    centre = centre + up * ((top - centre) @ up + 8.0 - half_height)
    origin = centre - edges.sum(1) / 2
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, origin
    return shape, affine, label


def add_body(image, contrast, mni, head):
    """Neck and shoulders below the head, evaluated at each voxel's MNI coordinates ``mni``
    (3, *shape): an elliptic neck with a fat rim and a dark spine, and shoulders below it."""
    x, y, z = mni
    neck_r = np.sqrt((x / 55.0) ** 2 + ((y + 15.0) / 60.0) ** 2)
    neck = (neck_r < 1.0) & (z < -55.0)
    shoulders = (z < -150.0) & (np.abs(x) < 200.0) & (np.abs(y + 15.0) < 70.0)
    body = (neck | shoulders) & ~head
    fat = body & ((neck & (neck_r > 0.88)) | (shoulders & (z > -158.0)))
    spine = body & (np.sqrt(x**2 + (y + 40.0) ** 2) < 9.0)
    values = BODY[contrast]
    image[body] = values["muscle"]
    image[fat] = values["fat"]
    image[spine] = 0.05
    return image


def scanner_file(data, affine, header, rng):
    """An int16 NIfTI with scl_slope/scl_inter and the qform/sform variant ``header``:
    "both" (equal), "differ" (the sform is the true grid, the qform its nearest grid without
    obliquity, as some converters write), "qform" or "sform" (the other code is 0)."""
    peak = rng.uniform(800, 4000)  # scanners' arbitrary units
    data = data / max(float(data.max()), 1e-6) * peak
    slope = peak / 30000.0 * rng.uniform(1.0, 1.2)  # the peak stored below int16's 32767
    inter = -float(rng.uniform(0, 20)) * slope
    stored = np.clip(np.round((data - inter) / slope), -32768, 32767).astype(np.int16)
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(slope, inter)
    image.header.set_xyzt_units("mm", "sec")
    straight = _nearest_straight(affine)
    qform, sform = {
        "both": ((affine, 1), (affine, 1)),
        "differ": ((straight, 1), (affine, 1)),
        "qform": ((affine, 1), (affine, 0)),
        "sform": ((affine, 0), (affine, 1)),
    }[header]
    image.header.set_qform(*qform)
    image.header.set_sform(*sform)
    return image


def _nearest_straight(affine):
    """The affine with each voxel axis turned onto its nearest world axis (obliquity removed),
    keeping the voxel sizes and the first voxel's position."""
    linear = affine[:3, :3]
    sizes = np.linalg.norm(linear, axis=0)
    straight = np.zeros((3, 3))
    for column in range(3):
        row = int(np.argmax(np.abs(linear[:, column])))
        straight[row, column] = np.sign(linear[row, column]) * sizes[column]
    result = affine.copy()
    result[:3, :3] = straight
    return result
