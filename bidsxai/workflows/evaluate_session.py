"""participant --model --evaluate: how far each heatmap of a session can be trusted.

Per method and target class: faithfulness (voxel inverting against a random mask, deletion and
insertion), localisation against every reference mask the session has in a ``--derivatives
masks=PATH`` dataset, sanity (cascading randomisation of the model) and robustness (the same
session explained by every fold model of the bundle, and by every training run of its fold). Rows
go to ``*_evaluation.tsv``, curves to its sidecar, both read by the subject report.
"""

import dataclasses
import functools

import numpy as np
import pandas as pd

from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.evaluate import faithfulness, localisation, randomisation, robustness
from bidsxai.explain import CAM_FAMILY, explain
from bidsxai.group.atlas import atlas_option
from bidsxai.outputs import evaluation_path, label_mask_path, sidecar_path
from bidsxai.template import load_template
from bidsxai.training.dataset import crop

EVALUATIONS = ("faithfulness", "localisation", "sanity", "robustness")
SANITY_THRESHOLD = 0.2  # |Spearman| after full randomisation above this fails the check
DESCRIPTION = (
    "How far each heatmap can be trusted: faithfulness (voxel inverting of the top fraction of "
    "the map against a random set of the same size, Lu et al. 2023; deletion and insertion curves"
    " with a blurred or imputed baseline), localisation against reference masks (AUROC, pointing "
    "game, mass inside), sanity (cascading model randomisation, Adebayo et al. 2018: Spearman of "
    "the map once every layer is random) and robustness (Spearman and ROI-vector cosine of the "
    "maps of every fold model, and of every training run of the explaining fold)"
)


def evaluate_session(model, x, spec, explanation, settings, layer, template, masks, members):
    """(rows, curves) of every requested evaluation for one explained session."""
    rows, curves = [], {}
    brain = template.brain_mask
    region = crop(brain, spec["crop"])
    voxel_size = (template.resolution,) * 3
    for item in explanation.maps:
        row = {"method": item.method, "target": item.target}
        if "faithfulness" in settings.evaluate and not spec.get("slices"):
            result = faithfulness(
                model,
                x,
                crop(item.heatmap, spec["crop"]),
                target=item.index,
                region=region,
                baseline=settings.faithfulness_baseline,
                seed=settings.seed,
            )
            row.update(
                {
                    k: result[k]
                    for k in (
                        "inverting_drop",
                        "inverting_drop_random",
                        "deletion_auc",
                        "insertion_auc",
                    )
                }
            )
            curves[f"{item.method}/{item.target}"] = {
                k: np.asarray(result[k]).tolist()
                for k in ("fractions", "inverted", "inverted_random", "deletion", "insertion")
            }
        for name, mask in masks.items():
            found = localisation(
                item.heatmap,
                mask,
                brain=brain,
                tolerance_mm=settings.tolerance_mm,
                voxel_size=voxel_size,
            )
            row.update({f"{k}_{name}": float(v) for k, v in found.items()})
        rows.append(row)
    compared = {kind: group for kind, group in members.items() if len(group) > 1}
    if "robustness" not in settings.evaluate:
        compared = {}
    box = tuple(map(tuple, spec["crop"]))
    grid = (template.resolution, template.space)
    atlas = _cropped_atlas(settings.atlas, grid, box) if compared else None
    predicted = explanation.classes.index(explanation.predicted)
    for row in rows:
        if row["target"] != explanation.predicted:
            continue
        method = row["method"]
        params = dict(explanation.parameters.get(method, {}))
        params.update({"layer": layer} if method in CAM_FAMILY else {})
        if "sanity" in settings.evaluate:
            _sanity(row, model, x, method, predicted, region, params)
        maps = {}  # by member: the explaining fold's model is in both groups
        for kind, group in compared.items():
            for name, member in group.items():
                if name not in maps:
                    explained = explain(member, x, method, target=predicted, **params)
                    maps[name] = explained[0].detach().cpu().numpy()
            agreement = robustness({n: maps[n] for n in group}, region=region, atlas=atlas)
            row[f"{kind}_robustness_spearman"] = agreement["spearman_mean"]
            if atlas is not None:
                row[f"{kind}_robustness_roi_cosine"] = agreement["roi_cosine_mean"]
    return rows, curves


@functools.lru_cache(maxsize=4)
def _cropped_atlas(option, grid, box):
    """The --atlas regions on the model's crop, read once per process (None without an atlas)."""
    atlas = atlas_option(option, load_template(*grid))
    return atlas and dataclasses.replace(atlas, labels=crop(atlas.labels, box))


def _sanity(row, model, x, method, target, region, params):
    """Cascading randomisation of one map: its Spearman and SSIM once every layer is random."""
    result = randomisation(model, x, method, target=target, region=region, **params)
    row["sanity_spearman"] = float(result["spearman"][-1])
    row["sanity_ssim"] = float(result["ssim"][-1])
    row["sanity_passed"] = bool(abs(result["spearman"][-1]) < SANITY_THRESHOLD)


def write_reference_masks(out, session, masks, template):
    """The reference masks as this run used them, on its grid (warped where they came in T1w
    space), so that the report can outline them."""
    for name, mask in masks.items():
        path = label_mask_path(
            out, session.subject, session.session, name, template.resolution, template.space
        )
        save_nifti(template.image(mask, dtype=np.uint8), path)
        write_json(
            sidecar_path(path),
            {
                "Description": f"reference mask '{name}' of --derivatives masks=..., on the model "
                "grid (warped with the session's transforms where it was in T1w space)",
                "SpatialReference": template.space,
                "Resolution": f"{template.resolution:g} mm isotropic",
            },
        )


def write_evaluation(out, session, rows, curves, settings):
    """The TSV and its sidecar; nothing when no evaluation applied (e.g. localisation alone and
    no reference masks for this session)."""
    if all(set(row) <= {"method", "target"} for row in rows):
        return
    path = evaluation_path(out, session.subject, session.session)
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    write_json(
        sidecar_path(path),
        {
            "Description": DESCRIPTION,
            "Evaluations": list(settings.evaluate),
            "PointingToleranceMM": settings.tolerance_mm,
            "FaithfulnessBaseline": settings.faithfulness_baseline,
            "SanityThreshold": SANITY_THRESHOLD,
            "Curves": curves,
        },
    )
