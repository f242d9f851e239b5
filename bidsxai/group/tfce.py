"""Threshold-free cluster enhancement (Smith & Nichols 2009) of a 3D statistic map.

TFCE(v) = sum over thresholds h <= stat(v) of extent(h, v)^E * h^H * dh, where extent is the size
(in voxels) of the cluster containing v among voxels with stat >= h, clusters joined by faces
(6-connectivity) by default; E = 0.5, H = 2. Thresholds run from dh to max |stat| in ``steps``
equal steps. Two-sided: negative clusters are enhanced from -stat and given a negative sign.
This is the paper's formula with dh; nilearn and fslmaths leave dh out.
"""

import numpy as np

from bidsxai.group.lattice import neighbour_table, tfce_values


def tfce(
    stat: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    E: float = 0.5,
    H: float = 2.0,
    steps: int = 100,
    two_sided: bool = True,
    connectivity: int = 1,
) -> np.ndarray:
    """The TFCE map of ``stat`` (X, Y, Z); voxels outside ``mask`` are 0 and never join clusters.

    ``connectivity`` is scipy's rank: 1 = faces (6), 2 = edges (18), 3 = corners (26).
    """
    stat = np.asarray(stat, np.float64)
    mask = np.ones(stat.shape, bool) if mask is None else np.asarray(mask, bool)
    out = np.zeros_like(stat)
    out[mask] = tfce_values(
        stat[mask], neighbour_table(mask, connectivity), E=E, H=H, steps=steps, two_sided=two_sided
    )
    return out
