"""An sMRIPrep-shaped derivatives dataset made from a synthetic cohort, for the tests of
``--derivatives smriprep=PATH``. It has sMRIPrep's file names and real ANTs composite transforms
(.h5) written by antspyx. The processing stands in for sMRIPrep's: the transform is the cohort's
true head pose (``TemplateToScanner`` in its ground truth), what a perfect registration would find,
so a test can tell a run that used it from one that registered the T1w itself.

In each subject's anat folder (no session entity: sMRIPrep's anatomy spans a subject's sessions):
- ``desc-preproc_T1w``: the raw T1w reoriented to RAS and N4-corrected within the head, head kept
  (its T1w space);
- ``from-T1w_to-<space>_mode-image_xfm.h5`` and ``from-<space>_to-T1w_...``: the true affine,
  as composite transforms;
- ``desc-brain_mask`` and ``label-GM|WM|CSF_probseg``: the template's, pulled back to the T1w;
- ``space-<space>_res-<r>_desc-preproc_T1w``: the T1w on the template grid.

    python tests/smriprep_fixture.py BIDS_DIR OUT_DIR [--resolution 6] [--subjects 01 02]
"""

import argparse
import json
import os
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from bidsxai.template import load_template

GENERATOR = "sMRIPrep-shaped test fixture (tests/smriprep_fixture.py)"


def write_fixture(bids_dir, out_dir, resolution=6.0, subjects=None):
    """Write the dataset under ``out_dir`` for ``subjects`` (default: every subject)."""
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    template = load_template(resolution)
    subjects = subjects or sorted(p.name[4:] for p in bids_dir.glob("sub-*") if p.is_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(
        out_dir / "dataset_description.json",
        {
            "Name": "sMRIPrep-shaped fixture",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": GENERATOR}],
            "SourceDatasets": [{"URL": "bids:raw:."}],
            "DatasetLinks": {"raw": os.path.relpath(bids_dir.resolve(), out_dir.resolve())},
        },
    )
    # BIDS has no name for transforms yet; the validator is told to leave them alone.
    (out_dir / ".bidsignore").write_text("*_xfm.h5\n")
    for subject in subjects:
        _write_subject(bids_dir, out_dir, subject, template)
    return out_dir


def _write_subject(bids_dir, out_dir, subject, template):
    raw = bids_dir / f"sub-{subject}" / "anat" / f"sub-{subject}_T1w.nii.gz"
    anat = out_dir / f"sub-{subject}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    prefix = anat / f"sub-{subject}_"
    space, res = template.space, f"{template.resolution:g}".replace(".", "p")
    head = ants.from_nibabel_nifti(nib.as_closest_canonical(nib.load(str(raw))))
    # N4 within a head mask (over the background too, the T1w registered 5.5 mm off).
    t1w = ants.n4_bias_field_correction(head, mask=ants.get_mask(head))
    ants.image_write(t1w, f"{prefix}desc-preproc_T1w.nii.gz")
    _write_json(
        Path(f"{prefix}desc-preproc_T1w.json"),
        {"SkullStripped": False, "Sources": [f"bids:raw:sub-{subject}/anat/{raw.name}"]},
    )
    forward = f"{prefix}from-T1w_to-{space}_mode-image_xfm.h5"
    backward = f"{prefix}from-{space}_to-T1w_mode-image_xfm.h5"
    truth = bids_dir / "derivatives" / "groundtruth" / f"sub-{subject}" / "anat"
    pose = json.loads((truth / f"sub-{subject}_label-lesion_mask.json").read_text())
    affine = _ants_affine(np.array(pose["TemplateToScanner"]))
    ants.write_transform(ants.compose_ants_transforms([affine]), forward)
    ants.write_transform(ants.compose_ants_transforms([affine.invert()]), backward)
    mask = _pulled_back(template, template.brain_mask, t1w, backward, "nearestNeighbor")
    ants.image_write(mask.astype("uint8"), f"{prefix}desc-brain_mask.nii.gz")
    # Older fMRIPrep names the raw images in RawSources, as absolute paths.
    _write_json(Path(f"{prefix}desc-brain_mask.json"), {"Type": "Brain", "RawSources": [str(raw)]})
    for label, probability in (("GM", template.gm), ("WM", template.wm), ("CSF", template.csf)):
        tissue = _pulled_back(template, probability, t1w, backward, "linear")
        ants.image_write(tissue, f"{prefix}label-{label}_probseg.nii.gz")
    fixed = ants.from_nibabel_nifti(template.image(template.t1w))
    moved = ants.apply_transforms(fixed, t1w, [forward])
    ants.image_write(moved, f"{prefix}space-{space}_res-{res}_desc-preproc_T1w.nii.gz")
    _write_json(
        Path(f"{prefix}space-{space}_res-{res}_desc-preproc_T1w.json"),
        {"SkullStripped": False, "Resolution": f"{template.resolution:g} mm isotropic"},
    )


def _ants_affine(template_to_scanner):
    """The ANTs transform that maps template points to scanner points (ANTs works in LPS)."""
    lps = np.diag([-1.0, -1.0, 1.0])
    return ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        matrix=lps @ template_to_scanner[:3, :3] @ lps,
        translation=lps @ template_to_scanner[:3, 3],
    )


def _pulled_back(template, volume, t1w, transform, interpolator):
    moving = ants.from_nibabel_nifti(template.image(volume))
    return ants.apply_transforms(t1w, moving, [transform], interpolator=interpolator)


def _write_json(path, content):
    path.write_text(json.dumps(content, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--resolution", type=float, default=6.0)
    parser.add_argument("--subjects", nargs="+")
    args = parser.parse_args()
    write_fixture(args.bids_dir, args.out_dir, args.resolution, args.subjects)
    print(args.out_dir)
