"""Subject-level heatmap measures, their comparison between two groups and their change between
two sessions of the same subjects.

Measures (on the brain-masked, max-normalised map): the 95th percentile over brain voxels (paper
000), the share of the map's mass in voxels at or above half the maximum (how concentrated the
evidence is), and the mean per lobe when an atlas is given. Groups are compared by Student's and
Welch's t and Mann-Whitney U; the effect size is Hedges' g (bias-corrected standardised mean
difference) with a 95 % interval from its large-sample variance (Hedges & Olkin 1985). Two
sessions are compared by the paired t and the Wilcoxon signed-rank test; the effect size is
Cohen's d_z, the mean change over the SD of the changes.
"""

import numpy as np
from scipy import stats

from bidsxai.explain.quantify import max_normalise, percentile_in_mask


def subject_measures(heatmap, mask, atlas=None):
    """A dict of named measures of one heatmap."""
    normalised = max_normalise(heatmap, mask)
    inside = normalised[mask]
    total = inside.sum()
    measures = {
        "p95": percentile_in_mask(heatmap, mask),
        "mass_above_half": float(inside[inside >= 0.5].sum() / total) if total > 0 else 0.0,
    }
    if atlas is not None:
        for lobe in sorted(set(atlas.lobes.values())):
            labels = [i for i, name in atlas.lobes.items() if name == lobe]
            region = np.isin(atlas.labels, labels) & mask
            if region.any():
                measures[f"mean_{lobe.replace(' ', '_')}"] = float(normalised[region].mean())
    return measures


def hedges_g(a, b, confidence=0.95):
    """Hedges' g (a - b) and its normal-approximation confidence interval."""
    na, nb = len(a), len(b)
    pooled = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    d = (np.mean(a) - np.mean(b)) / pooled if pooled > 0 else 0.0
    g = d * (1 - 3 / (4 * (na + nb) - 9))
    se = np.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb - 3.94)))
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(g), float(g - z * se), float(g + z * se)


def compare_groups(a, b):
    """Student and Welch t, Mann-Whitney U (two-sided) and Hedges' g of two samples of a measure."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    student = stats.ttest_ind(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    mann_whitney = stats.mannwhitneyu(a, b, alternative="two-sided")
    g, low, high = hedges_g(a, b)
    return {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": a.mean(),
        "sd_a": a.std(ddof=1),
        "mean_b": b.mean(),
        "sd_b": b.std(ddof=1),
        "t": float(student.statistic),
        "df": len(a) + len(b) - 2,
        "p": float(student.pvalue),
        "t_welch": float(welch.statistic),
        "df_welch": float(welch.df),
        "p_welch": float(welch.pvalue),
        "u": float(mann_whitney.statistic),
        "p_mann_whitney": float(mann_whitney.pvalue),
        "hedges_g": g,
        "g_low": low,
        "g_high": high,
    }


def compare_sessions(before, after):
    """Paired t and Wilcoxon signed-rank test (two-sided) of after - before, a pair per subject."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    change = after - before
    paired = stats.ttest_rel(after, before)
    sd = change.std(ddof=1)
    changed = change[change != 0]
    wilcoxon = stats.wilcoxon(changed).pvalue if len(changed) else 1.0
    return {
        "n": len(change),
        "mean_before": before.mean(),
        "mean_after": after.mean(),
        "mean_change": change.mean(),
        "sd_change": sd,
        "t": float(paired.statistic) if sd > 0 else 0.0,
        "df": len(change) - 1,
        "p": float(paired.pvalue) if sd > 0 else 1.0,
        "p_wilcoxon": float(wilcoxon),
        "cohen_dz": float(change.mean() / sd) if sd > 0 else 0.0,
    }
