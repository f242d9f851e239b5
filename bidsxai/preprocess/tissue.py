"""Tissue probability maps (``--tissue-maps``): GM, WM and CSF of the T1w by Atropos, ANTs' EM
segmentation, with the template's tissue maps moved onto the T1w as priors; and the Jacobian
determinant that turns GM moved to the template into modulated GM, which keeps the subject's GM
volume (the input of Thibeau-Sutre et al. 2020's networks was GM in template space).

Why at the model grid's voxel size: on a 1 mm T1w Atropos took 48 s on 2 cores, at 2 mm 4.6 s; the
maps go to a model grid of that voxel size anyway.
"""

import tempfile

import ants
import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from bidsxai.atomic import save_nifti, write_json
from bidsxai.bids import bids_uri
from bidsxai.errors import NoInputError
from bidsxai.outputs import TISSUE_INPUTS, model_input_path, probseg_path, sidecar_path
from bidsxai.preprocess.register import resample

TISSUES = ("GM", "WM", "CSF")
PRIOR_WEIGHT = 0.25  # how strongly the template's maps pull each voxel's class (0: not at all)


def at_voxel_size(image, voxel_mm):
    """``image`` resampled (linearly, same world space) to ``voxel_mm`` where its voxels are
    finer."""
    if min(image.spacing) >= 0.9 * voxel_mm:
        return image
    return ants.resample_image(image, (voxel_mm,) * 3, use_voxels=False, interp_type=0)


def segment(t1w, brain, priors):
    """{tissue: probability image} of ``t1w`` inside the ``brain`` mask (an image on its grid),
    with ``priors`` (GM, WM, CSF probability images on its grid). antspyx hands the priors to
    Atropos as NIfTI files, whose header stores the grid in single precision: on an oblique grid
    their origin then differed from the T1w's by 2e-6 mm, which ITK refuses as "not the same
    physical space". So the T1w goes through a NIfTI file too, and every input takes its header."""
    with tempfile.TemporaryDirectory() as folder:
        ants.image_write(t1w, f"{folder}/t1w.nii.gz")
        t1w = ants.image_read(f"{folder}/t1w.nii.gz")
    result = ants.atropos(
        a=t1w,
        x=t1w.new_image_like(brain.numpy()),
        i=[t1w.new_image_like(p.numpy()) for p in priors],
        m="[0.2,1x1x1]",
        c="[3,0]",
        priorweight=PRIOR_WEIGHT,
    )
    return dict(zip(TISSUES, result["probabilityimages"]))


def jacobian_determinant(tpl_img, moving, chain):
    """|det J| at every voxel of the template grid, where J is the Jacobian of the map that takes a
    template point to ``moving``'s space through ``chain`` (ANTs order): moving mm^3 per template
    mm^3. ``moving``'s world coordinates are resampled onto the template grid (linear
    interpolation is exact for them) and differentiated along the grid, so any chain works:
    affine, SyN, or a composite file. Outside ``moving``'s field of view the value is
    meaningless."""
    index = np.indices(moving.shape, dtype=np.float32)
    voxel_to_world = np.asarray(moving.direction) * np.asarray(moving.spacing)
    world = np.einsum("ij,j...->i...", voxel_to_world, index)
    world += np.asarray(moving.origin, np.float32)[:, None, None, None]
    mapped = [
        resample(tpl_img, moving.new_image_like(world[axis]), chain).numpy() for axis in range(3)
    ]
    # jacobian[..., i, j]: d(moving coordinate i) / d(template voxel index j)
    jacobian = np.stack([np.stack(np.gradient(m), axis=-1) for m in mapped], axis=-2)
    template_voxel = np.asarray(tpl_img.direction) * np.asarray(tpl_img.spacing)
    return np.abs(np.linalg.det(jacobian) / np.linalg.det(template_voxel))


