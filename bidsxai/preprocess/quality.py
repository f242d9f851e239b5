"""The quality gate after preprocessing: a session whose T1w does not look like a registered brain
is reported, not classified (``--qc-override`` classifies it anyway).

Three numbers on the preprocessed T1w within the template brain mask, each with its threshold:
- brain coverage, the share of brain voxels with signal (the synthetic cohort: 0.99);
- template correlation, Pearson's r with the template's T1w (the synthetic cohort: 0.85 to 0.98;
  a T1w with a single non-zero voxel: 0.28, its N4-corrected noise registered anywhere);
- intensity spread, the interquartile range of the normalised intensities (the synthetic cohort:
  0.30 to 0.34 with percentile normalisation; a flat image: 0).
"""

import numpy as np

from bidsxai.derivatives import GateMeasures, QualityGate

THRESHOLDS = GateMeasures(brain_coverage=0.8, template_correlation=0.5, intensity_spread=0.05)


def quality_gate(t1w, template):
    """The ``QualityGate`` of a preprocessed T1w on the template grid."""
    values = t1w[template.brain_mask].astype(np.float64)
    reference = template.t1w[template.brain_mask].astype(np.float64)
    coverage = float((np.abs(values) > 1e-6).mean())
    if values.std() > 0 and np.isfinite(values).all():
        correlation = float(np.corrcoef(values, reference)[0, 1])
    else:
        correlation = 0.0
    q1, q3 = np.percentile(values, [25, 75]) if np.isfinite(values).all() else (0.0, 0.0)
    measured = GateMeasures(
        brain_coverage=coverage,
        template_correlation=correlation,
        intensity_spread=float(q3 - q1),
    )
    limits = THRESHOLDS.to_json()
    reasons = [
        f"{name} {value:.3g} < {limits[name]:g}"
        for name, value in measured.to_json().items()
        if not value >= limits[name]
    ]
    return QualityGate(
        measured=measured, thresholds=THRESHOLDS, passed=not reasons, reasons=reasons
    )
