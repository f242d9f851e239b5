"""Registration with ANTs: contrasts to T1w (rigid) and T1w to the template (affine or SyN).

The template is skull-stripped while the subject images keep skull and scalp, so the template
registration uses a dilated template brain mask as the fixed mask: without it the metric is pulled
by the scalp (on the synthetic cohort lesion Dice fell from 0.93 to 0.42).
"""

from pathlib import Path

import ants
import ants.config
import numpy as np

# Affine pyramid of ANTs' defaults as (shrink factor, smoothing sigma in voxels, iterations).
_PYRAMID = ((6, 3, 2100), (4, 2, 1200), (2, 1, 1200), (1, 0, 10))
_COARSEST_MM = 12.0


def seed_ants(seed):
    """Make registration reproducible: ANTs samples its metric at random points, seeded from the
    clock unless it is given a seed, and it reads a seed of 0 as "use the clock" (the same
    --seed 0 gave translations of 6.39 and 6.45 mm in two runs). So bidsxai's seed s goes to ANTs
    as s + 1 (negative seeds as they are). Also sets one ITK thread."""
    ants.config.set_ants_deterministic(True, seed_value=int(seed) + 1 if seed >= 0 else int(seed))


def affine_schedule(image):
    """ANTs' affine pyramid without levels coarser than 12 mm: at 6 mm voxels the default first
    level (shrink 6) would register 36 mm blobs. Small images are sampled fully."""
    spacing = float(np.mean(image.spacing))
    levels = [lv for lv in _PYRAMID if lv[0] * spacing <= _COARSEST_MM] or [_PYRAMID[-1]]
    return {
        "aff_shrink_factors": tuple(lv[0] for lv in levels),
        "aff_smoothing_sigmas": tuple(lv[1] for lv in levels),
        "aff_iterations": tuple(lv[2] for lv in levels),
        "aff_random_sampling_rate": 1.0 if image.numpy().size < 200_000 else 0.2,
    }


RIGID_SAMPLES = 60_000  # metric sample points at the finest level, about


def rigid_schedule(image, finest_mm):
    """A rigid pyramid at 4, 2 and 1 times ``finest_mm`` (the output grid's voxel size), as shrink
    factors of ``image``'s voxels, sampling about 60 000 points at the finest level.

    Why: with ANTs' defaults (finest level at the input's own 1 mm, 20 % of the voxels sampled)
    co-registering a FLAIR to a 1 mm T1w took 43 of a session's 82 s on one ITK thread. A 2 mm
    model grid gains nothing from aligning at 1 mm, and 5 % of the voxels gave the same transform
    to 0.01 mm in a third of the time."""
    spacing = float(np.mean(image.spacing))
    levels = {}
    for factor, iterations in ((4, 1000), (2, 500), (1, 250)):
        shrink = max(1, round(factor * finest_mm / spacing))
        levels.setdefault(shrink, iterations)
    finest_voxels = image.numpy().size / min(levels) ** 3
    return {
        "aff_shrink_factors": tuple(levels),
        "aff_smoothing_sigmas": tuple(s / 2 if s > 1 else 0 for s in levels),
        "aff_iterations": tuple(levels.values()),
        "aff_random_sampling_rate": min(0.2, RIGID_SAMPLES / finest_voxels),
    }


def coregister(fixed, moving, outprefix, finest_mm):
    """Rigid transform (ANTs .mat) that maps ``moving`` onto ``fixed``, aligned down to
    ``finest_mm``."""
    reg = ants.registration(
        fixed, moving, "Rigid", outprefix=str(outprefix), **rigid_schedule(fixed, finest_mm)
    )
    return Path(reg["fwdtransforms"][0])


def start_at(fixed_centre, moving_centre, path):
    """An ANTs translation (written to ``path``) that puts ``fixed_centre`` on ``moving_centre``
    (RAS mm): ANTs' transforms map fixed-space points to moving-space points, in LPS."""
    lps = np.array([-1.0, -1.0, 1.0])
    shift = lps * (np.asarray(moving_centre) - np.asarray(fixed_centre))
    transform = ants.create_ants_transform(
        transform_type="AffineTransform", dimension=3, translation=tuple(shift)
    )
    ants.write_transform(transform, str(path))
    return str(path)


def matched_to(moving, spacing_mm):
    """``moving`` smoothed (FWHM ``spacing_mm``) and resampled to half that voxel size, where its
    voxels are finer: ANTs samples the moving image at the fixed image's points, so a 1 mm scan
    met by the 6 mm template aliases (its registration ended 13 mm off; at 2 mm, 0.09 mm). The
    transform found is in world coordinates and applies to the original image."""
    if min(moving.spacing) >= spacing_mm / 2:
        return moving
    smoothed = ants.smooth_image(moving, spacing_mm / 2.3548, sigma_in_physical_coordinates=True)
    return ants.resample_image(smoothed, (spacing_mm / 2,) * 3, use_voxels=False, interp_type=0)


def to_template(template, moving, fixed_mask, outprefix, nonlinear=False, initial=None):
    """Transforms (first applied last, ANTs order) that map ``moving`` onto the template,
    starting from the ``initial`` transform file (default: the images' centres of mass)."""
    kind = "SyN" if nonlinear else "Affine"
    reg = ants.registration(
        template,
        matched_to(moving, float(np.mean(template.spacing))),
        kind,
        mask=fixed_mask,
        outprefix=str(outprefix),
        initial_transform=initial,
        **affine_schedule(template),
    )
    return [Path(t) for t in reg["fwdtransforms"]]


def resample(reference, moving, transforms, interpolator="linear"):
    """``moving`` on the ``reference`` grid through ``transforms`` (ANTs order)."""
    return ants.apply_transforms(
        reference, moving, [str(t) for t in transforms], interpolator=interpolator
    )
