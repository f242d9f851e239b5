"""Subject-level stratified cross-validation with a held-out test set.

A subject is one unit: all its sessions (and all their slices) land in the same fold, so no model
is validated or tested on a subject it trained on. The test subjects are drawn once from
``seed`` and stay the same across repeats; each repeat re-deals the rest into folds. With
``--validation inner``, each fold model's training subjects are dealt once more, and one of those
inner folds decides its early stopping, so the outer fold it predicts took no part in choosing it.
"""

import numpy as np

from bidsxai.errors import UsageError


def _by_class(subject_labels):
    groups = {}
    for subject, label in sorted(subject_labels.items()):
        groups.setdefault(label, []).append(subject)
    return groups


def held_out_test(subject_labels, fraction, seed):
    """The test subjects: ``fraction`` of each class (at least one when a class has three or
    more)."""
    rng = np.random.default_rng(seed)
    test = []
    for _label, subjects in sorted(_by_class(subject_labels).items()):
        n = len(subjects)
        n_test = max(1, int(round(n * fraction))) if fraction > 0 and n >= 3 else 0
        test += [str(s) for s in rng.permutation(subjects)[:n_test]]
    return sorted(test)


def stratified_folds(subject_labels, n_folds, seed):
    """{subject: fold 1..n_folds}: each class dealt round-robin in a seeded order, every class
    starting where the previous one stopped so fold sizes differ by at most one."""
    rng = np.random.default_rng(seed)
    folds, start = {}, 0
    for _label, subjects in sorted(_by_class(subject_labels).items()):
        for i, subject in enumerate(rng.permutation(subjects)):
            folds[str(subject)] = (start + i) % n_folds + 1
        start = (start + len(subjects)) % n_folds
    return folds


def assign(subject_labels, n_folds, test_fraction, seed, repeat):
    """{subject: 'test' or fold number} for one repeat (repeat 1 uses ``seed`` itself)."""
    test = set(held_out_test(subject_labels, test_fraction, seed))
    rest = {s: label for s, label in subject_labels.items() if s not in test}
    folds = stratified_folds(rest, n_folds, seed + repeat - 1)
    return {s: "test" if s in test else folds[s] for s in sorted(subject_labels)}


def inner_split(subjects, labels, indices, n_folds, seed, name):
    """(training, validation) sample indices: the subjects of the samples ``indices`` dealt into
    ``n_folds`` stratified folds, the first of which validates. ``subjects`` and ``labels`` are
    per sample; ``name`` (the fold model's) goes into the error when a class would be missing
    from either side."""
    subject_labels = {str(subjects[i]): labels[i] for i in indices}
    folds = stratified_folds(subject_labels, n_folds, seed)
    validating = np.array([folds[str(subjects[i])] == 1 for i in indices], dtype=bool)
    training, validation = np.asarray(indices)[~validating], np.asarray(indices)[validating]
    for side, chosen in (("training", training), ("validation", validation)):
        missing = sorted(set(subject_labels.values()) - {labels[i] for i in chosen}, key=str)
        if missing:
            raise UsageError(
                f"--validation inner: {name}'s inner {side} split has no subject of class "
                f"{missing[0]} ({len(subject_labels)} training subjects dealt into {n_folds}); "
                "use more subjects, fewer --cv-folds, or --validation fold"
            )
    return training, validation
