"""Binding a subject's covariates (GAMER-MRIL's age) to a model for the length of an explanation.

Explanation methods call ``model(x)`` with the image alone; a model with covariate inputs reads the
bound values whenever its covariate arguments are left out.
"""

from contextlib import contextmanager


@contextmanager
def binding(model, values):
    """Within the block, ``bound_covariates(model)`` is ``values`` (a 1D tensor, one per covariate)."""
    model._bound_covariates = values
    try:
        yield model
    finally:
        model._bound_covariates = None


def bound_covariates(model):
    return getattr(model, "_bound_covariates", None)
