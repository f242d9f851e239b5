"""Registration error against a synthetic cohort's truth: the mean distance (mm), over template
brain points, between where the estimated T1w-to-template affine (bidsxai's, or sMRIPrep's
composite transform where the run reused it) and the true head pose (recorded
by ``bidsxai-synth`` in the ground-truth lesion mask's sidecar) put each point in the subject's
scanner space."""

import json

import ants
import numpy as np

from bidsxai.outputs import label_mask_path, sidecar_path, xfm_path

LPS = np.diag([-1.0, -1.0, 1.0])  # ANTs works in LPS, NIfTI in RAS


def registration_error_mm(out_dir, bids_dir, subject, session, template, every=50):
    """Mean error (mm) of the saved transform over every ``every``-th template brain voxel."""
    truth_path = label_mask_path(
        bids_dir / "derivatives" / "groundtruth", subject, session, "lesion"
    )
    pose = np.array(json.loads(sidecar_path(truth_path).read_text())["TemplateToScanner"])
    composite = xfm_path(out_dir, subject, session, "T1w", template.space, composite=True)
    path = (
        composite
        if composite.is_file()
        else xfm_path(out_dir, subject, session, "T1w", template.space)
    )
    transform = ants.read_transform(str(path))
    ijk = np.array(np.nonzero(template.brain_mask))[:, ::every]
    mni = template.affine[:3, :3] @ ijk + template.affine[:3, 3:]
    truth = pose[:3, :3] @ mni + pose[:3, 3:]
    estimate = LPS @ np.array([transform.apply_to_point(tuple(LPS @ p)) for p in mni.T]).T
    return float(np.linalg.norm(estimate - truth, axis=0).mean())
