"""The reference masks of a session (lesion segmentations, say) on the model's template grid, from
the ``--derivatives masks=PATH`` dataset.

A mask in the run's template space is used as it is on the template grid at the run's resolution;
on another grid of that space (nilearn's 99 x 117 x 95 at 2 mm, say, for TemplateFlow's
97 x 115 x 97) it is resampled onto the model grid by nearest neighbour, in world coordinates, and
the mask written beside the evaluation says so. A mask in the
subject's T1w space (no ``space`` entity, or ``space-T1w``) must lie on the raw T1w's grid; it is
warped to the template with the session's own transforms from preprocessing (the affine, and SyN's
displacement field where the registration was nonlinear, or sMRIPrep's composite transform),
linearly interpolated and thresholded at one half. A mask drawn on the FLAIR or the T2w
(``space-FLAIR``, ``space-T2w``) must lie on that raw image's grid and moves through its rigid
transform to the T1w first. Where a session has a template-space mask and a native one for one
label, the template-space mask is used as it is.
"""

import json
import sys
from typing import NamedTuple

import ants
import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from bidsxai.errors import NoInputError
from bidsxai.outputs import (
    MASK_DATASET,
    find_label_masks,
    preproc_path,
    resolution_label,
    sidecar_path,
    xfm_path,
)

NATIVE_SPACES = (None, "T1w", "T2w", "FLAIR")  # None: the T1w's


def chosen_masks(settings, session, template, prefer=None):
    """{label: LabelMask} of the session's reference masks, one per label: where a label has
    both, the one in ``prefer`` (the template's space by default, or ``"T1w"``)."""
    prefer = prefer or template.space
    folder = settings.derivatives.get(MASK_DATASET)
    if folder is None:
        return {}
    if not (folder / "dataset_description.json").is_file():
        raise NoInputError(
            f"--derivatives masks={folder}: not a BIDS derivatives dataset "
            "(no dataset_description.json)"
        )
    res, space = resolution_label(template.resolution), template.space
    chosen = {}
    for found in find_label_masks(folder, session.subject, session.session):
        if found.space not in (space, *NATIVE_SPACES):
            raise NoInputError(
                f"{found.path.name}: space-{found.space} is not this run's; reference masks must "
                f"be in {space}, in the subject's T1w space (no space entity), or in its FLAIR's "
                "or T2w's (space-FLAIR, space-T2w)"
            )
        if found.space == space and found.res != res:
            continue  # a mask for runs at another resolution
        preferred = (found.space or "T1w") == prefer
        if preferred or found.label not in chosen:
            chosen[found.label] = found
    return dict(sorted(chosen.items()))


class PlacedMask(NamedTuple):
    """A reference mask on the template grid and how it got there, in a sentence."""

    array: np.ndarray
    how: str


def reference_masks(settings, session, template):
    """{label: PlacedMask on the template grid}; one-line ``NoInputError`` for a mask bidsxai
    cannot place. Cheap next to an explanation: it runs before one."""
    space = template.space
    masks = {}
    for name, found in chosen_masks(settings, session, template).items():
        if found.space == space:
            placed = _template_space(found.path, template)
        else:
            placed = PlacedMask(
                _warped(found, session, settings.output_dir, template),
                f"warped from {found.space or 'T1w'} space with the session's transforms",
            )
        if not placed.array.any():  # a control has no lesion: nothing to find, not an error
            print(
                f"bidsxai: {session.key}: {found.path.name} is empty; its localisation is n/a",
                file=sys.stderr,
            )
        masks[name] = placed
    return masks


