"""The whole cohort at a glance in the group report: for one method and class, one thumbnail per
subject (its first session's max-normalised map over the template in the sagittal, coronal and
axial planes through the brain's centre), ordered by group, with the subjects the model
misclassified marked; each thumbnail opens its subject's report.

Thumbnails are coloured with numpy and written as small PNGs, not drawn as figures, so a cohort
of hundreds costs seconds; like every part of the group report they are made from files on disk.
"""

import base64
import io

import nibabel as nib
import numpy as np
from matplotlib import pyplot as plt

from bidsxai.derivatives import HeatmapSidecar
from bidsxai.explain.quantify import max_normalise
from bidsxai.outputs import sidecar_path
from bidsxai.reports.brain_figures import fading_inferno

SHOWN_PX = 96  # a thumbnail's height on screen (style.css); drawn at twice that, for sharpness


def brain_frame(template):
    """The voxel at the brain's centre, its coordinates in mm, and the brain's bounding box."""
    voxels = np.argwhere(template.brain_mask)
    centre = np.round(voxels.mean(0)).astype(int)
    box = tuple(slice(a, b + 1) for a, b in zip(voxels.min(0), voxels.max(0)))
    mm = [float(v) for v in (template.affine @ [*centre, 1])[:3]]
    return tuple(int(i) for i in centre), mm, box


def _planes(volume, centre, box):
    """The sagittal, coronal and axial slices of ``volume`` through ``centre``, cut to the brain's
    bounding ``box`` and turned so that rows run from superior (or anterior) down and columns from
    the subject's left (or posterior), as in the other figures."""
    x, y, z = centre
    inside = volume[box]
    x, y, z = x - box[0].start, y - box[1].start, z - box[2].start
    return [np.rot90(inside[x]), np.rot90(inside[:, y]), np.rot90(inside[:, :, z])]


def thumbnail(values, template, centre, box):
    """A PNG data URI of the three planes through ``centre`` within ``box`` side by side: the map
    clipped to [0, 1] in the reports' fading inferno over the template's T1w."""
    colourmap = fading_inferno()
    tiles = []
    for grey, heat in zip(_planes(template.t1w, centre, box), _planes(values, centre, box)):
        colours = colourmap(heat.clip(0, 1))
        alpha = colours[..., 3:4]
        tiles.append((1 - alpha) * grey.clip(0, 1)[..., None] + alpha * colours[..., :3])
    height = max(t.shape[0] for t in tiles)
    gap = np.zeros((height, 1, 3))
    row = []
    for tile in tiles:
        pad = np.zeros((height - tile.shape[0], tile.shape[1], 3))
        row += [np.concatenate([pad, tile]), gap]
    scale = max(1, round(2 * SHOWN_PX / height))  # pixels per voxel
    rgb = np.kron(np.concatenate(row[:-1], axis=1), np.ones((scale, scale, 1)))
    buffer = io.BytesIO()
    plt.imsave(buffer, rgb.clip(0, 1), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cohort_mosaic(rows, groups, template):
    """{"centre_mm": the planes' crossing point, "groups": [{group, thumbnails: [{subject, session,
    uri, predicted, misclassified}]}]} for the heatmap files ``rows`` (subject, session label or
    "n/a", path) of one method and class, with each subject's group from ``groups`` ({subject:
    group}); a subject is misclassified where its sidecar's predicted class is another of the
    groups (a map without a sidecar has no prediction)."""
    centre, centre_mm, box = brain_frame(template)
    names = set(groups.values())
    by_group = {}
    for subject, session, path in sorted(rows):
        if subject not in groups:
            continue
        values = max_normalise(np.asarray(nib.load(str(path)).dataobj, float), template.brain_mask)
        sidecar = sidecar_path(path)
        predicted = HeatmapSidecar.from_json(sidecar).predicted_class if sidecar.is_file() else None
        by_group.setdefault(groups[subject], []).append(
            {
                "subject": subject,
                "session": session,
                "uri": thumbnail(values, template, centre, box),
                "predicted": predicted,
                "misclassified": predicted in names and predicted != groups[subject],
            }
        )
    ordered = sorted(by_group, key=str)
    return {
        "centre_mm": centre_mm,
        "groups": [{"group": g, "thumbnails": by_group[g]} for g in ordered],
    }
