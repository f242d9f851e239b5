"""Lesion load: the volume and the number of separate lesions of each reference mask of a session
(``--derivatives masks=PATH``), measured on the mask as the user gave it. A T1w-space mask is
preferred, so the volume is the subject's own; a mask that exists only in template space gives the
volume in template space (after spatial normalisation). Lesions are counted as connected
components under 26-connectivity (voxels touching at a face, edge or corner are one lesion)."""

import nibabel as nib
import numpy as np
from scipy import ndimage

from bidsxai.derivatives import LesionLoad
from bidsxai.workflows.reference_masks import chosen_masks


def lesion_load(mask, voxel_size_mm):
    """(volume in mm^3, number of 26-connected components) of a boolean mask."""
    mask = np.asarray(mask, bool)
    _, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return float(mask.sum() * np.prod(voxel_size_mm)), int(count)


def mask_loads(settings, session, template):
    """{label: ``LesionLoad``} of every reference mask of the session."""
    loads = {}
    for name, found in chosen_masks(settings, session, template, prefer="T1w").items():
        image = nib.load(str(found.path))
        mask = np.asarray(image.dataobj) > 0
        loads[name] = LesionLoad(*lesion_load(mask, image.header.get_zooms()[:3]))
    return loads
