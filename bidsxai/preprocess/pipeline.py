"""One subject/session from raw BIDS to model-ready images in template space.

reorient (RAS) -> crop below the head -> N4 -> rigid co-registration of T2w/FLAIR to T1w -> T1w
to template (affine, or SyN) -> brain mask (deepbet's, or the template's) -> intensity
normalisation -> model grid.
With sMRIPrep's or fMRIPrep's anatomy (``preprocess.smriprep``), its bias-corrected T1w, brain mask
and composite transform replace bidsxai's N4 of the T1w, skull stripping and template
registration; the other contrasts are co-registered to its T1w and moved with its transform.
Outputs are BIDS-Derivatives written atomically; a session whose outputs exist with the same
settings key is skipped (resume).
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from scipy import ndimage

from bidsxai import __version__
from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.bids import bids_uri
from bidsxai.errors import NoInputError
from bidsxai.outputs import (
    TISSUE_INPUTS,
    brain_mask_path,
    model_input_path,
    preproc_path,
    sidecar_path,
    xfm_path,
)
from bidsxai.preprocess.bias import n4
from bidsxai.preprocess.brain_extraction import deepbet_mask, uses_deepbet
from bidsxai.preprocess.conform import load_volume
from bidsxai.preprocess.field_of_view import cranium_centre, crop_to_head
from bidsxai.preprocess.normalise import normalise
from bidsxai.preprocess.register import (
    coregister,
    resample,
    seed_ants,
    start_at,
    to_template,
)
from bidsxai.preprocess.tissue import write_tissue_maps
from bidsxai.scratch import work_folder
from bidsxai.template import load_template

PIPELINE_VERSION = "2"  # 2: scans cropped below the head, deepbet brain masks


def settings_key(inputs, options, anatomy=None):
    """Changes when anything that shapes the outputs changes, so resume never reuses stale files:
    the pipeline's version, every preprocessing option (the whole stage, so a new option counts
    without being listed here) and each input file's name, size and time."""
    stage = json.dumps(dataclasses.asdict(options), sort_keys=True, default=str)
    parts = [PIPELINE_VERSION, stage]
    files = sorted(inputs.files.items()) + [
        ("anatomy", p) for p in (anatomy.paths if anatomy else ())
    ]
    for contrast, path in files:
        stat = Path(path).stat()
        parts += [contrast, Path(path).name, str(stat.st_size), str(int(stat.st_mtime))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def is_done(inputs, out_dir, template, key, tissue_maps=False):
    """True where the session's outputs exist and were made with the same ``key``."""
    grid = (template.resolution, template.space)
    t1_json = sidecar_path(preproc_path(out_dir, inputs.subject, inputs.session, "T1w", *grid))
    if not t1_json.is_file():
        return False
    try:
        sidecar = json.loads(t1_json.read_text())
    except ValueError:
        return False
    names = list(inputs.files) + list(TISSUE_INPUTS) * tissue_maps
    paths = [model_input_path(out_dir, inputs.subject, inputs.session, n, *grid) for n in names]
    return sidecar.get("PreprocessingKey") == key and all(p.is_file() for p in paths)


def preprocess_session(inputs, out_dir, raw_root, work_dir, options, anatomy=None):
    """Write the preprocessed images of one session on the template grid of ``options`` (the
    run's preprocessing stage, ``Settings.stage("preprocessing")``); returns {contrast: path}.
    Skips if done. ``anatomy``: sMRIPrep's, checked (``preprocess.smriprep``)."""
    if "T1w" not in inputs.files:
        raise NoInputError(f"{inputs.key}: no T1w image found")
    key = settings_key(inputs, options, anatomy)
    template = load_template(options.resolution, options.output_space)
    normalisation, seed, tissue_maps = options.normalisation, options.seed, options.tissue_maps
    space, resolution = template.space, template.resolution
    outputs = {
        c: preproc_path(out_dir, inputs.subject, inputs.session, c, resolution, space)
        for c in inputs.files
    }
    if is_done(inputs, out_dir, template, key, tissue_maps):
        return outputs
    # Read everything first, so that a broken file fails before any work.
    sources = dict(inputs.files, **({"T1w": anatomy.files.t1w} if anatomy else {}))
    volumes = {c: crop_to_head(load_volume(p)) for c, p in sources.items()}
    seed_ants(seed)
    tpl_img = ants.from_nibabel_nifti(template.image(template.t1w))
    work = work_folder(inputs.key, work_dir)
    try:
        corrected = {
            c: ants.from_nibabel_nifti(v)
            if anatomy and c == "T1w"
            else n4(ants.from_nibabel_nifti(v))
            for c, v in volumes.items()
        }
        if anatomy:
            t1_to_tpl = [anatomy.files.transform]
        else:
            t1_to_tpl = _register_t1w(
                template, tpl_img, volumes, corrected, work, options.nonlinear
            )
        chains = {"T1w": t1_to_tpl}
        for contrast in corrected:
            if contrast != "T1w":
                rigid = coregister(
                    corrected["T1w"],
                    corrected[contrast],
                    work / f"{contrast}_to_t1w_",
                    template.resolution,
                )
                chains[contrast] = t1_to_tpl + [rigid]
        write_transforms(inputs, out_dir, chains, space)
        if anatomy:
            brain, own = _anatomy_brain_mask(inputs, out_dir, template, tpl_img, anatomy), None
        else:
            brain, own = write_brain_masks(
                inputs,
                out_dir,
                raw_root,
                template,
                tpl_img,
                volumes["T1w"],
                t1_to_tpl,
                options.skull_strip,
            )
        if tissue_maps:
            write_tissue_maps(
                inputs,
                out_dir,
                raw_root,
                template,
                tpl_img,
                corrected["T1w"],
                t1_to_tpl,
                brain,
                own,
                anatomy,
            )
        registration = "SyN" if options.nonlinear else "Affine"
        if anatomy:
            registration = f"{anatomy.generator}'s transform ({anatomy.files.transform.name})"
        for contrast, chain in chains.items():
            data = resample(tpl_img, corrected[contrast], chain).numpy()
            data = normalise(data, brain, normalisation)
            save_nifti(template.image(data), outputs[contrast])
            origin = [bids_uri("raw", inputs.files[contrast], raw_root)]
            if anatomy:  # sMRIPrep's T1w, mask and transform shaped every image
                reused = [bids_uri(anatomy.dataset, p, anatomy.root) for p in anatomy.paths]
                origin = reused if contrast == "T1w" else origin + reused
            write_json(
                sidecar_path(outputs[contrast]),
                {
                    "Description": f"{contrast} after N4, registration to {space}, brain masking "
                    f"and {normalisation} intensity normalisation",
                    "SkullStripped": True,
                    "SpatialReference": space,
                    "Resolution": f"{resolution:g} mm isotropic",
                    "Sources": origin,
                    "IntensityNormalisation": normalisation,
                    "RegistrationToTemplate": registration,
                    "PreprocessingKey": key,
                    "PipelineVersion": PIPELINE_VERSION,
                    "SoftwareVersions": f"bidsxai {__version__}, antspyx {ants.__version__}",
                },
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outputs


def _register_t1w(template, tpl_img, volumes, corrected, work, nonlinear):
    """bidsxai's own T1w-to-template registration, started from the head's centre, with the
    dilated template brain mask as the fixed mask."""
    fixed_mask = ants.from_nibabel_nifti(
        template.image(ndimage.binary_dilation(template.brain_mask, iterations=2), dtype=np.uint8)
    )
    centre, start = cranium_centre(volumes["T1w"]), None
    if centre is not None:  # an image without a head starts at ANTs' default; the gate tells
        start = start_at(
            template.affine[:3, :3] @ np.argwhere(template.brain_mask).mean(0)
            + template.affine[:3, 3],
            centre,
            work / "t1w_to_tpl_start.mat",
        )
    return to_template(
        tpl_img, corrected["T1w"], fixed_mask, work / "t1w_to_tpl_", nonlinear, start
    )


def _on_template(tpl_img, mask_image, chain):
    """A T1w-space brain mask on the model grid: a voxel is brain when a quarter of it is, so
    partial-volume voxels at the brain's edge stay in (at 6 mm, a half kept 71 % of the template's
    brain voxels)."""
    mask_image.header.set_xyzt_units("mm", "sec")
    moving = ants.from_nibabel_nifti(mask_image)
    return resample(tpl_img, moving, chain).numpy() >= 0.25


def _require_brain(brain, inputs, source):
    """Refuse a session whose brain mask is empty on the template grid, before anything of it is
    written: every later step (normalisation, the model's crop) needs brain voxels."""
    if not brain.any():
        raise NoInputError(
            f"{inputs.key}: {source} is empty on the template grid (no brain found in the T1w, "
            "or the registration moved it off the template); check the T1w image"
        )


def _anatomy_brain_mask(inputs, out_dir, template, tpl_img, anatomy):
    """sMRIPrep's brain mask moved to the template grid with its transform, written as
    desc-brain_mask there (its T1w-space mask stays where it is, named in Sources)."""
    image = nib.load(str(anatomy.files.brain_mask))
    own = nib.Nifti1Image((np.asarray(image.dataobj) > 0).astype(np.float32), image.affine)
    brain = _on_template(tpl_img, own, [anatomy.files.transform])
    _require_brain(brain, inputs, f"{anatomy.generator}'s brain mask")
    _write_template_mask(
        inputs,
        out_dir,
        template,
        brain,
        {
            "Type": "Brain",
            "Sources": [bids_uri(anatomy.dataset, anatomy.files.brain_mask, anatomy.root)],
            "SkullStripping": f"{anatomy.generator} (desc-brain_mask)",
            "Description": f"{anatomy.generator}'s brain mask, moved to the template with its "
            "transform",
        },
    )
    return brain


def write_brain_masks(inputs, out_dir, raw_root, template, tpl_img, t1w, t1_to_tpl, skull_strip):
    """The session's brain mask on the template grid (written as desc-brain_mask): deepbet's mask
    of the T1w warped with the session's transforms, also written in T1w space on the raw T1w's
    grid, or the template's own mask (see preprocess.brain_extraction). Returns (that mask,
    deepbet's on the T1w's grid or None)."""
    sidecar = {"Type": "Brain", "Sources": [bids_uri("raw", inputs.files["T1w"], raw_root)]}
    brain, own = template.brain_mask, None
    if uses_deepbet(skull_strip, t1w):
        own = deepbet_mask(t1w).astype(np.float32)
        brain = _on_template(tpl_img, nib.Nifti1Image(own, t1w.affine), t1_to_tpl)
        _require_brain(brain, inputs, "deepbet's brain mask of the T1w")
        sidecar["SkullStripping"] = "deepbet (Fisch et al. 2024)"
        raw = nib.load(str(inputs.files["T1w"]))
        native = resample_from_to(nib.Nifti1Image(own, t1w.affine), raw, order=0)
        path = brain_mask_path(out_dir, inputs.subject, inputs.session, None, None)
        save_nifti(nib.Nifti1Image(np.asarray(native.dataobj).astype(np.uint8), raw.affine), path)
        write_json(
            sidecar_path(path),
            dict(sidecar, Description="deepbet brain mask of the T1w, on the raw T1w's grid"),
        )
        sidecar["Description"] = "deepbet brain mask of the T1w, warped to the template"
    else:
        sidecar["SkullStripping"] = "template"
        sidecar["Description"] = "Template brain mask (the images are in template space)"
    _write_template_mask(inputs, out_dir, template, brain, sidecar)
    return brain, own


def _write_template_mask(inputs, out_dir, template, brain, sidecar):
    space, resolution = template.space, template.resolution
    path = brain_mask_path(out_dir, inputs.subject, inputs.session, resolution, space)
    save_nifti(template.image(brain, dtype=np.uint8), path)
    write_json(
        sidecar_path(path),
        dict(sidecar, SpatialReference=space, Resolution=f"{resolution:g} mm isotropic"),
    )


def write_transforms(inputs, out_dir, chains, space):
    """Copy the transforms into the derivatives: T1w to template (ANTs' linear one and SyN's
    displacement field where there is one, or sMRIPrep's composite file) and each contrast to T1w.
    Those of another kind, left by an earlier run, are removed: the reader takes the composite
    first."""
    subject, session = inputs.subject, inputs.session
    kinds = {
        "composite": xfm_path(out_dir, subject, session, "T1w", space, composite=True),
        "warp": xfm_path(out_dir, subject, session, "T1w", space, "warp"),
        "linear": xfm_path(out_dir, subject, session, "T1w", space),
    }
    written = set()
    for path in chains["T1w"]:
        name = str(path)
        kind = (
            "composite" if name.endswith(".h5") else "linear" if name.endswith(".mat") else "warp"
        )
        _copy(path, kinds[kind])
        written.add(kind)
    for kind in set(kinds) - written:
        kinds[kind].unlink(missing_ok=True)
    for contrast, chain in chains.items():
        if contrast != "T1w":
            _copy(chain[-1], xfm_path(out_dir, subject, session, contrast, "T1w"))


def _copy(src, dst):
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
