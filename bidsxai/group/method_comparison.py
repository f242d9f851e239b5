"""Which explanation method can be trusted most here? Each method's evaluation measures summarised
over subjects, and a ranking stated only where a paired test over subjects, corrected for the
number of pairs, supports it. Which columns are measures, their directions and which are rates
come from the caller (``workflows.method_comparison`` reads them from the evaluation records).

Every method is measured on the same subjects, so methods are compared by their paired
differences (Wilcoxon signed-rank test, two-sided) and the p-values of all the pairs compared
together are Holm-corrected (family-wise error 5 %). A mean comes with a percentile bootstrap
95 % interval, a rate with a Wilson score interval (Wilson 1927): the bootstrap of 1 hit in 48
gives [0, 0.0625], which cannot be right at 0, Wilson [0.004, 0.109].
"""

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from bidsxai.training.metrics import wilson_interval

ALPHA = 0.05  # family-wise error of the ranking


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


def rate_interval(values, confidence=0.95):
    """(rate, low, high): the share of hits and its Wilson score interval. ``values`` are per
    subject hits in [0, 1]; a pointing game that broke a tie by expectation contributes its
    expected hit, so the count of hits is their sum."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    hits = float(values.sum())
    low, high = wilson_interval(hits, values.size, confidence)
    return (hits / values.size, max(0.0, low), min(1.0, high))


def compare_methods(table: pd.DataFrame, measures: list, seed: int = 0, rates=()) -> pd.DataFrame:
    """One row per method: n subjects and, for each of ``measures``, its mean (a rate for those in
    ``rates``) with its interval and the number of subjects it was measured on (``<measure>_n``),
    from a table with one row per subject and method (columns ``subject``, ``method`` and the
    measures)."""
    rows = []
    for method, group in table.groupby("method", sort=True):
        row = {"method": method, "n": int(group["subject"].nunique())}
        for measure in measures:
            values = pd.to_numeric(group[measure], errors="coerce").astype(float)
            if measure in rates:
                mean, low, high = rate_interval(values)
            else:
                mean, low, high = bootstrap_interval(values, seed=seed)
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
            row[f"{measure}_n"] = int(np.isfinite(values).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def holm(pvalues):
    """Holm's step-down adjusted p-values (Holm 1979), in the order given; NaN stays NaN."""
    p = np.asarray(pvalues, np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def paired_tests(table: pd.DataFrame, measure: str, pairs) -> pd.DataFrame:
    """One row per pair (a, b) of ``pairs``: the subjects both were measured on (``n``), the mean
    and median of a - b, the two-sided Wilcoxon signed-rank p-value (zero differences dropped, as
    Wilcoxon did; p = 1 where every difference is 0) and its Holm-adjusted value over all the
    pairs given."""
    wide = table.pivot_table(index="subject", columns="method", values=measure, aggfunc="first")
    rows = []
    for a, b in pairs:
        both = wide[[a, b]].apply(pd.to_numeric, errors="coerce").dropna()
        d = (both[a] - both[b]).to_numpy(np.float64)
        if d.size == 0:
            p = np.nan
        elif not np.any(d != 0):
            p = 1.0
        else:
            p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
        rows.append(
            {
                "measure": measure,
                "method_a": a,
                "method_b": b,
                "n": int(d.size),
                "mean_difference": float(d.mean()) if d.size else np.nan,
                "median_difference": float(np.median(d)) if d.size else np.nan,
                "p": p,
            }
        )
    result = pd.DataFrame(
        rows,
        columns=[
            "measure",
            "method_a",
            "method_b",
            "n",
            "mean_difference",
            "median_difference",
            "p",
        ],
    )
    result["p_holm"] = holm(result["p"].to_numpy())
    return result


def comparison_pairs(methods, references, means, higher_is_better):
    """The pairs compared: every two methods, and each method against the best of the
    ``references`` (model-free baselines) by ``means`` in the measure's direction: the strongest
    map that never looked at the model is the one a method has to beat."""
    pairs = list(itertools.combinations(sorted(methods), 2))
    scored = [r for r in references if np.isfinite(means.get(r, np.nan))]
    if scored:
        best = (max if higher_is_better else min)(scored, key=lambda r: means[r])
        pairs += [(m, best) for m in sorted(methods)]
    return pairs


def ranking(pairs: pd.DataFrame, higher_is_better: bool, alpha: float = ALPHA) -> list:
    """Statements "A > B" (A better) for the pairs whose Holm-adjusted p is below ``alpha``, in
    the measure's better direction of the mean paired difference."""
    statements = []
    for r in pairs.to_dict("records"):
        if not (r["p_holm"] < alpha) or r["mean_difference"] == 0:
            continue
        a_better = (r["mean_difference"] > 0) == higher_is_better
        better, worse = (
            (r["method_a"], r["method_b"]) if a_better else (r["method_b"], r["method_a"])
        )
        statements.append(f"{better} > {worse}")
    return statements