def write_tissue_maps(
    inputs, out_dir, raw_root, template, tpl_img, t1w, chain, brain, own, anatomy=None
):
    """The session's GM, WM and CSF maps: in T1w space on the raw T1w's grid (bidsxai's own
    segmentation; sMRIPrep's maps are used as they are), on the template grid (``tpl_img``, the
    template's T1w as an ANTs image) inside the session's ``brain`` mask, and GM modulated there.
    ``t1w``: the bias-corrected T1w (an ANTs image); ``chain``: its transforms to the template;
    ``own``: its own brain mask on its grid, or None."""
    if anatomy:
        missing = [t for t in TISSUES if t not in anatomy.files.tissue]
        if missing:
            raise NoInputError(
                f"{inputs.key}: --tissue-maps: {anatomy.generator}'s label-{missing[0]}_probseg "
                f"is missing in {anatomy.files.t1w.parent}"
            )
        native = {t: ants.image_read(str(anatomy.files.tissue[t])) for t in TISSUES}
        method = f"{anatomy.generator}'s label-<tissue>_probseg"
        sources = {
            t: [bids_uri(anatomy.dataset, p, anatomy.root)] for t, p in anatomy.files.tissue.items()
        }
    else:
        native = _segmented(template, t1w, chain, own)
        method = (
            "Atropos (ANTs) with the template's tissue maps as priors (weight "
            f"{PRIOR_WEIGHT:g}), at {template.resolution:g} mm"
        )
        t1w_uri = [bids_uri("raw", inputs.files["T1w"], raw_root)]
        sources = dict.fromkeys(TISSUES, t1w_uri)
        raw = nib.load(str(inputs.files["T1w"]))
        for tissue, image in native.items():
            on_raw = resample_from_to(ants.to_nibabel_nifti(image), raw, order=1)
            path = probseg_path(out_dir, inputs.subject, inputs.session, tissue, None, None)
            save_nifti(nib.Nifti1Image(np.asarray(on_raw.dataobj, np.float32), raw.affine), path)
            write_json(sidecar_path(path), {"Sources": t1w_uri, "Segmentation": method})
    grid = {
        "SpatialReference": template.space,
        "Resolution": f"{template.resolution:g} mm isotropic",
    }
    moved = {t: resample(tpl_img, image, chain).numpy() * brain for t, image in native.items()}
    # The coordinates are linear, so a grid of the model's voxel size is as exact as the T1w's own.
    domain = at_voxel_size(native["GM"], template.resolution)
    moved["GMmod"] = moved["GM"] * jacobian_determinant(tpl_img, domain, chain)
    for name, data in moved.items():
        tissue, desc = TISSUE_INPUTS[name]
        path = model_input_path(
            out_dir, inputs.subject, inputs.session, name, template.resolution, template.space
        )
        sidecar = dict(grid, Sources=sources[tissue], Segmentation=method)
        if desc:
            sidecar["Modulation"] = (
                "GM moved to the template times the Jacobian determinant of the map from template "
                "to T1w space (T1w mm^3 per template mm^3): its sum times the voxel volume is the "
                "GM volume in mm^3"
            )
        save_nifti(template.image(data), path)
        write_json(sidecar_path(path), sidecar)


def _segmented(template, t1w, chain, own):
    """{tissue: probability image} of the T1w at the model grid's voxel size, with the template's
    maps (and brain mask, where the T1w has no own one) brought onto it through the inverse of the
    affine (SyN's warp left out: priors need not be exact)."""
    small = at_voxel_size(t1w, template.resolution)
    affine = [str(p) for p in chain if str(p).endswith(".mat")]

    def pulled(volume, interpolator):
        moving = ants.from_nibabel_nifti(template.image(volume))
        return ants.apply_transforms(
            small, moving, affine, interpolator=interpolator, whichtoinvert=[True]
        )

    if own is None:
        brain = pulled(template.brain_mask, "nearestNeighbor")
    else:
        own_image = t1w.new_image_like(own.astype(np.float32))
        brain = ants.resample_image_to_target(own_image, small, interp_type="nearestNeighbor")
    priors = [pulled(np.clip(p, 0, 1), "linear") for p in (template.gm, template.wm, template.csf)]
    return segment(small, brain, priors)
