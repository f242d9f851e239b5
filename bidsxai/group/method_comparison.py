"""Which explanation method can be trusted most here? Each method's evaluation measures summarised
over subjects, with percentile bootstrap 95 % intervals, and a ranking stated only where the
intervals do not overlap. Which columns are measures, and their directions, come from the caller
(``workflows.method_comparison`` reads them from the evaluation records)."""

import numpy as np
import pandas as pd


def bootstrap_interval(values, n_boot=2000, seed=0, confidence=0.95):
    """(mean, low, high): the mean and the percentile bootstrap interval of the mean."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(1)
    tail = 100 * (1 - confidence) / 2
    return (float(values.mean()), *map(float, np.percentile(means, [tail, 100 - tail])))


def compare_methods(table: pd.DataFrame, measures: list, seed: int = 0) -> pd.DataFrame:
    """One row per method: n subjects and each of ``measures``' mean with its interval, from a
    table with one row per subject and method (columns ``subject``, ``method`` and the
    measures)."""
    rows = []
    for method, group in table.groupby("method", sort=True):
        row = {"method": method, "n": int(group["subject"].nunique())}
        for measure in measures:
            mean, low, high = bootstrap_interval(group[measure], seed=seed)
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def ranking(comparison: pd.DataFrame, measure: str, higher_is_better: bool) -> list:
    """Statements "A > B" for the pairs of methods whose intervals of ``measure`` do not overlap,
    in the measure's better direction."""
    if measure not in comparison.columns:
        return []
    statements = []
    rows = comparison.dropna(subset=[measure]).to_dict("records")
    for a in rows:
        for b in rows:
            separated = (
                a[f"{measure}_low"] > b[f"{measure}_high"]
                if higher_is_better
                else a[f"{measure}_high"] < b[f"{measure}_low"]
            )
            if a["method"] != b["method"] and separated:
                statements.append(f"{a['method']} > {b['method']}")
    return statements
