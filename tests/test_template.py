"""The template: nilearn's MNI152 copy is symmetric, so its space label is MNI152NLin2009aSym."""

import numpy as np
import pytest
from nilearn import datasets

from bidsxai.template import SPACE, load_template


@pytest.mark.parametrize(
    "load",
    [
        datasets.load_mni152_template,
        datasets.load_mni152_gm_template,
        datasets.load_mni152_wm_template,
        datasets.load_mni152_brain_mask,
    ],
)
def test_nilearns_mni152_equals_its_mirror_image_voxel_for_voxel(load):
    image = load()
    data = image.get_fdata()
    assert np.array_equal(data, data[::-1])
    first, last = image.affine @ [0, 0, 0, 1], image.affine @ [data.shape[0] - 1, 0, 0, 1]
    assert first[0] == -last[0]  # the mirror plane is x = 0
    assert SPACE == "MNI152NLin2009aSym"


@pytest.mark.parametrize("resolution", [2, 4])
def test_grids_that_keep_x_0_at_their_centre_stay_symmetric(resolution):
    """Grids whose spacing divides the 196 mm from x = -98 to 98 (the default 2 mm among them)."""
    template = load_template(resolution)
    for volume in (template.t1w, template.gm, template.brain_mask):
        assert np.allclose(volume, volume[::-1], atol=1e-6)
