"""Threshold-free cluster enhancement (Smith & Nichols 2009) of a 3D statistic map.

TFCE(v) = sum over thresholds h <= stat(v) of extent(h, v)^E * h^H * dh, where extent is the size
(in voxels) of the cluster containing v among voxels with stat >= h, clusters joined by faces
(6-connectivity) by default; E = 0.5, H = 2. Thresholds run from dh to max |stat| in ``steps``
equal steps. Two-sided: negative clusters are enhanced from -stat and given a negative sign.
This is the paper's formula with dh; nilearn and fslmaths leave dh out.
"""

import numpy as np
from scipy import ndimage


def tfce(stat, mask=None, *, E=0.5, H=2.0, steps=100, two_sided=True, connectivity=1):
    """The TFCE map of ``stat`` (X, Y, Z); voxels outside ``mask`` are 0 and never join clusters.

    ``connectivity`` is scipy's rank: 1 = faces (6), 2 = edges (18), 3 = corners (26).
    """
    stat = np.asarray(stat, np.float64)
    if mask is not None:
        stat = np.where(mask, stat, 0.0)
    peak = np.abs(stat).max() if two_sided else max(stat.max(), 0.0)
    out = np.zeros_like(stat)
    if peak <= 0:
        return out
    thresholds = np.linspace(0, peak, steps + 1)[1:]
    dh = thresholds[0]
    structure = ndimage.generate_binary_structure(3, connectivity)
    for sign in ((1, -1) if two_sided else (1,)):
        signed = sign * stat
        for h in thresholds:
            above = signed >= h
            if not above.any():
                break
            labels, _ = ndimage.label(above, structure)
            extent = np.bincount(labels.ravel())
            extent[0] = 0
            out += sign * extent[labels] ** E * h ** H * dh
    return out
