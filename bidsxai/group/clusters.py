"""Tables of significant clusters: size, peak and the atlas regions they cover."""

import numpy as np
import pandas as pd
from scipy import ndimage

from bidsxai.group.atlas import lobe_summary, region_table


def cluster_table(stat, significant, affine, atlas=None, *, connectivity=1, top_regions=3):
    """One row per face-connected cluster of ``significant`` voxels, largest first: voxels,
    volume (mm^3), peak statistic and its coordinate (mm, template space), and with an atlas the
    peak's region, the regions holding most of the cluster and its share per lobe."""
    labels, count = ndimage.label(
        np.asarray(significant, bool), ndimage.generate_binary_structure(3, connectivity)
    )
    voxel_volume = abs(np.linalg.det(affine[:3, :3]))
    rows = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels[box] == index  # the cluster within its bounding box
        peak_in_box = np.unravel_index(
            np.argmax(np.where(inside, np.abs(stat[box]), -np.inf)), inside.shape
        )
        peak = tuple(int(p + b.start) for p, b in zip(peak_in_box, box))
        x, y, z = (affine @ np.r_[peak, 1.0])[:3]
        row = {
            "cluster": 0,
            "voxels": int(inside.sum()),
            "volume_mm3": float(inside.sum() * voxel_volume),
            "peak_stat": float(stat[peak]),
            "peak_x": float(x),
            "peak_y": float(y),
            "peak_z": float(z),
        }
        if atlas is not None:
            label = int(atlas.labels[peak])
            row["peak_region"] = atlas.names.get(label, "unlabelled")
            row["peak_lobe"] = atlas.lobes.get(label, "other")
            regions = region_table(inside.astype(float), atlas, labels=atlas.labels[box])
            row["regions"] = "; ".join(
                f"{r.region} {100 * r.share:.0f}%" for r in regions.head(top_regions).itertuples()
            )
            lobes = lobe_summary(regions).sort_values("share", ascending=False)
            row["lobes"] = "; ".join(f"{r.lobe} {100 * r.share:.0f}%" for r in lobes.itertuples())
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("voxels", ascending=False, kind="stable").reset_index(drop=True)
        table["cluster"] = np.arange(1, len(table) + 1)
    return table
