"""What the sanity check (``evaluate.randomisation``) concludes from its curves: the thresholds,
the verdict and the curve as the evaluation sidecar stores it. Plain numpy, so the evaluations'
records and the reports read them without torch."""

import numpy as np

# |Spearman of the absolute maps| after the full cascade below this passes. Adebayo et al. (2018)
# compare absolute maps: randomising the output layer alone can flip a map's signs and drive the
# signed rank correlation to 0 while the magnitudes, what a reader sees, stay as they were.
SANITY_THRESHOLD = 0.2
# A randomised network whose output sensitivity is below this fraction of the trained network's
# ignores its input, and its maps say nothing about what randomisation does to a working network:
# N(0, SD) draws gave 0 and statistics reset 0.001; kept 0.026, recomputed 2.7 (measured as
# ``evaluate.randomisation`` describes).
DEAD_FRACTION = 1e-2


def verdict(result, threshold=SANITY_THRESHOLD):
    """(evaluable, passed) of a cascade's last step: passed only when evaluable and |Spearman of
    the absolute maps| < ``threshold``; never True when not evaluable."""
    ok = bool(result["evaluable"][-1]) and bool(np.isfinite(result["abs_spearman"][-1]))
    return ok, ok and bool(abs(result["abs_spearman"][-1]) < threshold)


def curve(result):
    """The curve as the evaluation sidecar stores it (JSON: NaN as null)."""

    def number(v):
        return float(v) if np.isfinite(v) else None

    return {
        "RandomisedLayers": [list(step) for step in result["layers"]],
        "Spearman": [number(v) for v in result["spearman"]],
        "AbsSpearman": [number(v) for v in result["abs_spearman"]],
        "SSIM": [number(v) for v in result["ssim"]],
        "HOG": [number(v) for v in result["hog"]],
        "OutputSensitivity": [number(v) for v in result["sensitivity"]],
        "Evaluable": [bool(v) for v in result["evaluable"]],
    }
