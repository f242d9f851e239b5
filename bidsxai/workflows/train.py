"""train: preprocessed images + a participants.tsv column -> a model bundle and training report."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bidsxai.bids import CONTRAST_KEYS, read_participants
from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.bundle import save_bundle, sha256_of
from bidsxai.models.registry import get_architecture
from bidsxai.models.slice2d import load_imagenet
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report
from bidsxai.template import SPACE, load_template
from bidsxai.training.dataset import VolumeDataset, brain_crop, crop, load_inputs
from bidsxai.training.loop import fit, predict
from bidsxai.training.metrics import classification_metrics
from bidsxai.training.slices import SliceDataset, kept_slices, subject_probabilities
from bidsxai.training.split import stratified_split
from bidsxai.workflows.device import pick_device


def labelled_sessions(settings, sessions):
    """Sessions whose subject has a value in the --target column, with that value."""
    participants = read_participants(settings.bids_dir)
    if settings.target not in participants.columns:
        raise UsageError(f"--target {settings.target}: no such column in participants.tsv "
                         f"(columns: {', '.join(participants.columns)})")
    labels = participants[settings.target].dropna()
    chosen = [(s, str(labels[s.subject])) for s in sessions if s.subject in labels.index]
    if len({label for _, label in chosen}) < 2:
        raise UsageError(f"--target {settings.target}: need at least two classes among the "
                         f"selected subjects")
    return chosen


def common_contrasts(settings, sessions):
    """The contrasts preprocessed for every session, in T1w, T2w, FLAIR order."""
    present = [c for c in CONTRAST_KEYS.values() if all(
        preproc_path(settings.output_dir, s.subject, s.session, c, settings.resolution).is_file()
        for s in sessions)]
    if "T1w" not in present:
        raise NoInputError(f"no preprocessed T1w for every selected session in {settings.output_dir}; "
                           "run the participant level first")
    return present


def load_pretrained(model, arch, path):
    """ImageNet weights for a 2D model from a local file; what was loaded, for the bundle."""
    if path is None:
        return None
    if arch.dims != 2:
        raise UsageError(f"--pretrained: {arch.name} is not a 2D ImageNet architecture")
    if not Path(path).is_file():
        raise NoInputError(f"--pretrained {path}: no such file")
    try:
        loaded = load_imagenet(model, path)
    except Exception as exc:  # a file torch cannot read as a state dict
        raise NoInputError(f"--pretrained {path}: not a torch state dict ({exc})") from None
    return {"file": Path(path).name, "sha256": sha256_of(path), "tensors_loaded": len(loaded)}


def run_train(settings, sessions):
    chosen = labelled_sessions(settings, sessions)
    sessions = [s for s, _ in chosen]
    classes = sorted({label for _, label in chosen})
    template = load_template(settings.resolution)
    spec = {"space": SPACE, "resolution": settings.resolution,
            "contrasts": common_contrasts(settings, sessions),
            "normalisation": settings.normalisation, "crop": brain_crop(template.brain_mask)}
    subject_label = {s.subject: label for s, label in chosen}
    split = stratified_split(subject_label, seed=settings.seed)
    volumes = np.stack([load_inputs(settings.output_dir, s.subject, s.session, spec).astype(np.float16)
                        for s in sessions])
    y = np.array([classes.index(label) for _, label in chosen])
    part = np.array([split[s.subject] for s in sessions])
    arch = get_architecture(settings.arch)
    if arch.dims == 2:
        spec["slices"] = {"axis": "axial", "size": settings.slice_size,
                          "kept": kept_slices(crop(template.brain_mask, spec["crop"]))}
        sets = {name: SliceDataset(volumes[part == name], y[part == name], spec["slices"]["kept"],
                                   settings.slice_size, flip=name == "train", seed=settings.seed)
                for name in ("train", "validation", "test")}
    else:
        sets = {name: VolumeDataset(volumes[part == name], y[part == name], flip=name == "train",
                                    seed=settings.seed) for name in ("train", "validation", "test")}
    torch.manual_seed(settings.seed)
    arch_args = {"in_channels": len(spec["contrasts"]), "n_classes": len(classes),
                 "input_shape": [hi - lo for lo, hi in spec["crop"]]}
    model = arch.build(**arch_args)
    pretrained = load_pretrained(model, arch, settings.pretrained)
    device = pick_device(settings.device)
    history, best_epoch = fit(model, sets["train"], sets["validation"], device=device,
                              epochs=settings.epochs, patience=settings.patience,
                              batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                              seed=settings.seed, progress=sys.stderr.isatty())
    metrics = {}
    for name, dataset in sets.items():
        if len(dataset):
            _, probs = predict(model, dataset, device, settings.batch_size)
            if arch.dims == 2:  # subjects by their mean slice probability; slices kept apart
                metrics.setdefault("slices", {})[name] = classification_metrics(dataset.labels, probs)
                probs = subject_probabilities(probs, len(spec["slices"]["kept"]))
            metrics[name] = classification_metrics(y[part == name], probs)
    name = settings.model or f"{settings.arch}_{settings.target}"
    folder = Path(settings.output_dir) / "models" / name
    meta = save_bundle(folder, model.cpu(), {
        "name": name, "architecture": settings.arch, "architecture_args": arch_args,
        "classes": classes, "target": settings.target, "input": spec,
        "explain_layer": arch.default_layer(model), "split": split, "metrics": metrics,
        "pretrained": pretrained,
        "training": {"epochs_run": len(history), "best_epoch": best_epoch, "seed": settings.seed,
                     "optimiser": "AdamW", "learning_rate": settings.learning_rate,
                     "batch_size": settings.batch_size, "patience": settings.patience,
                     "history": history},
    })
    render_report("training.html.j2", folder / "report.html", name=name, meta=meta,
                  source=arch.source, split_counts=dict(Counter(split.values())),
                  curves=figures.learning_curves(history),
                  confusion=figures.confusion_plot(metrics.get("test", metrics["train"])["confusion_matrix"], classes),
                  methods=methods_text(settings, meta))
    return folder, meta
