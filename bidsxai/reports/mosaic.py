"""The whole cohort at a glance in the group report: for one method and class, one axial thumbnail
per subject (its first session's max-normalised map over the template), ordered by group, with
the subjects the model misclassified marked; each thumbnail opens its subject's report.

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

SCALE = 3  # pixels per voxel: a 6 mm map stays legible, a 2 mm one stays small


def axial_slice(template):
    """The axial slice through the brain's centre, as (index, its z in mm)."""
    z = int(np.round(np.nonzero(template.brain_mask)[2].mean()))
    return z, float((template.affine @ [0, 0, z, 1])[2])


def thumbnail(values, grey, z):
    """A PNG data URI of one axial slice: the map clipped to [0, 1] in the reports' fading inferno
    over ``grey`` (the template's T1w slice as RGB); anterior up, the subject's left on the left,
    as in the other figures."""
    colours = fading_inferno()(values[:, :, z].clip(0, 1))
    alpha = colours[..., 3:4]
    rgb = (1 - alpha) * grey + alpha * colours[..., :3]
    rgb = np.rot90(rgb)  # x, y -> rows top to bottom = anterior to posterior
    rgb = np.kron(rgb, np.ones((SCALE, SCALE, 1)))
    buffer = io.BytesIO()
    plt.imsave(buffer, rgb.clip(0, 1), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cohort_mosaic(rows, groups, template):
    """{"z_mm": the slice's height, "groups": [{group, thumbnails: [{subject, uri, predicted,
    misclassified}]}]} for the heatmap files
    ``rows`` (subject, path) of one method and class, with each subject's group from ``groups``
    ({subject: group}); a subject is misclassified where its sidecar's predicted class is another
    of the groups (a map without a sidecar has no prediction)."""
    z, z_mm = axial_slice(template)
    grey = np.repeat(template.t1w[:, :, z, None].clip(0, 1), 3, axis=-1)
    names = set(groups.values())
    by_group = {}
    for subject, path in sorted(rows):
        if subject not in groups:
            continue
        values = max_normalise(np.asarray(nib.load(str(path)).dataobj, float), template.brain_mask)
        sidecar = sidecar_path(path)
        predicted = HeatmapSidecar.from_json(sidecar).predicted_class if sidecar.is_file() else None
        by_group.setdefault(groups[subject], []).append(
            {
                "subject": subject,
                "uri": thumbnail(values, grey, z),
                "predicted": predicted,
                "misclassified": predicted in names and predicted != groups[subject],
            }
        )
    ordered = sorted(by_group, key=str)
    return {"z_mm": z_mm, "groups": [{"group": g, "thumbnails": by_group[g]} for g in ordered]}
