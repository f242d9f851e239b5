"""The t of a group effect adjusted for covariates (age, sex, ...) in a voxel-wise GLM, in the form
that Freedman-Lane permutation needs.

Model: y = x b + Z g + e with Z = [1, covariates]. With Q an orthonormal basis of Z, the covariate
-free regressor x~ = x - Q Q'x and residuals R = y - Q Q'y, the OLS t of b is
t = x~'R / sqrt(s2 x~'x~),  s2 = (|R|^2 - (x~'R)^2 / x~'x~) / (n - rank(Z) - 1).
Freedman-Lane permutes R (y* = P R + Z g^); the fit of y* to the full model needs only
x~'P R, the projections Q'P R and |R|^2, which is why those are the pieces returned here.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class ReducedModel:
    """The covariates-only fit of every voxel, and what the full model needs beyond it."""

    regressor: np.ndarray  # x~ (n,)
    basis: np.ndarray  # Q (n, k)
    residuals: np.ndarray  # R (n, V)
    df: int  # n - k - 1

    @property
    def design_rows(self):
        """(k + 1, n): x~ and the columns of Q; permuting their entries permutes R."""
        return np.vstack([self.regressor, self.basis.T])


def reduced_model(data, regressor, covariates):
    """Fit the covariates (with an intercept) to data (n, V) and residualise the regressor (n,)."""
    data = np.asarray(data, np.float64)
    n = data.shape[0]
    z = np.column_stack([np.ones(n), np.asarray(covariates, np.float64).reshape(n, -1)])
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    basis = u[:, s > s[0] * 1e-10]
    x = np.asarray(regressor, np.float64)
    x_res = x - basis @ (basis.T @ x)
    if x_res @ x_res < 1e-10 * (x @ x):
        raise ValueError(
            "the covariates explain the group labels completely; nothing is left to test"
        )
    df = n - basis.shape[1] - 1
    if df < 1:
        raise ValueError(
            f"{n} subjects cannot fit {basis.shape[1]} covariate columns and a group effect"
        )
    return ReducedModel(x_res, basis, data - basis @ (basis.T @ data), df)


def glm_t(projections, total_sq, regressor_sq, df):
    """t of the regressor from (..., k + 1, V) projections of (permuted) residuals on
    design_rows, |R|^2 (V,) and x~'x~; works on numpy arrays and torch tensors alike."""
    effect = projections[..., 0, :]
    covariate_part = (projections[..., 1:, :] ** 2).sum(-2)
    s2 = (total_sq - covariate_part - effect**2 / regressor_sq) / df
    positive = s2 > 1e-12 * (total_sq + 1)
    safe = s2 * positive + (~positive) * 1.0
    return effect / (safe * regressor_sq) ** 0.5 * positive
