"""group: the method-comparison table from the subjects' evaluations (participant --evaluate).

Each subject contributes the evaluation of the maps of its known class (the column --target names)
from its first session; the table gives each method's mean with a bootstrap 95 % interval over
subjects (a Wilson interval for a rate), the paired tests between methods that a ranking needs,
and the voxel-inverting curves averaged over subjects (Lu et al. 2023, figure 4). Which
columns are measures, their directions and the primary measure come from the evaluation records
(``evaluate.evaluations``).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bidsxai.evaluate.baselines import is_reference
from bidsxai.evaluate.evaluations import column_of, read_table
from bidsxai.group.method_comparison import (
    compare_methods,
    comparison_pairs,
    paired_tests,
    ranking,
)
from bidsxai.outputs import evaluation_path, label, sidecar_path
from bidsxai.workflows.localisation_controls import group_controls


def method_comparison(out_dir, first_sessions, known, seed=0, template=None):
    """(comparison table, primary measure, ranking statements, mean curves by method, paired
    tests or None), or None without evaluations. ``first_sessions``: (subject, session) pairs;
    ``known``: subject -> class; with the run's ``template``, the controls that need other
    subjects (``localisation_controls``) join the methods."""
    rows, curves = [], {}
    first_sessions = list(first_sessions)
    for subject, session in first_sessions:
        path = evaluation_path(out_dir, subject, session or None)
        if not path.is_file() or subject not in known:
            continue
        table = read_table(path)
        mine = table[table["target"] == label(known[subject])]
        rows += [dict(r, subject=subject) for r in mine.to_dict("records")]
        saved = json.loads(sidecar_path(path).read_text()).get("Curves", {})
        for method in mine["method"]:
            curve = saved.get(f"{method}/{label(known[subject])}")
            if curve:
                curves.setdefault(method, []).append(curve)
    if not rows:
        return None
    if template is not None:
        methods = sorted({r["method"] for r in rows if not is_reference(r["method"])})
        rows += group_controls(Path(out_dir), first_sessions, known, methods, template)
    comparison, primary, statements, tests = summarise(pd.DataFrame(rows), seed)
    mean_curves = {
        m: {
            k: np.mean([c[k] for c in cs], axis=0).tolist()
            for k in ("fractions", "inverted", "inverted_random")
        }
        for m, cs in curves.items()
    }
    return comparison, primary, statements, mean_curves, tests


def first_sessions_comparison(out_dir, heatmaps, participants, settings, template):
    """``method_comparison`` of the subjects' first sessions among the group's ``heatmaps``
    (``workflows.group_inputs``), by the classes of ``--target`` in ``participants``."""
    first = heatmaps[heatmaps["first"]][["subject", "session"]].drop_duplicates()
    return method_comparison(
        out_dir,
        first.itertuples(index=False),
        participants[settings.target].dropna().to_dict(),
        settings.seed,
        template,
    )


def summarise(table, seed=0):
    """(comparison table, primary measure or None, ranking statements, paired tests) of a table
    with one row per subject and method. Every column an evaluation writes is summarised (a signed
    one such as the sanity check's Spearman as its absolute value, so that -0.6 fails as 0.6
    does; a rate with a Wilson interval); the methods are compared pairwise on the first primary
    measure present (``group.method_comparison``: Wilcoxon signed-rank, Holm-corrected, each
    method also against the best model-free baseline), and a ranking is stated only where the
    corrected test supports it, in the record's direction."""
    measures, directions, rates = [], {}, set()
    for name in table.columns:
        column, _ = column_of(name)
        if column is None:
            continue
        if column.absolute_as:
            table = table.assign(**{column.absolute_as: table[name].abs()})
            measures.append(column.absolute_as)
            directions[column.absolute_as] = False
        else:
            measures.append(name)
            directions[name] = column.higher_is_better
            if column.rate:
                rates.add(name)
    comparison = compare_methods(table, measures, seed=seed, rates=rates)
    ranked = sorted(
        (column_of(m)[0].primary, i, m)
        for i, m in enumerate(measures)
        if column_of(m)[0] and column_of(m)[0].primary
    )
    primary = ranked[0][2] if ranked else None
    if primary is None:
        return comparison, None, [], None
    names = sorted(table["method"].unique())
    means = dict(zip(comparison["method"], comparison[primary]))
    pairs = comparison_pairs(
        [m for m in names if not is_reference(m)],
        [m for m in names if m.startswith("baseline-")],
        means,
        directions[primary],
    )
    tests = paired_tests(table, primary, pairs)
    return comparison, primary, ranking(tests, directions[primary]), tests
