"""The subject's own brain mask from its T1w, by deepbet (Fisch et al. 2024).

deepbet is a pair of 3D CNNs (a coarse one that finds the brain's box, a fine one inside it) whose
weights ship inside its wheel, so nothing downloads. Its mask replaces the template's brain mask
pulled back through the registration, which only fits brains shaped like the template's. deepbet
was trained on T1w scans of about 1 mm, so ``--skull-strip auto`` uses it where the T1w's voxels
are at most 1.5 mm and keeps the template's mask for coarser images (the synthetic test cohorts).
On 1 mm scanner-like synthetic T1w scans its Dice with the true brain was 0.98-0.99, in 3.3 s on
2 CPU cores (docs/benchmarks.md).
"""

import warnings
from functools import cache

import numpy as np

FINEST_TEMPLATE_FREE_MM = 1.5  # auto: deepbet for T1w voxels up to this size


def uses_deepbet(mode, image):
    """Whether ``--skull-strip mode`` runs deepbet on this T1w (nibabel image)."""
    if mode == "auto":
        return float(max(image.header.get_zooms()[:3])) <= FINEST_TEMPLATE_FREE_MM
    return mode == "deepbet"


@cache
def _network():
    with warnings.catch_warnings():  # deepbet's import warns about its optional GUI
        warnings.simplefilter("ignore")
        from deepbet.bet import BrainExtraction

        return BrainExtraction(no_gpu=True)


def deepbet_mask(image):
    """A boolean brain mask on the grid of ``image`` (a RAS-ordered nibabel T1w)."""
    network = _network()
    data = np.asarray(image.dataobj, np.float32)
    mask = network.run_model(data.copy()) > 0.5
    return network.postprocess(mask).astype(bool)
