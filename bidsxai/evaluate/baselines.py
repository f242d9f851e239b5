"""Maps that never looked at the model, and controls, scored against the same reference masks as
the methods' maps: no localisation number stands alone.

- Model-free baselines (``baseline-<name>``): each input contrast as it is and inverted (a lesion
  may be bright in FLAIR and dark in T1w), the template's grey-matter, white-matter and CSF
  priors (one of them is the mask's own tissue), and depth (the distance to the brain's edge).
- Chance (``baseline-random``): the expected scores of a map of independent random values, in
  closed form: AUROC 0.5; pointing, the share of brain voxels within the tolerance of the mask
  (where a random map's peak falls); peak distance, the mean distance of a brain voxel to the
  mask; mass inside and rank accuracy, the share of brain voxels inside it.
- Controls (``control-<name>-<method>``): the same method's map of the other classes
  (``otherclass``: a map that explains a decision should change with the class; Sixt et al.
  2020); at the group level, another subject's map against this subject's mask (``swap``) and the
  leave-one-subject-out frequency of the masks (``baseline-frequency``).
- The margin of a method over the best model-free baseline, for each localisation measure:
  positive where the method localises better than every map that never looked at the model.
"""

import numpy as np

from bidsxai.evaluate.localisation import distance_to

# The localisation measures that get a margin (each higher is better).
MARGINS = ("auroc", "pointing", "mass_inside", "rank_accuracy", "separation")


def model_free_maps(contrasts, template):
    """{baseline name: map on the template grid} of the maps that never looked at the model;
    ``contrasts``: {contrast name: image on the template grid}."""
    brain = template.brain_mask
    maps = {}
    for name, image in contrasts.items():
        image = np.where(brain, np.asarray(image, np.float64), 0.0)
        maps[f"baseline-{name}"] = image
        maps[f"baseline-{name}inverted"] = np.where(brain, image[brain].max() - image, 0.0)
    for tissue in ("gm", "wm", "csf"):
        maps[f"baseline-prior{tissue.upper()}"] = np.where(brain, getattr(template, tissue), 0.0)
    maps["baseline-depth"] = distance_to(~brain, (template.resolution,) * 3)  # to its edge
    return maps


def chance_scores(mask, brain, *, tolerance_mm, voxel_size):
    """The expected localisation of a random map against ``mask`` within ``brain``: {"auroc",
    "pointing", "peak_distance_mm", "mass_inside"} (NaN where the mask has no brain voxel)."""
    inside = np.asarray(mask, bool) & np.asarray(brain, bool)
    if not inside.any():
        names = ("auroc", "pointing", "peak_distance_mm", "mass_inside", "rank_accuracy")
        return dict.fromkeys(names, np.nan)
    distance = distance_to(inside, voxel_size)[brain]
    return {
        "auroc": 0.5,
        "pointing": float(np.mean(distance <= tolerance_mm)),
        "peak_distance_mm": float(distance.mean()),
        "mass_inside": float(inside.sum() / brain.sum()),
        "rank_accuracy": float(inside.sum() / brain.sum()),
    }


def leave_one_out_frequency(masks, subject):
    """The share of the other subjects whose mask covers each voxel (``masks``: {subject: mask
    on one grid}); None with no other subject."""
    others = [np.asarray(m, np.float64) for s, m in masks.items() if s != subject]
    return np.mean(others, axis=0) if others else None


def is_reference(method):
    """Whether an evaluation row's ``method`` is a baseline or a control, not a method's map."""
    return str(method).startswith(("baseline-", "control-"))


def with_margins(rows, masks):
    """``rows`` (one dict per map or baseline, with localisation columns ``<measure>_<mask>``)
    with each method row's ``<measure>_margin_<mask>``: its value minus the best model-free
    baseline's (``baseline-*`` rows, chance included), so positive is better than every one."""
    baselines = [r for r in rows if str(r["method"]).startswith("baseline-")]
    for row in rows:
        if is_reference(row["method"]):
            continue
        for measure in MARGINS:
            for mask in masks:
                column = f"{measure}_{mask}"
                values = [b[column] for b in baselines if np.isfinite(b.get(column, np.nan))]
                if column in row and values:
                    row[f"{measure}_margin_{mask}"] = float(row[column] - max(values))
    return rows
