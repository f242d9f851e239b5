"""Model bundles (round trip, refusals, which member explains a subject), MC dropout, and the
sizes of Avci's (2021) stroke models."""

import pytest
import torch

from bidsxai.errors import NoInputError
from bidsxai.models.bundle import (
    BundleModels,
    ensemble_sha256,
    load_member,
    member_for,
    read_meta,
    save_bundle,
)
from bidsxai.models.covariates import binding
from bidsxai.models.ensemble import FoldEnsemble
from bidsxai.models.mc_dropout import MCDropout, has_mc_dropout, mc_predict, sampling
from bidsxai.models.registry import get_architecture


def test_bundle_round_trip_and_refusals(tmp_path):
    arch = get_architecture("cnn3d")
    args = {"in_channels": 2, "n_classes": 2, "input_shape": [16, 16, 16]}
    models = {f"repeat-1_fold-{k}": arch.build(**args).eval() for k in (1, 2)}
    meta = save_bundle(
        tmp_path / "m",
        models,
        {"architecture": "cnn3d", "architecture_args": args},
        final="repeat-1_fold-2",
    )
    meta2 = read_meta(tmp_path / "m")
    loaded = load_member(tmp_path / "m", meta2)
    x = torch.randn(1, 2, 16, 16, 16)
    torch.testing.assert_close(loaded(x), models["repeat-1_fold-2"](x))
    first = load_member(tmp_path / "m", read_meta(tmp_path / "m"), "repeat-1_fold-1")
    torch.testing.assert_close(first(x), models["repeat-1_fold-1"](x))
    assert meta2["sha256"] == meta["members"]["repeat-1_fold-2"]["sha256"]
    weights = tmp_path / "m" / "repeat-1_fold-1.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(NoInputError, match="sha256"):
        load_member(tmp_path / "m", meta2, "repeat-1_fold-1")
    meta2["members"]["repeat-1_fold-1"]["weights"] = "../../etc/passwd"
    with pytest.raises(NoInputError, match="no usable weights"):
        load_member(tmp_path / "m", meta2, "repeat-1_fold-1")
    (tmp_path / "m" / "model.json").write_text('{"architecture": "resnet9000"}')
    with pytest.raises(NoInputError, match="unknown architecture"):
        read_meta(tmp_path / "m")


def test_each_subject_is_explained_by_the_fold_model_that_held_it_out():
    meta = {"assignments": [{"01": 1, "02": 2, "03": "test"}], "final_member": "repeat-1_fold-2"}
    assert member_for(meta, "01")[:2] == ("repeat-1_fold-1", "fold-1")
    assert member_for(meta, "02")[:2] == ("repeat-1_fold-2", "fold-2")
    assert member_for(meta, "03")[:2] == ("repeat-1_fold-2", "test")
    assert member_for(meta, "99")[:2] == ("repeat-1_fold-2", "not-in-training")


def test_the_ensemble_averages_its_members_probabilities_and_is_saved_as_their_digest(tmp_path):
    arch = get_architecture("cnn3d")
    args = {"in_channels": 2, "n_classes": 3, "input_shape": [16, 16, 16]}
    torch.manual_seed(0)
    models = {f"repeat-1_fold-{k}": arch.build(**args).eval() for k in (1, 2, 3)}
    models["repeat-1_fold-1_run-2"] = arch.build(**args).eval()  # another run: not a member
    meta = save_bundle(
        tmp_path / "m", models, {"architecture": "cnn3d", "architecture_args": args}, "ensemble"
    )
    chosen = ["repeat-1_fold-1", "repeat-1_fold-2", "repeat-1_fold-3"]
    assert meta["ensemble"] == chosen and "weights" not in meta
    assert meta["sha256"] == ensemble_sha256(meta["members"][n]["sha256"] for n in chosen)
    x = torch.randn(4, 2, 16, 16, 16)
    ensemble = BundleModels(tmp_path / "m", "cpu").get("ensemble")
    with torch.no_grad():
        mean = torch.stack([torch.softmax(models[n](x), 1) for n in chosen]).mean(0)
        torch.testing.assert_close(torch.softmax(ensemble(x), 1), mean)
    assert list(ensemble.members) == chosen
    meta = {
        "assignments": [{"01": 1, "03": "test"}],
        "final_member": "ensemble",
        "ensemble": chosen,
    }
    member, split, why = member_for(meta, "03")
    assert (member, split) == ("ensemble", "test") and "ensemble of the 3 fold models" in why
    assert member_for(meta, "01")[:2] == ("repeat-1_fold-1", "fold-1")


def test_covariates_bound_to_an_ensemble_reach_its_members():
    members = {"repeat-1_fold-1": torch.nn.Linear(2, 2), "repeat-1_fold-2": torch.nn.Linear(2, 2)}
    ensemble = FoldEnsemble(members)
    age = torch.tensor([61.0])
    with binding(ensemble, age):
        assert all(m._bound_covariates is age for m in members.values())
    assert all(m._bound_covariates is None for m in members.values())


def test_mc_dropout_is_off_for_explanations_and_samples_when_asked():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.ReLU(), MCDropout(0.3), torch.nn.Linear(32, 2)
    ).eval()
    x = torch.randn(5, 8)
    assert has_mc_dropout(model) and torch.equal(model(x), model(x))
    draws = mc_predict(model, x, samples=200, seed=1)
    assert draws.shape == (200, 5, 2) and draws.std(0).min() > 0
    assert torch.equal(draws, mc_predict(model, x, samples=200, seed=1))
    with sampling(model):  # one pass with dropout by hand equals the mean of masked passes in law
        torch.manual_seed(4)
        manual = torch.stack([torch.softmax(model(x), 1) for _ in range(2000)]).mean(0)
    torch.testing.assert_close(draws.mean(0), manual, atol=0.03, rtol=0)
    assert torch.equal(model(x), model(x))  # off again


@pytest.mark.parametrize("variant, params", [("flat", 1.61e6), ("gap", 1.57e6), ("shallow", 9.3e4)])
def test_stroke_variants_have_the_papers_size(variant, params):
    """Avci 2021, Table 2 text: Flat 1.7 M, GAP 1.5 M, Shallow 94 000 parameters (192 x 192
    input)."""
    model = get_architecture(f"stroke_{variant}").build(
        in_channels=1, n_classes=2, input_shape=[192, 192]
    )
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.02)
    assert model(torch.zeros(2, 1, 192, 192)).shape == (2, 2)
