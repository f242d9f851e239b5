"""The training loop: class-balanced sampling, per-subject loss weights, Adam or AdamW, early
stopping on validation loss, model selection by validation loss or balanced accuracy, optional
mixed precision and DistributedDataParallel."""

import copy
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bidsxai.config import Settings, default_of
from bidsxai.logs import event
from bidsxai.models.registry import DEFAULT_RECIPE
from bidsxai.training import distributed
from bidsxai.training.checkpoint import restore_rng, rng_state
from bidsxai.training.metrics import classification_metrics


def _option(name):
    """A default of ``Settings``, the one record of them, for a field that is given no value."""
    return field(
        default_factory=lambda: default_of(next(f for f in fields(Settings) if f.name == name))
    )


def _recipe(key):
    return field(default_factory=lambda: DEFAULT_RECIPE[key])


@dataclass(frozen=True)
class TrainOptions:
    """One model's training options, as resolved for a run: the run's options, the architecture's
    recipe where they are unset, the device's precision and loader workers. A field given no value
    takes the default of ``Settings`` (or of the default recipe), so there is one set of
    defaults."""

    epochs: int = _option("epochs")
    patience: int = _option("patience")
    batch_size: int = _option("batch_size")
    optimiser: str = _recipe("optimiser")  # or "adam"
    learning_rate: float = _recipe("learning_rate")
    weight_decay: float = _recipe("weight_decay")
    select_by: str = _option("select_by")  # or "balanced_accuracy" (Thibeau-Sutre et al. 2020)
    precision: str = "fp32"  # or "amp": float16 autocast and loss scaling on GPU, bfloat16 on CPU
    workers: int = 0  # DataLoader worker processes


def call(model, x, covariates):
    """The model's output; covariates (N, K) become K extra positional inputs (GAMER-MRIL's age)."""
    return model(x, *covariates.unbind(1))


def _loader(dataset, batch_size, workers, device, **kwargs):
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        **kwargs,
    )


@torch.no_grad()
def recalibrate_batchnorm(model, dataset, device, batch_size):
    """Recompute BatchNorm running statistics as exact averages over the (unaugmented) training set.

    With a small cohort an epoch is only a few optimiser steps, so the exponential running
    averages lag far behind the weights and eval-mode predictions are poor even on the training
    data (seen here: training accuracy 0.67 in eval mode at a training loss near 0).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    augment, dataset.augment = dataset.augment, None
    model.train()
    try:
        for x, _, _, covariates in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
            call(model, x.to(device), covariates.to(device))
    finally:
        dataset.augment = augment
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


@torch.no_grad()
def predict(model, dataset, device, batch_size=4, workers=0):
    """(mean unweighted cross-entropy, per-sample probabilities), model in eval mode."""
    model.eval()
    losses, probs = [], []
    for x, y, _, covariates in _loader(dataset, batch_size, workers, device):
        logits = call(model, x.to(device), covariates.to(device)).float()
        losses.append(nn.functional.cross_entropy(logits, y.to(device), reduction="sum").item())
        probs.append(torch.softmax(logits, 1).cpu())
    n = len(dataset)
    return (sum(losses) / n if n else float("nan")), (
        torch.cat(probs).numpy() if probs else np.zeros((0, 0))
    )


def evaluate(model, dataset, device, options):
    """(validation loss, subject-level balanced accuracy)."""
    loss, probs = predict(model, dataset, device, options.batch_size, options.workers)
    subject = classification_metrics(dataset.subject_labels(), dataset.subject_probabilities(probs))
    return loss, subject["balanced_accuracy"]


def make_optimiser(model, options):
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[options.optimiser]
    return kind(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)


def _better(select_by, candidate, best):
    """Is (val loss, balanced accuracy) ``candidate`` a better model than ``best``?"""
    if best is None:
        return True
    if select_by == "balanced_accuracy":
        return (candidate[1], -candidate[0]) > (best[1], -best[0])
    return candidate[0] < best[0]


def fit(
    model,
    train_set,
    val_set,
    *,
    device,
    options,
    seed,
    ranks=distributed.SINGLE_PROCESS,
    progress=False,
    name="model",
    checkpoints=None,
):
    """Train; returns (history, selected epoch). The model ends with the selected epoch's
    weights. Each epoch is logged under ``name``. With ``checkpoints``, the state after every
    epoch is saved under ``name``, and a saved state of the same run is continued from.

    The loader's workers are started anew each epoch (not persistent), so that each epoch's
    worker seeds come from the loader's generator, which a checkpoint restores."""
    torch.manual_seed(seed)
    model.to(device)
    trained = model
    if ranks.active:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimiser = make_optimiser(model, options)
    amp = options.precision == "amp"
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    sampler = distributed.BalancedSampler(train_set.labels, seed, ranks)
    loader = _loader(
        train_set,
        options.batch_size,
        options.workers,
        device,
        sampler=sampler,
        generator=torch.Generator().manual_seed(seed),
    )
    history, best, best_state, best_epoch, lowest_loss, waited = [], None, None, 0, float("inf"), 0
    start = 0
    saved = checkpoints.load_epoch(name) if checkpoints else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        scaler.load_state_dict(saved["scaler"])
        history, best_state, best_epoch = saved["history"], saved["best_state"], saved["best_epoch"]
        best, lowest_loss, waited = tuple(saved["best"]), saved["lowest_loss"], saved["waited"]
        restore_rng(saved["rng"], loader.generator)
        start = len(history)
        if ranks.main:
            event("training_resumed", model=name, epoch=start)
    bar = tqdm(range(start, options.epochs), desc="training", disable=not progress, leave=False)
    for epoch in bar:
        sampler.set_epoch(epoch)
        trained.train()
        total, count = 0.0, 0
        for x, y, weight, covariates in loader:
            x, y, weight, covariates = (
                t.to(device, non_blocking=True) for t in (x, y, weight, covariates)
            )
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(
                device.type,
                dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                enabled=amp,
            ):
                logits = call(trained, x, covariates)
            loss = (
                weight * nn.functional.cross_entropy(logits.float(), y, reduction="none")
            ).mean()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total, count = total + loss.item() * len(y), count + len(y)
        recalibrate_batchnorm(model, train_set, device, options.batch_size)
        val_loss, val_bacc = (
            evaluate(model, val_set, device, options) if len(val_set) else (total / count, 0.0)
        )
        val_loss, val_bacc = distributed.from_main(ranks, [val_loss, val_bacc])
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "val_loss": val_loss,
                "val_balanced_accuracy": val_bacc,
            }
        )
        bar.set_postfix(train=f"{total / max(count, 1):.3f}", val=f"{val_loss:.3f}")
        if ranks.main:
            event("epoch", model=name, **history[-1])
        if _better(options.select_by, (val_loss, val_bacc), best):
            best, best_state, best_epoch = (
                (val_loss, val_bacc),
                copy.deepcopy(model.state_dict()),
                epoch + 1,
            )
        if val_loss < lowest_loss:
            lowest_loss, waited = val_loss, 0
        else:
            waited += 1
            if waited >= options.patience:
                break
        if checkpoints is not None:
            checkpoints.save_epoch(
                name,
                {
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": history,
                    "best": list(best),
                    "best_state": best_state,
                    "best_epoch": best_epoch,
                    "lowest_loss": lowest_loss,
                    "waited": waited,
                    "rng": rng_state(loader.generator),
                },
            )
    distributed.check_in_sync(ranks, model)
    model.load_state_dict(best_state)
    return history, best_epoch
