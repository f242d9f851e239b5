"""Training one model and cross-validating many: batch-norm recalibration and out-of-fold
bookkeeping."""

import dataclasses

import numpy as np
import pytest
import torch

from bidsxai.training.crossval import cross_validate, out_of_fold, summarise
from bidsxai.training.dataset import VolumeDataset
from bidsxai.training.loop import TrainOptions, recalibrate_batchnorm
from bidsxai.training.metrics import classification_metrics


def test_batchnorm_recalibration_gives_exact_training_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    x = np.random.default_rng(0).normal(3, 2, (6, 1, 4, 4, 4))
    recalibrate_batchnorm(net, VolumeDataset(x, np.zeros(6)), "cpu", batch_size=6)
    with torch.no_grad():
        features = net[0](torch.as_tensor(x, dtype=torch.float16).float())
    torch.testing.assert_close(
        net[1].running_mean, features.mean((0, 2, 3, 4)), rtol=1e-4, atol=1e-4
    )
    assert net[1].momentum == 0.1


def test_cross_validation_predicts_every_cohort_sample_out_of_fold():
    """A nearest-mean 'model' that memorises its training samples: out of fold it must never
    have seen the sample it predicts."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1, 2, 2, 2)).astype(np.float32)
    y = np.array([0, 1] * 6)
    parts = [np.array([1, 1, 2, 2, 3, 3, 1, 1, 2, 2, "test", "test"], dtype=object)]
    seen = {}

    class Memoriser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

        def forward(self, v):
            return self.w.expand(len(v), 2) + 0 * v.flatten(1).sum(1, keepdim=True)

    def make_dataset(indices, train):
        if train:
            seen[len(seen)] = set(indices.tolist())
        return VolumeDataset(x[indices], y[indices])

    members = cross_validate(
        parts,
        make_dataset,
        Memoriser,
        n_folds=3,
        options=TrainOptions(epochs=1, patience=1, batch_size=4),
        device=torch.device("cpu"),
        seed=0,
    )
    for member, trained in zip(members, seen.values()):
        assert not trained & set(member.validation.tolist())
        assert not trained & {10, 11}  # the test set never trains
    oof = out_of_fold(members, 1, 12, 2)
    assert np.isfinite(oof[:10]).all() and np.isnan(oof[10:]).all()
    metrics = summarise(members, y, parts, "loss")
    assert metrics["cross_validation"]["n"] == 10 and metrics["test"]["n"] == 2
    # The final model: the fold models' ensemble (their mean test probabilities) by default, or
    # the fold model with the best validation score.
    mean = np.mean([m.test_probabilities for m in members], 0)
    assert metrics["final_member"] == "ensemble"
    keys = ("loss", "balanced_accuracy", "auc")

    def same(found, probabilities):
        expected = classification_metrics(y[10:], probabilities)
        return all(found[k] == pytest.approx(expected[k], nan_ok=True) for k in keys)

    assert same(metrics["test"], mean)
    best = summarise(members, y, parts, "loss", final_model="best-fold")
    chosen = next(m for m in members if m.name == best["final_member"])
    assert same(best["test"], chosen.test_probabilities)


def test_training_runs_share_their_folds_and_differ_in_their_seeds():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 1, 4, 4, 4)).astype(np.float32)
    y = np.array([0, 1] * 6)
    parts = [np.array([1, 1, 2, 2, 1, 1, 2, 2, 1, 2, "test", "test"], dtype=object)]

    def build():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))

    members = cross_validate(
        parts,
        lambda indices, train: VolumeDataset(x[indices], y[indices]),
        build,
        n_folds=2,
        options=TrainOptions(epochs=1, patience=1, batch_size=4),
        device=torch.device("cpu"),
        seed=0,
        runs=3,
    )
    names = [m.name for m in members]
    assert names[:3] == ["repeat-1_fold-1", "repeat-1_fold-1_run-2", "repeat-1_fold-1_run-3"]
    first, second = members[0], members[1]
    assert np.array_equal(first.trained_on, second.trained_on)
    assert not torch.equal(first.model[1].weight, second.model[1].weight)
    metrics = summarise(members, y, parts, "loss")
    assert len(metrics["cross_validation_runs"]["balanced_accuracy"]["values"]) == 3
    assert "_run-" not in metrics["final_member"]


def test_a_cuda_device_computes_fp32_in_fp32(monkeypatch):
    """cuDNN's TF32 convolutions (PyTorch's default) moved LRP maps by 4 % of their range on a
    GPU; choosing a CUDA device turns TF32 off. CUDA is pretended here: only the flags are read."""
    import torch

    from bidsxai.workflows.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        assert pick_device("cpu").type == "cpu" and torch.backends.cudnn.allow_tf32
        assert pick_device("cuda:0").type == "cuda"
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def _fit_histories(learning_rate, epochs=6):
    """One tiny CNN trained on a trivially separable cohort (bright against dark volumes)."""
    from bidsxai.training.loop import fit

    rng = np.random.default_rng(0)
    y = np.arange(16) % 2
    x = (rng.normal(size=(16, 1, 6, 6, 6)) + 2.0 * y[:, None, None, None, None]).astype(np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    options = TrainOptions(
        epochs=epochs, patience=epochs, batch_size=4, optimiser="adam", learning_rate=learning_rate
    )
    data = VolumeDataset(x, y)
    history, _ = fit(net, data, data, device=torch.device("cpu"), options=options, seed=0)
    return {"repeat-1_fold-1": history}


def test_a_diverging_learning_rate_is_flagged_as_an_optimisation_failure():
    from bidsxai.training.metrics import optimisation_failures, optimisation_warning

    assert optimisation_failures(_fit_histories(1e-2), 2, 6) == {}  # it fits: loss below ln 2
    failed = optimisation_failures(_fit_histories(1e4), 2, 6)
    assert set(failed) == {"repeat-1_fold-1"}
    assert "Optimisation failed (repeat-1_fold-1: " in optimisation_warning(failed)


def test_a_loss_that_stays_at_chance_in_the_first_third_is_flagged_and_noise_is_not():
    from bidsxai.training.metrics import optimisation_failures

    flat = [{"train_loss": v} for v in (0.9, 0.72, 0.70, 0.69, 0.75, 0.71)]
    learning = [{"train_loss": v} for v in (0.9, 0.6, 0.5, 0.45, 0.4, 0.4)]
    slow_start = [{"train_loss": v} for v in (2.0, 1.4, 0.72, 0.5, 0.3, 0.2)]
    found = optimisation_failures({"a": flat, "b": learning, "c": slow_start}, 2, 6)
    assert set(found) == {"a"} and "first 2 of 6 epochs" in found["a"]
    rising = [{"train_loss": v} for v in (0.8, 0.5, 0.6, 1.2, 1.9, 2.4)]
    assert "diverged" in optimisation_failures({"d": rising}, 2, 6)["d"]


def test_the_nested_protocol_never_stops_a_model_on_the_fold_it_predicts():
    """Under --validation inner, the samples a fold model trains on and those that stop it are
    subject-level, stratified and disjoint, and neither holds a sample of the fold it predicts
    or of the test set."""
    from bidsxai.training.folds import inner_split

    subjects = [f"s{i // 2}" for i in range(24)]  # two sessions per subject
    y = np.array([(i // 2) % 2 for i in range(24)])
    x = np.random.default_rng(2).normal(size=(24, 1, 2, 2, 2)).astype(np.float32)
    fold_of = {f"s{s}": 1 + s % 3 for s in range(10)} | {"s10": "test", "s11": "test"}
    parts = [np.array([fold_of[s] for s in subjects], dtype=object)]
    fitted = []

    def make_dataset(indices, train):
        fitted.append((train, set(indices.tolist())))
        return VolumeDataset(x[indices], y[indices])

    def inner(train, seed, name):
        return inner_split(subjects, y, train, 3, seed, name)

    members = cross_validate(
        parts,
        make_dataset,
        lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2)),
        n_folds=3,
        options=TrainOptions(epochs=1, patience=1, batch_size=4),
        device=torch.device("cpu"),
        seed=0,
        inner=inner,
    )
    test = {i for i, s in enumerate(subjects) if fold_of[s] == "test"}
    for member in members:
        outer = set(member.validation.tolist())
        trained, stopping = inner(member.trained_on, member.fold, member.name)  # seed 0 + fold
        trained, stopping = set(trained.tolist()), set(stopping.tolist())
        assert trained and stopping and not trained & stopping
        assert trained | stopping == set(member.trained_on.tolist())
        assert not (trained | stopping) & (outer | test)
        assert {subjects[i] for i in trained}.isdisjoint({subjects[i] for i in stopping})
        assert {y[i] for i in trained} == {y[i] for i in stopping} == {0, 1}
        assert (True, trained) in fitted and (False, stopping) in fitted
    oof = out_of_fold(members, 1, 24, 2)
    assert np.isfinite(oof[sorted(set(range(24)) - test)]).all()


def test_an_inner_split_without_a_class_is_refused_before_training():
    from bidsxai.errors import UsageError
    from bidsxai.training.folds import inner_split

    subjects, y = ["a", "b", "c", "d"], np.array([0, 0, 0, 1])
    with pytest.raises(
        UsageError, match="repeat-1_fold-2's inner .* split has no subject of class"
    ):
        inner_split(subjects, y, np.arange(4), 2, 0, "repeat-1_fold-2")


def test_the_default_recipe_fits_a_trivially_separable_cohort_in_a_few_epochs():
    """Smoke test of the default recipe as ``train`` builds it (cnn3d, its optimiser, learning
    rate, weight decay and augmentation, the default batch size) at 6 mm: patients carry a bright
    block that controls lack. In 5 epochs every fold's training loss falls below chance (ln 2) and
    every held-out subject is classified right."""
    from pathlib import Path

    from bidsxai.config import Settings
    from bidsxai.models.registry import get_architecture
    from bidsxai.template import load_template
    from bidsxai.training.augment import augmenter
    from bidsxai.training.crop_box import brain_crop, crop
    from bidsxai.training.metrics import classification_metrics
    from bidsxai.workflows.train import architecture_args, training_options

    settings = Settings(bids_dir=Path("bids"), output_dir=Path("out"), level="train")
    arch = get_architecture(settings.arch)
    box = brain_crop(load_template(6.0).brain_mask)
    brain = crop(load_template(6.0).t1w, box)
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 6)
    x = (brain + rng.normal(0, 0.05, (12, 1, *brain.shape))).astype(np.float32)
    cx, cy, cz = (n // 2 for n in brain.shape)
    x[y == 1, :, cx - 2 : cx + 2, cy - 2 : cy + 2, cz - 2 : cz + 2] += 1.0
    spec = {"contrasts": ["T1w"], "crop": box}
    augment = augmenter(arch.recipe["augment"])
    options = training_options(settings.stage("training"), arch, torch.device("cpu"))
    members = cross_validate(
        [np.array([1, 1, 2, 2, 3, 3] * 2, dtype=object)],
        lambda i, train: VolumeDataset(x[i], y[i], augment=augment if train else None),
        lambda: arch.build(**architecture_args(settings, arch, spec, 2)),
        n_folds=3,
        options=dataclasses.replace(options, epochs=5),
        device=torch.device("cpu"),
        seed=0,
    )
    assert all(m.history[-1]["train_loss"] < np.log(2) for m in members), [
        [round(h["train_loss"], 3) for h in m.history] for m in members
    ]
    oof = out_of_fold(members, 1, 12, 2)
    assert classification_metrics(y, oof)["balanced_accuracy"] == 1.0
