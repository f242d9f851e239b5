"""group: the localisation controls that need other subjects, scored as the participant level
scores a method's maps (``evaluate.localisation``) against each subject's reference masks as that
run used them (``label-<name>_mask`` on the run's grid):

- ``baseline-frequency``: the share of the other subjects whose mask of the same name covers each
  voxel (leave one subject out), a map that knows where such masks usually are and nothing of
  this subject or the model;
- ``control-swap-<method>``: the next subject's map (subjects in sorted order, the last followed by
  the first) of the same method and class against this subject's mask. A method whose own maps
  score no better than another subject's localises where lesions usually are, not this subject's.

Each row has the participant level's columns, so the method comparison summarises them beside
the methods.
"""

import json

import nibabel as nib
import numpy as np

from bidsxai.evaluate.baselines import leave_one_out_frequency
from bidsxai.evaluate.localisation import on_footing, template_localisation_row
from bidsxai.outputs import (
    evaluation_path,
    find_label_masks,
    heatmap_path,
    label,
    resolution_label,
    sidecar_path,
)


def _load(path):
    return np.asarray(nib.load(str(path)).dataobj, np.float32)


def group_controls(out_dir, first_sessions, known, methods, template):
    """Rows (subject, method, target, <measure>_<mask>) of the frequency baseline and the subject
    swap for every subject with reference masks and an evaluation; ``first_sessions``: (subject,
    session) pairs, ``known``: subject -> class, ``methods``: the methods compared."""
    sessions = {}
    for subject, session in first_sessions:
        path = evaluation_path(out_dir, subject, session or None)
        if subject in known and path.is_file():
            sessions[subject] = (session or None, json.loads(sidecar_path(path).read_text()))
    masks = {}  # name -> {subject: mask}
    res = resolution_label(template.resolution)
    for subject, (session, _) in sessions.items():
        for found in find_label_masks(out_dir, subject, session):
            if (found.space, found.res) == (template.space, res):
                masks.setdefault(found.label, {})[subject] = _load(found.path) > 0
    subjects = sorted(sessions)
    rows = []
    for position, subject in enumerate(subjects):
        session, sidecar = sessions[subject]
        tolerance = sidecar.get("PointingToleranceMM", 6.0)
        target = label(known[subject])
        mine = {name: by[subject] for name, by in masks.items() if subject in by}
        if not mine:
            continue
        frequency = {}
        for name, mask in mine.items():
            heat = leave_one_out_frequency(masks[name], subject)
            if heat is not None:
                frequency.update(template_localisation_row(heat, {name: mask}, template, tolerance))
        if frequency:
            rows.append(
                dict(subject=subject, method="baseline-frequency", target=target, **frequency)
            )
        other = subjects[(position + 1) % len(subjects)]
        if other == subject:
            continue
        other_session = sessions[other][0]
        for method in methods:
            path = heatmap_path(
                out_dir, other, other_session, method, target, template.resolution, template.space
            )
            if path.is_file():
                heatmap = on_footing(_load(path), sidecar.get("MapSign", "absolute"))
                scores = template_localisation_row(heatmap, mine, template, tolerance)
                rows.append(
                    dict(subject=subject, method=f"control-swap-{method}", target=target, **scores)
                )
    return rows
