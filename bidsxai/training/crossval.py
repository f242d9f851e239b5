"""Repeated subject-level k-fold cross-validation with a held-out test set.

Fold k's model trains on the other folds, stops early and is selected on fold k (``--validation
fold``) or on an inner split of the other folds (``--validation inner``, the nested protocol), and
predicts fold k (out of fold) and the test set. Every fold model is kept: at the participant level
a cohort subject is explained by the one model that never trained on it; under the nested protocol
that model's early stopping never looked at the subject either.
"""

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from bidsxai.logs import event
from bidsxai.outputs import ENSEMBLE, ensemble_members, member_name
from bidsxai.training import distributed
from bidsxai.training.checkpoint import as_arrays, as_tensors
from bidsxai.training.loop import fit, predict
from bidsxai.training.metrics import classification_metrics, roc_points


@dataclass
class Member:
    """One trained fold model and what it predicted."""

    repeat: int
    fold: int
    run: int
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
        return member_name(self.repeat, self.fold, self.run)


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
    runs=1,
    ranks=distributed.SINGLE_PROCESS,
    progress=False,
    checkpoints=None,
    inner=None,
):
    """Train every (repeat, fold) model, ``runs`` times with different seeds. ``parts[r]`` gives
    each sample's fold number or 'test' in repeat r + 1; ``make_dataset(indices, train)`` builds a
    dataset of those samples. ``inner(train, seed, name)`` -> (training, validation) splits a fold
    model's training samples for its early stopping (the nested protocol); without it the fold it
    predicts stops it. With ``checkpoints`` (``training/checkpoint.py``), each finished
    member is kept at once and taken back instead of trained again, and the member in progress
    continues from its last epoch."""
    members = []
    if inner is not None:  # every inner split is checked before any model trains
        for r, part in enumerate(parts):
            for fold in range(1, n_folds + 1):
                train = np.flatnonzero((part != fold) & (part != "test"))
                inner(train, seed + 1000 * r + fold, member_name(r + 1, fold, 1))
    for r, part in enumerate(parts):
        test = np.flatnonzero(part == "test")
        test_set = make_dataset(test, train=False)
        for fold, run in itertools.product(range(1, n_folds + 1), range(1, runs + 1)):
            validation = np.flatnonzero(part == fold)
            train = np.flatnonzero((part != fold) & (part != "test"))
            member_seed = seed + 1000 * r + fold + 100_000 * (run - 1)
            name = member_name(r + 1, fold, run)
            torch.manual_seed(member_seed)
            model = build_model()
            kept = checkpoints.load_member(name) if checkpoints else None
            if kept is not None:
                members.append(_kept_member(kept, model, r + 1, fold, run, train, validation))
                if ranks.main:
                    event("training_member_restored", model=name)
                continue
            val_set = make_dataset(validation, train=False)
            fit_train, stopping = train, val_set
            if inner is not None:
                fit_train, inner_validation = inner(train, seed + 1000 * r + fold, name)
                stopping = make_dataset(inner_validation, train=False)
            history, best_epoch = fit(
                model,
                make_dataset(fit_train, train=True),
                stopping,
                device=device,
                options=options,
                seed=member_seed,
                ranks=ranks,
                progress=progress,
                name=name,
                checkpoints=checkpoints,
            )
            outputs, samples = {}, {}
            for part_name, dataset in (("validation", val_set), ("test", test_set)):
                _, samples[part_name] = predict(model, dataset, device, options.batch_size)
                outputs[part_name] = _subject_level(dataset, samples[part_name])
            member = Member(
                r + 1,
                fold,
                run,
                model.cpu().eval(),
                history,
                best_epoch,
                train,
                validation,
                outputs["validation"],
                outputs["test"],
                samples,
            )
            if checkpoints is not None:
                checkpoints.save_member(name, _member_record(member))
            members.append(member)
    return members


def _member_record(member):
    """What a checkpoint keeps of a finished member: its weights and predictions."""
    return {
        "model": member.model.state_dict(),
        "history": member.history,
        "best_epoch": member.best_epoch,
        "validation_probabilities": as_tensors(member.validation_probabilities),
        "test_probabilities": as_tensors(member.test_probabilities),
        "sample_probabilities": as_tensors(member.sample_probabilities),
    }


