"""Repeated subject-level k-fold cross-validation with a held-out test set.

Fold k's model trains on the other folds, stops early and is selected on fold k, and predicts
fold k (out of fold) and the test set. Every fold model is kept: at the participant level a
cohort subject is explained by the one model that never trained on it.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from bidsxai.training import distributed
from bidsxai.training.loop import fit, predict
from bidsxai.training.metrics import classification_metrics


@dataclass
class Member:
    """One trained fold model and what it predicted."""

    repeat: int
    fold: int
    model: torch.nn.Module
    history: list
    best_epoch: int
    trained_on: np.ndarray  # sample indices it trained on
    validation: np.ndarray  # sample indices of its validation fold
    validation_probabilities: np.ndarray  # per sample (session), subject-level for slice models
    test_probabilities: np.ndarray
    sample_probabilities: dict = field(default_factory=dict)  # by set, per sample (2D: per slice)

    @property
    def name(self):
        return f"repeat-{self.repeat}_fold-{self.fold}"


def _subject_level(dataset, probabilities):
    return dataset.subject_probabilities(probabilities) if len(probabilities) else probabilities


def cross_validate(
    parts,
    make_dataset,
    build_model,
    *,
    n_folds,
    options,
    device,
    seed,
    ranks=distributed.SINGLE_PROCESS,
    progress=False,
):
    """Train every (repeat, fold) model. ``parts[r]`` gives each sample's fold number or 'test' in
    repeat r + 1; ``make_dataset(indices, train)`` builds a dataset of those samples."""
    members = []
    for r, part in enumerate(parts):
        test = np.flatnonzero(part == "test")
        test_set = make_dataset(test, train=False)
        for fold in range(1, n_folds + 1):
            validation = np.flatnonzero(part == fold)
            train = np.flatnonzero((part != fold) & (part != "test"))
            member_seed = seed + 1000 * r + fold
            torch.manual_seed(member_seed)
            model = build_model()
            val_set = make_dataset(validation, train=False)
            history, best_epoch = fit(
                model,
                make_dataset(train, train=True),
                val_set,
                device=device,
                options=options,
                seed=member_seed,
                ranks=ranks,
                progress=progress,
            )
            outputs, samples = {}, {}
            for name, dataset in (("validation", val_set), ("test", test_set)):
                _, samples[name] = predict(model, dataset, device, options.batch_size)
                outputs[name] = _subject_level(dataset, samples[name])
            members.append(
                Member(
                    r + 1,
                    fold,
                    model.cpu().eval(),
                    history,
                    best_epoch,
                    train,
                    validation,
                    outputs["validation"],
                    outputs["test"],
                    samples,
                )
            )
    return members


def out_of_fold(members, repeat, n_samples, n_classes):
    """Each cohort sample's probabilities from the fold model that did not train on it (NaN rows
    for test samples)."""
    probabilities = np.full((n_samples, n_classes), np.nan)
    for m in members:
        if m.repeat == repeat:
            probabilities[m.validation] = m.validation_probabilities
    return probabilities


def chosen_member(members, select_by):
    """The final model for subjects outside the cohort: repeat 1's fold model with the best
    selection score on its own validation fold."""

    def score(m):
        best = m.history[m.best_epoch - 1]
        return (
            (best["val_balanced_accuracy"], -best["val_loss"])
            if select_by == "balanced_accuracy"
            else (-best["val_loss"],)
        )

    return max((m for m in members if m.repeat == 1), key=score)


def summarise(members, y, parts, select_by):
    """Metrics: per member (its validation fold and the test set), pooled out-of-fold per repeat,
    the final model on the test set, and each metric's mean and SD across repeats."""
    n_classes = members[0].validation_probabilities.shape[1]
    test = np.flatnonzero(parts[0] == "test")
    final = chosen_member(members, select_by)
    per_member = {
        m.name: {
            "validation": classification_metrics(y[m.validation], m.validation_probabilities),
            **(
                {"test": classification_metrics(y[test], m.test_probabilities)} if len(test) else {}
            ),
        }
        for m in members
    }
    repeats = []
    for r in range(1, len(parts) + 1):
        cohort = np.flatnonzero(parts[r - 1] != "test")
        pooled = out_of_fold(members, r, len(y), n_classes)[cohort]
        repeats.append(classification_metrics(y[cohort], pooled))
    metrics = {"cross_validation": repeats[0], "members": per_member, "final_member": final.name}
    if len(test):
        metrics["test"] = per_member[final.name]["test"]
    if len(repeats) > 1:
        keys = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "loss")
        metrics["cross_validation_repeats"] = {
            k: {
                "mean": float(np.nanmean([m[k] for m in repeats])),
                "sd": float(np.nanstd([m[k] for m in repeats], ddof=1)),
                "values": [m[k] for m in repeats],
            }
            for k in keys
        }
    return metrics


def slice_metrics(members, y, parts, n_slices, final_name):
    """2D models: every slice on its own, pooled out of fold (repeat 1) and the final model's test
    set."""
    validation = [m for m in members if m.repeat == 1]
    pooled_y = np.concatenate([np.repeat(y[m.validation], n_slices) for m in validation])
    metrics = {
        "cross_validation": classification_metrics(
            pooled_y, np.concatenate([m.sample_probabilities["validation"] for m in validation])
        )
    }
    final = next(m for m in members if m.name == final_name)
    test = np.flatnonzero(parts[0] == "test")
    if len(test):
        metrics["test"] = classification_metrics(
            np.repeat(y[test], n_slices), final.sample_probabilities["test"]
        )
    return metrics
