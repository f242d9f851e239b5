"""Binding a subject's covariates (GAMER-MRIL's age) to a model for the length of an explanation.

Explanation methods call ``model(x)`` with the image alone; a model with covariate inputs reads the
bound values whenever its covariate arguments are left out.
"""

from contextlib import contextmanager

import numpy as np
import torch

from bidsxai.errors import NoInputError
from bidsxai.models.ensemble import FoldEnsemble


@contextmanager
def binding(model, values):
    """Within the block, ``bound_covariates(model)`` is ``values`` (a 1D tensor, one per
    covariate), and so is every ensemble member's (``models.ensemble``)."""
    modules = [model, *(model.members.values() if isinstance(model, FoldEnsemble) else ())]
    for module in modules:
        module._bound_covariates = values
    try:
        yield model
    finally:
        for module in modules:
            module._bound_covariates = None


def bound_covariates(model):
    return getattr(model, "_bound_covariates", None)


def subject_covariates(columns, participants, subject, device):
    """The subject's values of a model's covariate columns (e.g. age) from participants.tsv, as a
    1D tensor; a missing or non-numeric value is the subject's error."""
    values = []
    for column in columns:
        value = participants[column].get(subject) if column in participants.columns else None
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            raise NoInputError(
                f"sub-{subject}: the model needs {column} from participants.tsv; found {value!r}"
            ) from None
        if not np.isfinite(values[-1]):
            raise NoInputError(
                f"sub-{subject}: the model needs {column} from participants.tsv; it is n/a"
            )
    return torch.tensor(values, device=device)
