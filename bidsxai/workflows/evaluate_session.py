"""participant --model --evaluate: how far each heatmap of a session can be trusted.

Each map is evaluated by every requested evaluation of ``evaluate.evaluations`` that applies to
the model (faithfulness, localisation against every reference mask the session has in a
``--derivatives masks=PATH`` dataset, sanity, robustness); the records say which maps and which
columns. Rows go to ``*_evaluation.tsv``, curves to its sidecar (faithfulness under "Curves", the
sanity check's randomisation curves under "Randomisation"), read by the subject report. The sanity
check needs one network: a session that the fold models' ensemble explains has none of its
columns.
"""

import numpy as np

from bidsxai.atomic import save_nifti, write_json
from bidsxai.evaluate.evaluations import (
    EVALUATIONS,
    SIDECAR_CONSTANTS,
    EvaluationContext,
    column_descriptions,
    write_table,
)
from bidsxai.models.ensemble import FoldEnsemble
from bidsxai.outputs import evaluation_path, label_mask_path, sidecar_path


def evaluate_session(model, x, spec, explanation, options, layer, template, masks, members):
    """(rows, curves, randomisation) of every requested evaluation for one explained session: one
    row per map, each evaluation of ``evaluate.evaluations`` that applies adding its columns;
    the faithfulness and the sanity check's curves by "<method>/<target>". ``options``: the run's
    explanation stage."""
    context = EvaluationContext(
        model, x, spec, explanation, options, layer, template, masks, members
    )
    chosen = [EVALUATIONS[name] for name in EVALUATIONS if name in options.evaluate]
    several = isinstance(model, FoldEnsemble)
    chosen = [e for e in chosen if e.applies(spec) and not (e.single_network and several)]
    if "robustness" not in options.evaluate:
        context.members = {}
    rows = []
    for item in explanation.maps:
        row = {"method": item.method, "target": item.target}
        for evaluation in chosen:
            if not evaluation.predicted_only or item.target == explanation.predicted:
                row.update(evaluation.run(context, item))
        rows.append(row)
    for evaluation in chosen:
        if evaluation.session_rows is not None:
            rows = evaluation.session_rows(context, rows)
    return rows, context.curves, context.randomisation


def write_reference_masks(out, session, masks, template):
    """The reference masks as this run used them (``PlacedMask``), on its grid, each with how it
    got there (as given, resampled from another grid of the space, or warped from a native
    space), so that the report can outline them."""
    for name, placed in masks.items():
        path = label_mask_path(
            out, session.subject, session.session, name, template.resolution, template.space
        )
        save_nifti(template.image(placed.array, dtype=np.uint8), path)
        write_json(
            sidecar_path(path),
            {
                "Description": f"reference mask '{name}' of --derivatives masks=..., on the model "
                f"grid: {placed.how}",
                "SpatialReference": template.space,
                "Resolution": f"{template.resolution:g} mm isotropic",
            },
        )


def write_evaluation(out, session, rows, curves, settings, randomisation=None):
    """The TSV and its sidecar; nothing when no evaluation applied (e.g. localisation alone and
    no reference masks for this session). ``randomisation``: the sanity check's curves, stored
    under "Randomisation" when there are any."""
    if all(set(row) <= {"method", "target"} for row in rows):
        return
    path = evaluation_path(out, session.subject, session.session)
    write_table(path, rows)
    names = list(dict.fromkeys(name for row in rows for name in row))
    recorded = {}
    for evaluation in EVALUATIONS.values():
        recorded.update(evaluation.recorded(settings))
    write_json(
        sidecar_path(path),
        {
            "Description": description(settings.evaluate),
            "Evaluations": list(settings.evaluate),
            **recorded,
            **SIDECAR_CONSTANTS,
            "Curves": curves,
            **({"Randomisation": randomisation} if randomisation else {}),
            **column_descriptions(names),
        },
    )


def description(names):
    """The sidecar's description: what each evaluation of the run measures."""
    parts = [EVALUATIONS[n].description for n in EVALUATIONS if n in names]
    return f"How far each heatmap can be trusted: {'; '.join(parts)}"
