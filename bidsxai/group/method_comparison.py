"""Which explanation method can be trusted most here? Each method's evaluation measures summarised
over subjects, with percentile bootstrap 95 % intervals, and a ranking stated only where the
intervals do not overlap."""

import numpy as np
import pandas as pd

# Measure -> True when higher is better (the direction a ranking reads it in). Localisation
# measures carry their mask's label: auroc_lesion, pointing_lesion, ...
MEASURES = {
    "auroc": True,
    "pointing": True,
    "mass_inside": True,
    "inverting_drop": True,
    "inverting_drop_random": True,
    "deletion_auc": False,
    "insertion_auc": True,
    "sanity_abs_spearman": False,  # |rho| after randomisation: a rho of -0.6 fails as 0.6 does
    "fold_robustness_spearman": True,
    "fold_robustness_roi_cosine": True,
    "run_robustness_spearman": True,
    "run_robustness_roi_cosine": True,
}


def higher_is_better(column):
    """The direction of a measure column, or None for a column that is not a measure."""
    for measure in sorted(MEASURES, key=len, reverse=True):
        if (
            column == measure
            or column.startswith(f"{measure}_")
            and not column.endswith(("_low", "_high"))
        ):
            if measure == "inverting_drop" and column.startswith("inverting_drop_random"):
                continue
            return MEASURES[measure]
    return None


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


def compare_methods(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per method: n subjects and each measure's mean with its interval, from a table
    with one row per subject and method (columns ``subject``, ``method`` and the measures)."""
    if "sanity_spearman" in table.columns:
        table = table.assign(sanity_abs_spearman=table["sanity_spearman"].abs())
    rows = []
    for method, group in table.groupby("method", sort=True):
        row = {"method": method, "n": int(group["subject"].nunique())}
        for measure in [c for c in group.columns if higher_is_better(c) is not None]:
            mean, low, high = bootstrap_interval(group[measure], seed=seed)
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def ranking(comparison: pd.DataFrame, measure: str) -> list:
    """Statements "A > B" for the pairs of methods whose intervals of ``measure`` do not overlap,
    in the measure's better direction."""
    if measure not in comparison.columns:
        return []
    higher_better = higher_is_better(measure)
    statements = []
    rows = comparison.dropna(subset=[measure]).to_dict("records")
    for a in rows:
        for b in rows:
            separated = (
                a[f"{measure}_low"] > b[f"{measure}_high"]
                if higher_better
                else a[f"{measure}_high"] < b[f"{measure}_low"]
            )
            if a["method"] != b["method"] and separated:
                statements.append(f"{a['method']} > {b['method']}")
    return statements
