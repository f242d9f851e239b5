"""N4 bias-field correction (ANTs) inside a head mask, at a shrink factor that keeps it fast."""

import ants

MASK_MM = 4.0  # the head mask is found at this voxel size: N4 fits the field on a 4x shrunk grid


def n4(image):
    """Bias-corrected copy of an ANTs image; the mask keeps background noise out of the fit.
    The head mask is found on a coarse copy and brought back: on a 1 mm scan ANTs' mask clean-up
    at full resolution took 7.7 s of N4's 13 s."""
    coarse = ants.resample_image(image, (MASK_MM,) * 3, use_voxels=False, interp_type=0)
    head = ants.resample_image_to_target(
        ants.get_mask(coarse, cleanup=2), image, interp_type="nearestNeighbor"
    )
    return ants.n4_bias_field_correction(
        image, mask=head, shrink_factor=4, convergence={"iters": [20, 20, 10], "tol": 1e-4}
    )
