"""Subject-level stratified train/validation/test assignment (sessions never straddle splits)."""

import numpy as np


def stratified_split(subject_labels, test_fraction=0.2, val_fraction=0.2, seed=0):
    """{subject: 'train'|'validation'|'test'}, stratified by label, each class in every split when
    it has at least three subjects."""
    rng = np.random.default_rng(seed)
    by_class = {}
    for subject, label in sorted(subject_labels.items()):
        by_class.setdefault(label, []).append(subject)
    assignment = {}
    for _label, subjects in sorted(by_class.items()):
        order = list(rng.permutation(subjects))
        n = len(order)
        n_test = max(1, int(round(n * test_fraction))) if n >= 3 else 0
        n_val = max(1, int(round(n * val_fraction))) if n - n_test >= 2 else 0
        for i, subject in enumerate(order):
            assignment[subject] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return assignment
