"""train: preprocessed images + a participants.tsv column -> a bundle of cross-validated models and
its training report.

Runs the same way alone or under ``torchrun`` (DistributedDataParallel, one process per GPU); only
rank 0 writes.
"""

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bidsxai.bids import CONTRAST_KEYS, read_participants
from bidsxai.config import plain
from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.bundle import grid_of, read_meta, save_bundle, sha256_of
from bidsxai.models.registry import get_architecture
from bidsxai.models.slice2d import load_imagenet
from bidsxai.outputs import (
    TISSUE_INPUTS,
    bundle_dir,
    bundle_meta_path,
    describe_collision,
    label_collisions,
    model_input_path,
    preproc_path,
    training_checkpoint_dir,
)
from bidsxai.qc_ratings import failed_sessions
from bidsxai.reports.training import write_training_report
from bidsxai.template import load_template
from bidsxai.training import distributed
from bidsxai.training.attention_table import attention_table
from bidsxai.training.augment import augmenter
from bidsxai.training.baseline import (
    baseline_record,
    baseline_warning,
    image_features,
    tissue_masks,
)
from bidsxai.training.cache import MappedArrays, cache_inputs
from bidsxai.training.checkpoint import Checkpoints, run_key
from bidsxai.training.crop_box import brain_crop, crop
from bidsxai.training.crossval import cross_validate, out_of_fold, slice_metrics, summarise
from bidsxai.training.dataset import VolumeDataset
from bidsxai.training.folds import assign, inner_split
from bidsxai.training.loop import TrainOptions
from bidsxai.training.metrics import (
    chance_warning,
    optimisation_failures,
    optimisation_warning,
)
from bidsxai.training.slices import SliceDataset, kept_slices
from bidsxai.training.targets import (
    closeness_weights,
    subject_targets,
    target_classes,
)
from bidsxai.workflows.device import pick_device


def labelled_sessions(settings, sessions, participants):
    """(sessions with a target value, their class names, the classes, numeric target by subject,
    a row per session left out for a missing value)."""
    threshold, bins = settings.target_threshold, settings.target_bins
    labels, values, missing = subject_targets(participants, settings.target, threshold, bins)
    chosen = [s for s in sessions if s.subject in labels]
    classes = target_classes(settings.target, threshold, bins) or sorted(
        {labels[s.subject] for s in chosen}
    )
    unlabelled = [
        {"session": s.key, "reason": f"no value of {settings.target} (n/a) in participants.tsv"}
        for s in sessions
        if s.subject in missing
    ]
    for row in unlabelled:
        print(f"bidsxai: train: left out {row['session']}: {row['reason']}", file=sys.stderr)
    if len({labels[s.subject] for s in chosen}) < 2:
        raise UsageError(
            f"--target {settings.target}: need at least two classes among the selected subjects"
        )
    collisions = label_collisions(classes)
    if collisions:
        raise UsageError(
            f"--target {settings.target}: {describe_collision(collisions[0])}; rename "
            "them in participants.tsv so that they differ in letters or digits"
        )
    return chosen, [labels[s.subject] for s in chosen], classes, values, unlabelled


def preprocessed_sessions(settings, sessions):
    """(the sessions with a preprocessed T1w, a row per session left out): one failed subject does
    not stop the others' training."""
    kept, excluded = [], []
    for s in sessions:
        if preproc_path(
            settings.output_dir,
            s.subject,
            s.session,
            "T1w",
            settings.resolution,
            settings.output_space,
        ).is_file():
            kept.append(s)
        else:
            excluded.append(
                {
                    "session": s.key,
                    "reason": "no preprocessed T1w (its participant level failed or has not run)",
                }
            )
    if not kept:
        raise NoInputError(
            f"no preprocessed T1w in {settings.output_dir}; run the participant level first"
        )
    for row in excluded:
        print(f"bidsxai: train: left out {row['session']}: {row['reason']}", file=sys.stderr)
    return kept, excluded


def check_class_sizes(classes, names, excluded):
    """Refuse a class left with fewer than two subjects (after sessions were left out)."""
    for c in classes:
        n = names.count(c)
        if n < 2:
            left_out = (
                f" ({len(excluded)} sessions left out for missing inputs)" if excluded else ""
            )
            raise NoInputError(
                f"class {c} has {n} subject(s) with preprocessed images{left_out}; "
                "training needs at least 2 per class"
            )