def _template_space(path, template):
    image = nib.load(str(path))
    if image.ndim != 3:
        raise NoInputError(f"{path.name}: a mask must be 3D, got shape {image.shape}")
    on_grid = image.shape == template.shape and np.allclose(
        image.affine, template.affine, atol=1e-3
    )
    if on_grid:
        return PlacedMask(np.asarray(image.dataobj) > 0, "as given, on the model grid")
    inside = nib.Nifti1Image((np.asarray(image.dataobj) > 0).astype(np.uint8), image.affine)
    moved = resample_from_to(inside, (template.shape, template.affine), order=0, cval=0)
    mask = np.asarray(moved.dataobj) > 0
    if inside.dataobj.max() > 0 and not mask.any():
        raise NoInputError(
            f"{path.name}: its voxels fall outside the {template.space} grid at "
            f"{template.resolution:g} mm; is it in {template.space}?"
        )
    shape = " x ".join(map(str, image.shape))
    return PlacedMask(mask, f"resampled by nearest neighbour from its {shape} grid")


def _warped(found, session, out_dir, template):
    """A native mask through the session's transforms from its contrast's space to the template."""
    contrast, path = found.space or "T1w", found.path
    if contrast not in session.files:
        raise NoInputError(f"{path.name}: in {contrast} space, but the session has no {contrast}")
    image = nib.as_closest_canonical(nib.load(str(path)))
    grids = {c: _canonical_grid(nib.load(str(p))) for c, p in session.files.items()}
    on = [c for c, grid in grids.items() if _same_grid(_canonical_grid(image), grid)]
    if contrast not in on:
        hint = f"; it lies on the {on[0]}'s grid: name it space-{on[0]}" if on else ""
        raise NoInputError(
            f"{path.name}: in {contrast} space but not on the grid of "
            f"{session.files[contrast].name} (shape {image.shape}, "
            f"{contrast} {grids[contrast][0]}){hint}"
        )
    transforms = _transforms(session, out_dir, template, contrast)
    data = (np.asarray(image.dataobj) > 0).astype(np.float32)
    moving = nib.Nifti1Image(data.reshape(grids[contrast][0]), image.affine)
    moving.header.set_xyzt_units("mm", "sec")
    moving = ants.from_nibabel_nifti(moving)
    fixed = ants.from_nibabel_nifti(template.image(np.zeros(template.shape)))
    warped = ants.apply_transforms(fixed, moving, transforms, interpolator="linear")
    return warped.numpy() >= 0.5


def _canonical_grid(image):
    """(shape, affine) of ``image`` once reoriented to RAS, from its header alone (the contrasts'
    voxels are not read just to compare grids)."""
    orientation = nib.orientations.io_orientation(image.affine)
    shape = tuple(int(n) for n in np.asarray(image.shape[:3])[orientation[:, 0].astype(int)])
    return shape, image.affine @ nib.orientations.inv_ornt_aff(orientation, image.shape[:3])


def _same_grid(grid, reference):
    return grid[0] == reference[0] and np.allclose(grid[1], reference[1], atol=1e-3)


def _transforms(session, out_dir, template, contrast="T1w"):
    """The transforms from ``contrast``'s space to the template in ANTs' order (applied last
    first): sMRIPrep's composite transform, or the displacement field and the affine; then the
    contrast's rigid transform to the T1w."""
    space, subject, ses = template.space, session.subject, session.session
    t1w = preproc_path(out_dir, subject, ses, "T1w", template.resolution, space)
    sidecar = sidecar_path(t1w)
    if not sidecar.is_file():
        raise NoInputError(
            f"{session.key}: not preprocessed, so its native-space masks cannot move"
        )
    composite = xfm_path(out_dir, subject, ses, "T1w", space, composite=True)
    if composite.is_file():
        chain = [composite]
    else:
        nonlinear = json.loads(sidecar.read_text()).get("RegistrationToTemplate") == "SyN"
        chain = [xfm_path(out_dir, subject, ses, "T1w", space, "warp")] * nonlinear
        chain.append(xfm_path(out_dir, subject, ses, "T1w", space))
    if contrast != "T1w":
        chain.append(xfm_path(out_dir, subject, ses, contrast, "T1w"))
    missing = [p.name for p in chain if not p.is_file()]
    if missing:
        raise NoInputError(
            f"{session.key}: transform {missing[0]} is missing; rerun preprocessing to warp "
            "T1w-space masks"
        )
    return [str(p) for p in chain]