def _kept_member(record, model, repeat, fold, run, train, validation):
    model.load_state_dict(record["model"])
    return Member(
        repeat,
        fold,
        run,
        model.cpu().eval(),
        record["history"],
        record["best_epoch"],
        train,
        validation,
        as_arrays(record["validation_probabilities"]),
        as_arrays(record["test_probabilities"]),
        as_arrays(record["sample_probabilities"]),
    )


def out_of_fold(members, repeat, n_samples, n_classes, run=1):
    """Each cohort sample's probabilities from the fold model that did not train on it (NaN rows
    for test samples)."""
    probabilities = np.full((n_samples, n_classes), np.nan)
    for m in members:
        if m.repeat == repeat and m.run == run:
            probabilities[m.validation] = m.validation_probabilities
    return probabilities


def chosen_member(members, select_by):
    """The fold model of repeat 1 and run 1 with the best selection score on its own validation
    fold (``train --final-model best-fold``)."""

    def score(m):
        best = m.history[m.best_epoch - 1]
        return (
            (best["val_balanced_accuracy"], -best["val_loss"])
            if select_by == "balanced_accuracy"
            else (-best["val_loss"],)
        )

    return max((m for m in members if m.repeat == 1 and m.run == 1), key=score)


def final_probabilities(members, final_name, per_sample=False):
    """The final model's test-set probabilities (``per_sample``: a 2D model's per slice): its
    member's, or the mean of the ensemble's members' (``models.ensemble``)."""
    names = ensemble_members([m.name for m in members]) if final_name == ENSEMBLE else [final_name]
    return np.mean(
        [
            m.sample_probabilities["test"] if per_sample else m.test_probabilities
            for m in members
            if m.name in names
        ],
        0,
    )


def summarise(members, y, parts, select_by, final_model="ensemble"):
    """Metrics: per member (its validation fold and the test set), pooled out-of-fold per repeat
    (run 1), the final model on the test set, and each metric's mean and SD across repeats and
    across training runs (repeat 1). ``final_model``: "ensemble" (the fold models' ensemble) or
    "best-fold" (``chosen_member``)."""
    n_classes = members[0].validation_probabilities.shape[1]
    test = np.flatnonzero(parts[0] == "test")
    final = ENSEMBLE if final_model == "ensemble" else chosen_member(members, select_by).name
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
    metrics = {"cross_validation": repeats[0], "members": per_member, "final_member": final}
    cohort = np.flatnonzero(parts[0] != "test")
    metrics["roc"] = {
        "cross_validation": roc_points(
            y[cohort], out_of_fold(members, 1, len(y), n_classes)[cohort]
        )
    }
    if len(test):
        probabilities = final_probabilities(members, final)
        metrics["test"] = classification_metrics(y[test], probabilities)
        metrics["roc"]["test"] = roc_points(y[test], probabilities)
    if len(repeats) > 1:
        metrics["cross_validation_repeats"] = _spread(repeats)
    runs = max(m.run for m in members)
    if runs > 1:
        cohort = np.flatnonzero(parts[0] != "test")
        metrics["cross_validation_runs"] = _spread(
            [
                classification_metrics(
                    y[cohort], out_of_fold(members, 1, len(y), n_classes, run)[cohort]
                )
                for run in range(1, runs + 1)
            ]
        )
    return metrics


def _spread(results):
    """Each metric's mean, SD and values over several cross-validations."""
    keys = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "loss")
    return {
        k: {
            "mean": float(np.nanmean([m[k] for m in results])),
            "sd": float(np.nanstd([m[k] for m in results], ddof=1)),
            "values": [m[k] for m in results],
        }
        for k in keys
    }


def slice_metrics(members, y, parts, n_slices, final_name):
    """2D models: every slice on its own, pooled out of fold (repeat 1) and the final model's test
    set."""
    validation = [m for m in members if m.repeat == 1 and m.run == 1]
    pooled_y = np.concatenate([np.repeat(y[m.validation], n_slices) for m in validation])
    metrics = {
        "cross_validation": classification_metrics(
            pooled_y, np.concatenate([m.sample_probabilities["validation"] for m in validation])
        )
    }
    test = np.flatnonzero(parts[0] == "test")
    if len(test):
        metrics["test"] = classification_metrics(
            np.repeat(y[test], n_slices), final_probabilities(members, final_name, per_sample=True)
        )
    return metrics