def model_inputs(settings, sessions):
    """The model's input channels: --contrasts, each present for every session (a missing one is
    one line naming a session without it), or else the contrasts preprocessed for every session,
    in T1w, T2w, FLAIR order."""

    def path(session, name):
        return model_input_path(
            settings.output_dir,
            session.subject,
            session.session,
            name,
            settings.resolution,
            settings.output_space,
        )

    for name in settings.contrasts or []:
        lacking = [s.key for s in sessions if not path(s, name).is_file()]
        if lacking:
            hint = (
                " (run the participant level with --tissue-maps)" if name in TISSUE_INPUTS else ""
            )
            raise NoInputError(
                f"--contrasts {name}: {len(lacking)} session(s) have none, e.g. {lacking[0]}{hint}"
            )
    if settings.contrasts:
        return list(settings.contrasts)
    present = [c for c in CONTRAST_KEYS.values() if all(path(s, c).is_file() for s in sessions)]
    if "T1w" not in present:
        raise NoInputError(
            f"no preprocessed T1w for every selected session in {settings.output_dir}; "
            "run the participant level first"
        )
    return present


def read_pretrained(arch, path):
    """(the --pretrained state dict, its record for the bundle), read once; (None, None) without
    it."""
    if path is None:
        return None, None
    if arch.dims != 2:
        raise UsageError(f"--pretrained: {arch.name} is not a 2D ImageNet architecture")
    if not Path(path).is_file():
        raise NoInputError(f"--pretrained {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file torch cannot read as a state dict
        raise NoInputError(f"--pretrained {path}: not a torch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise NoInputError(f"--pretrained {path}: not a torch state dict")
    return state, {"file": Path(path).name, "sha256": sha256_of(path)}


def model_covariates(settings, arch, participants, subjects):
    """(column names, {subject: values}) of the model's covariate inputs (GAMER-MRIL: age)."""
    columns = list(settings.covariates) or [c for c in arch.covariates if c in participants.columns]
    if len(columns) != len(arch.covariates):
        wanted = (
            f"{len(arch.covariates)} ({', '.join(arch.covariates)})" if arch.covariates else "none"
        )
        raise UsageError(
            f"--covariates: {arch.name} takes {wanted}; got {', '.join(columns) or 'none'}"
        )
    missing = [c for c in columns if c not in participants.columns]
    if missing:
        raise UsageError(f"--covariates: no column {', '.join(missing)} in participants.tsv")
    table = participants.loc[sorted(set(subjects)), columns].apply(pd.to_numeric, errors="coerce")
    bad = table.index[~np.isfinite(table.to_numpy(float)).all(1)].tolist()
    if bad:
        raise UsageError(
            f"--covariates {', '.join(columns)}: no numeric value for sub-{', sub-'.join(bad[:3])}"
        )
    return columns, {s: [float(v) for v in row] for s, row in table.iterrows()}


def loss_weights(settings, chosen, values):
    """Per-session loss weights: 1, or Lu et al.'s (2023) closeness to the threshold."""
    if settings.loss_weight == "none":
        return np.ones(len(chosen))
    if settings.target_threshold is None:
        raise UsageError(
            "--loss-weight closeness needs --target-threshold "
            "(e.g. --target edss --target-threshold 5)"
        )
    weights = closeness_weights([values[s.subject] for s in chosen], settings.target_threshold)
    if (weights <= 0).any():
        raise UsageError(
            f"--loss-weight closeness: values of {settings.target} lie more than twice "
            f"--target-threshold away, giving weights <= 0"
        )
    return weights


def training_options(training, arch, device):
    """The loop's options from the run's training stage (``Settings.stage("training")``): the
    run's values where given, else the architecture's paper recipe; precision and loader
    workers for the device."""

    def pick(value, key):
        return arch.recipe[key] if value is None else value

    precision = (
        training.precision
        if training.precision != "auto"
        else ("amp" if device.type == "cuda" else "fp32")
    )
    workers = (
        training.loader_workers
        if training.loader_workers is not None
        else (4 if device.type == "cuda" else 0)
    )
    return TrainOptions(
        epochs=training.epochs,
        patience=training.patience,
        batch_size=training.batch_size,
        optimiser=pick(training.optimiser, "optimiser"),
        learning_rate=pick(training.learning_rate, "learning_rate"),
        weight_decay=pick(training.weight_decay, "weight_decay"),
        select_by=training.select_by,
        precision=precision,
        workers=workers,
    )


@dataclass
class Cohort:
    """The labelled sessions of one training run and everything known per session."""

    sessions: list
    subjects: list
    classes: list
    y: np.ndarray  # class index per session
    weights: np.ndarray  # loss weight per session
    covariate_columns: list
    covariates: np.ndarray  # (sessions, covariates)
    assignments: list  # per repeat: {subject: fold number or "test"}
    excluded: list  # {session, reason} of the selected sessions left out


def run_train(settings, sessions):
    """(bundle folder, meta) on rank 0; (None, None) on the other ranks of a torchrun job."""
    ranks = distributed.start()
    try:
        return _train(settings, sessions, ranks)
    finally:
        distributed.stop(ranks)


def _train(settings, sessions, ranks):
    arch = get_architecture(settings.arch)
    cohort = build_cohort(settings, sessions, arch)
    device = pick_device(settings.device)
    if ranks.active and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
    imagenet, pretrained = read_pretrained(arch, settings.pretrained)
    spec = input_spec(settings, arch, cohort.sessions)
    cache_dir = settings.output_dir / "cache" / "inputs"
    if not ranks.main:
        distributed.barrier(ranks)  # rank 0 fills the cache first
    paths = cache_inputs(settings.output_dir, cohort.sessions, spec, cache_dir)
    if ranks.main:
        distributed.barrier(ranks)
    scheme = arch.recipe["augment"] if settings.augment == "auto" else settings.augment
    make_dataset = dataset_factory(cohort, paths, arch, spec, scheme, settings.slice_size)
    arch_args = architecture_args(settings, arch, spec, len(cohort.classes))

    def build_model():
        model = arch.build(**arch_args)
        if imagenet is not None:
            pretrained["tensors_loaded"] = len(load_imagenet(model, imagenet))
        return model

    options = training_options(settings.stage("training"), arch, device)
    parts = [np.array([a[s] for s in cohort.subjects], dtype=object) for a in cohort.assignments]
    name = settings.model or f"{settings.arch}_{settings.target}"
    key = run_key(
        {
            # The final model is chosen after training: changing it reuses the checkpoints.
            "training": {
                k: v
                for k, v in dataclasses.asdict(settings.stage("training")).items()
                if k != "final_model"
            },
            "options": dataclasses.asdict(options),
            "architecture": [settings.arch, arch_args, pretrained],
            "cohort": [
                cohort.subjects,
                *(a.tolist() for a in (cohort.y, cohort.weights, cohort.covariates)),
            ],
            "assignments": cohort.assignments,
            "inputs": [spec, [p.name for p in paths], scheme],
            "processes": ranks.world,
        }
    )
    checkpoints = Checkpoints(
        training_checkpoint_dir(settings.output_dir, name), key, ranks.rank, ranks.world
    )
    members = cross_validate(
        parts,
        make_dataset,
        build_model,
        n_folds=settings.cv_folds,
        options=options,
        device=device,
        seed=settings.seed,
        runs=settings.seeds,
        ranks=ranks,
        progress=sys.stderr.isatty() and ranks.main,
        checkpoints=checkpoints,
        inner=inner_splitter(cohort, settings) if settings.validation == "inner" else None,
    )
    if not ranks.main:
        return None, None
    metrics = summarise(members, cohort.y, parts, settings.select_by, settings.final_model)
    if arch.dims == 2:
        metrics["slices"] = slice_metrics(
            members, cohort.y, parts, len(spec["slices"]["kept"]), metrics["final_member"]
        )
    folder = bundle_dir(settings.output_dir, name)
    meta = {
        "name": name,
        "architecture": settings.arch,
        "architecture_args": arch_args,
        "classes": cohort.classes,
        "target": settings.target,
        "target_threshold": settings.target_threshold,
        "target_bins": settings.target_bins,
        "covariates": cohort.covariate_columns,
        "input": spec,
        "explain_layer": arch.default_layer(members[0].model),
        "assignments": cohort.assignments,
        "excluded": cohort.excluded,
        "metrics": metrics,
        "pretrained": pretrained,
        "attention": cohort_attention(
            members, cohort, spec, paths, parts[0], metrics["final_member"]
        ),
        "training": training_record(
            settings, options, scheme, ranks.world, members, cohort.subjects
        ),
    }
    metrics["baseline"] = simple_baseline(cohort, paths, spec, parts[0], members)
    metrics["optimisation_failures"] = optimisation_failures(
        {m.name: m.history for m in members}, len(cohort.classes), options.epochs
    )
    meta["warning"] = model_warning(
        metrics, len(cohort.classes), {m.name: m.best_epoch for m in members}
    )
    if meta["warning"]:
        print(f"bidsxai: warning: {meta['warning']}", file=sys.stderr)
    meta = save_bundle(folder, {m.name: m.model for m in members}, meta, metrics["final_member"])
    checkpoints.remove()
    write_training_report(settings, folder, meta, arch)
    return folder, meta


def report_training(settings):
    """``train --reports-only``: rewrite the bundle's report.html from its model.json, with the
    settings of the run that trained it; returns the bundle folder."""
    from bidsxai.config import described_settings

    saved = described_settings(settings)
    name = settings.model or saved.model or f"{saved.arch}_{saved.target}"
    folder = bundle_dir(settings.output_dir, name)
    if not bundle_meta_path(settings.output_dir, name).is_file():
        raise NoInputError(
            f"--reports-only: no bundle {name} in {folder.parent}; run train first, or give "
            "--model with the bundle's name"
        )
    meta = read_meta(folder)
    write_training_report(saved, folder, meta, get_architecture(meta["architecture"]))
    return folder


def model_warning(metrics, n_classes, best_epochs):
    """What the bundle, stderr and every report warn of, or None: a model that may be at chance,
    a simple baseline that does better, fold models whose optimisation failed."""
    warnings = [
        chance_warning(metrics["cross_validation"], n_classes, best_epochs),
        baseline_warning(metrics["baseline"], metrics["cross_validation"]),
        optimisation_warning(metrics["optimisation_failures"]),
    ]
    return " ".join(w for w in warnings if w) or None


def simple_baseline(cohort, paths, spec, part, members):
    """The logistic-regression baseline on the cached inputs (``training.baseline``), compared
    with the network's out-of-fold predictions (repeat 1, run 1)."""
    template = load_template(spec["resolution"], spec["space"])
    masks = tissue_masks(template, spec["crop"])
    voxel_mm3 = float(spec["resolution"]) ** 3
    features = np.array([image_features(np.load(p), masks, voxel_mm3) for p in paths])
    network = out_of_fold(members, 1, len(cohort.y), len(cohort.classes))
    return baseline_record(features, cohort.y, part, network)


def cohort_attention(members, cohort, spec, paths, assignment, final_member):
    """Attention weights per subject from its out-of-fold model (None without gated attention)."""

    def sample(i):
        x = torch.from_numpy(np.load(paths[i]).astype(np.float32))
        return x, torch.from_numpy(cohort.covariates[i])

    return attention_table(
        members,
        cohort.sessions,
        cohort.y,
        cohort.classes,
        spec["contrasts"],
        sample,
        assignment,
        final_member,
    )


def without_failed_ratings(settings, sessions):
    """(the sessions kept, a row per session left out) after the --exclude-file QC ratings."""
    if not settings.exclude_file:
        return sessions, []
    failed = failed_sessions(settings.exclude_file)
    excluded = [{"session": s.key, "reason": failed[s.key]} for s in sessions if s.key in failed]
    for row in excluded:
        print(f"bidsxai: train: left out {row['session']}: {row['reason']}", file=sys.stderr)
    return [s for s in sessions if s.key not in failed], excluded


def build_cohort(settings, sessions, arch):
    """The labelled sessions with their classes, loss weights, covariates and fold assignments."""
    participants = read_participants(settings.bids_dir)
    sessions, excluded = preprocessed_sessions(settings, sessions)
    sessions, rated = without_failed_ratings(settings, sessions)
    excluded += rated
    sessions, names, classes, values, unlabelled = labelled_sessions(
        settings, sessions, participants
    )
    excluded += unlabelled
    check_class_sizes(classes, names, excluded)
    subjects = [s.subject for s in sessions]
    covariate_columns, covariates = model_covariates(settings, arch, participants, subjects)
    subject_label = dict(zip(subjects, names))
    assignments = [
        assign(subject_label, settings.cv_folds, settings.test_fraction, settings.seed, r)
        for r in range(1, settings.cv_repeats + 1)
    ]
    n_cohort = sum(1 for v in assignments[0].values() if v != "test")
    if n_cohort < settings.cv_folds:
        raise UsageError(
            f"--cv-folds {settings.cv_folds}: only {n_cohort} subjects outside the test set"
        )
    return Cohort(
        sessions,
        subjects,
        classes,
        np.array([classes.index(n) for n in names]),
        loss_weights(settings, sessions, values),
        covariate_columns,
        np.array([covariates[s] for s in subjects], np.float32).reshape(len(subjects), -1),
        assignments,
        excluded,
    )


def input_spec(settings, arch, sessions):
    """What the model reads: space, resolution, contrasts, normalisation, brain crop (2D:
    slices)."""
    template = load_template(settings.resolution, settings.output_space)
    spec = {
        "space": template.space,
        "resolution": settings.resolution,
        "grid": grid_of(template),
        "contrasts": model_inputs(settings, sessions),
        "normalisation": settings.normalisation,
        "crop": brain_crop(template.brain_mask),
    }
    if arch.dims == 2:
        spec["slices"] = {
            "axis": "axial",
            "size": settings.slice_size,
            "kept": kept_slices(crop(template.brain_mask, spec["crop"])),
        }
    return spec


def dataset_factory(cohort, paths, arch, spec, scheme, slice_size):
    """make_dataset(indices, train) for the cross-validation: cached volumes (2D: their slices)."""

    def make_dataset(indices, train):
        args = dict(
            arrays=MappedArrays([paths[i] for i in indices]),
            labels=cohort.y[indices],
            weights=cohort.weights[indices],
            covariates=cohort.covariates[indices],
            augment=augmenter(scheme) if train else None,
        )
        if arch.dims == 2:
            return SliceDataset(kept=spec["slices"]["kept"], size=slice_size, **args)
        return VolumeDataset(**args)

    return make_dataset


def architecture_args(settings, arch, spec, n_classes):
    args = {
        "in_channels": len(spec["contrasts"]),
        "n_classes": n_classes,
        "input_shape": [settings.slice_size] * 2
        if arch.dims == 2
        else [hi - lo for lo, hi in spec["crop"]],
    }
    if settings.arch_width != 1:
        if not arch.scalable:
            raise UsageError(f"--arch-width: {arch.name} has a fixed width")
        args["width"] = settings.arch_width
    return args


def inner_splitter(cohort, settings):
    """The nested protocol's split of a fold model's training samples: their subjects dealt into
    ``--cv-folds`` stratified inner folds, the first validating."""

    def split(train, seed, name):
        return inner_split(cohort.subjects, cohort.y, train, settings.cv_folds, seed, name)

    return split


def training_record(settings, options, scheme, processes, members, subjects):
    """The bundle's record of how its members were trained: the run's training options as they
    were given (``settings``, every option of the stage) and as they were resolved (the
    architecture's recipe, the device's precision)."""
    given = settings.stage("training")
    return {
        "cv_folds": given.cv_folds,
        "cv_repeats": given.cv_repeats,
        "seeds": given.seeds,
        "test_fraction": given.test_fraction,
        "seed": given.seed,
        "select_by": options.select_by,
        "validation": given.validation,
        "optimiser": options.optimiser,
        "learning_rate": options.learning_rate,
        "weight_decay": options.weight_decay,
        "batch_size": options.batch_size,
        "epochs": options.epochs,
        "patience": options.patience,
        "augment": scheme,
        "precision": options.precision,
        "loss_weight": given.loss_weight,
        "processes": processes,
        "settings": plain(dataclasses.asdict(given)),
        "members": {
            m.name: {
                "best_epoch": m.best_epoch,
                "epochs_run": len(m.history),
                "trained_on": sorted({subjects[i] for i in m.trained_on}),
                "history": m.history,
            }
            for m in members
        },
    }
