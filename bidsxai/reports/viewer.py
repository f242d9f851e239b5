"""The data of the subject report's slice viewer (``resources/reports/subject/viewer.js``): one
session's images, heatmaps, reference masks and atlas labels on the template grid, cut to the
template brain's bounding box and stored in the page, so that it scrolls through the volume
offline and without a request.

Each volume is quantised to 8 bits (images to their 99.5th brain percentile, maps to their
maximum within the brain, as the report's figures scale them), compressed with zlib and written as
base64; the browser inflates it with ``DecompressionStream``. At 2 mm a contrast takes about
0.3 MB of the page and a Grad-CAM map about 0.15 MB.
"""

import base64
import zlib

import numpy as np

from bidsxai.reports.brain_figures import fading_inferno

SCREEN_PX = 240  # the longest side of each plane on screen


def _packed(volume, dtype=np.uint8):
    return base64.b64encode(zlib.compress(np.ascontiguousarray(volume, dtype).tobytes(), 6)).decode(
        "ascii"
    )


def _bytes(values):
    return np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)


def viewer_data(images, maps, masks, template, atlas=None):
    """The viewer's JSON: ``images`` {contrast: array} and ``maps`` {label: array} on the template
    grid, ``masks`` {label: bool array}, ``atlas`` a ``group.atlas.Atlas`` or None."""
    brain = template.brain_mask
    corners = np.argwhere(brain)
    low = np.maximum(corners.min(0) - 1, 0)
    high = np.minimum(corners.max(0) + 2, brain.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    affine = template.affine.copy()
    affine[:3, 3] = template.affine[:3, :3] @ low + template.affine[:3, 3]
    shape = [int(b - a) for a, b in zip(low, high)]

    def image(values):
        inside = values[brain]
        top = np.percentile(inside, 99.5) if inside.size and inside.max() > 0 else 1.0
        return _packed(_bytes(np.where(brain, values, 0)[box] / (top or 1.0)))

    def scaled(values):
        peak = values[brain].max() if brain.any() else 0.0
        return _packed(
            _bytes(np.where(brain, values, 0)[box] / peak if peak > 0 else 0 * values[box])
        )

    data = {
        "shape": shape,
        "affine": affine[:3].tolist(),
        "scale": max(1, round(SCREEN_PX / max(shape))),
        "colours": np.rint(fading_inferno()(np.linspace(0, 1, 256)) * 255).astype(int).tolist(),
        "images": {name: image(values) for name, values in images.items()},
        "maps": {name: scaled(values) for name, values in maps.items()},
        "masks": {name: _packed(mask[box]) for name, mask in masks.items()},
        "atlas": None,
    }
    if atlas is not None:
        wide = int(atlas.labels.max()) > 255
        data["atlas"] = {
            "labels": _packed(atlas.labels[box], np.uint16 if wide else np.uint8),
            "bytes": 2 if wide else 1,
            "names": {int(k): v for k, v in atlas.names.items()},
        }
    return data
