"""group: the method-comparison table from the subjects' evaluations (participant --evaluate).

Each subject contributes the evaluation of the maps of its known class (the column --target names)
from its first session; the table gives each method's mean with a bootstrap 95 % interval over
subjects, and the voxel-inverting curves averaged over subjects (Lu et al. 2023, figure 4).
"""

import json

import numpy as np
import pandas as pd

from bidsxai.group.method_comparison import compare_methods, ranking
from bidsxai.outputs import evaluation_path, label, sidecar_path

PRIMARY = ("auroc", "inverting_drop")  # what a ranking is stated on, the first one present


def method_comparison(out_dir, first_sessions, known, seed=0):
    """(comparison table, ranking statements, mean curves by method), or None without
    evaluations. ``first_sessions``: (subject, session) pairs; ``known``: subject -> class."""
    rows, curves = [], {}
    for subject, session in first_sessions:
        path = evaluation_path(out_dir, subject, session or None)
        if not path.is_file() or subject not in known:
            continue
        table = pd.read_csv(path, sep="\t")
        mine = table[table["target"] == label(known[subject])]
        rows += [dict(r, subject=subject) for r in mine.to_dict("records")]
        saved = json.loads(sidecar_path(path).read_text()).get("Curves", {})
        for method in mine["method"]:
            curve = saved.get(f"{method}/{label(known[subject])}")
            if curve:
                curves.setdefault(method, []).append(curve)
    if not rows:
        return None
    comparison = compare_methods(pd.DataFrame(rows), seed=seed)
    primary = next(
        (
            c
            for p in PRIMARY
            for c in comparison.columns
            if c == p or c.startswith(f"{p}_") and not c.endswith(("_low", "_high"))
        ),
        None,
    )
    statements = ranking(comparison, primary) if primary else []
    mean_curves = {
        m: {
            k: np.mean([c[k] for c in cs], axis=0).tolist()
            for k in ("fractions", "inverted", "inverted_random")
        }
        for m, cs in curves.items()
    }
    return comparison, primary, statements, mean_curves
