"""Model-parameter randomisation as Adebayo et al. (2018) define it: layers set back to their own
initialisation, in order of distance from the output (read from the graph, not from the module
list), the whole curve kept, and a check that is not evaluable (dead network, constant map) never
passing. Tiny CPU models throughout."""

import types

import numpy as np
import pytest
import torch
from networks import tiny_net
from scipy import ndimage
from torch import nn

from bidsxai.evaluate.randomisation import (
    SIMILARITIES,
    _seed,
    cascade_order,
    distances,
    randomisation,
    randomise,
    reinitialise,
)
from bidsxai.evaluate.sanity_verdict import DEAD_FRACTION, SANITY_THRESHOLD, curve, verdict
from bidsxai.evaluate.similarity import hog_descriptor, hog_similarity
from bidsxai.models.registry import get_architecture

SHAPE = (12, 12, 12)


def _x(seed=0, channels=1, shape=SHAPE):
    return torch.randn(1, channels, *shape, generator=torch.Generator().manual_seed(seed))


def _edges(model, x):
    """A map that reads the input only, never the model."""
    volume = x[0, 0].detach().cpu().numpy().astype(np.float64)
    return np.sqrt(sum(ndimage.sobel(volume, axis=a) ** 2 for a in range(volume.ndim)))


class ZeroInitLinear(nn.Linear):
    """An output layer initialised to zero (a common choice): once randomised, the network's
    output no longer depends on its input."""

    def reset_parameters(self):
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


def _zero_init_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten()
    )
    net.append(ZeroInitLinear(4, 2))
    with torch.no_grad():
        net[-1].weight.normal_()
    return net.eval()


def test_a_dead_randomised_network_is_not_evaluable_and_never_passes():
    net, x = _zero_init_net(), _x()
    # The edge map stays a valid, non-constant map: only the dead network makes it unevaluable.
    result = randomisation(net, x, _edges)
    assert result["layers"][0] == ["4"]
    assert result["sensitivity"][0] < DEAD_FRACTION  # exactly 0: the logits are the bias
    assert not result["evaluable"].any()
    assert all(np.isnan(result[k]).all() for k in SIMILARITIES)
    assert verdict(result) == (False, False)
    # A gradient map of the dead network is all zero: not evaluable either way.
    saliency = randomisation(net, x, "saliency")
    assert verdict(saliency) == (False, False)


def test_a_live_network_with_an_input_only_map_is_evaluable_and_fails():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    result = randomisation(net, x, _edges)
    assert result["evaluable"].all() and (result["sensitivity"] >= DEAD_FRACTION).all()
    assert verdict(result) == (True, False)  # abs Spearman 1: the map ignores the model


def test_a_map_that_becomes_constant_is_not_a_pass():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    for constant in (np.zeros, np.ones, lambda s: np.full(s, np.nan)):

        def method(model, x, constant=constant):
            return _edges(model, x) if model is net else constant(x.shape[2:])

        result = randomisation(net, x, method)
        assert not result["evaluable"].any() and verdict(result) == (False, False)
        assert np.isnan(result["spearman"]).all() and np.isnan(result["abs_spearman"]).all()
    # A trained map that is constant: nothing to compare at any step.
    result = randomisation(net, x, lambda model, x: np.zeros(x.shape[2:]))
    assert not result["evaluable"].any() and verdict(result) == (False, False)


def test_the_pass_rule_reads_the_absolute_maps_so_a_sign_flip_does_not_pass():
    """Randomisation that scrambles a map's signs but keeps its magnitudes drives the signed
    Spearman to about 0; the absolute maps still agree, so the check fails."""
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    trained_bias = net[-1].bias.detach().clone()

    def method(model, x):
        same = torch.equal(model[-1].bias, trained_bias)
        rng = np.random.default_rng(0 if same else 1)
        return _edges(model, x) * rng.choice([-1.0, 1.0], x.shape[2:])

    result = randomisation(net, x, method)
    assert abs(result["spearman"][-1]) < 0.1 and result["abs_spearman"][-1] == pytest.approx(1)
    assert verdict(result) == (True, False)


def test_a_gradient_map_passes_once_the_network_is_random():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    result = randomisation(net, x, "saliency")
    assert verdict(result) == (True, True)


def test_the_cascade_of_cnn3d_is_reverse_depth():
    arch = get_architecture("cnn3d")
    torch.manual_seed(0)
    model = arch.build(1, 2, list(SHAPE)).eval()
    steps = cascade_order(model, _x())
    own = [n for n, m in model.named_modules() if n and list(m.parameters(recurse=False))]
    assert all(len(step) == 1 for step in steps)
    assert [step[0] for step in steps] == own[::-1]
    assert steps[0] == ["fc"] and steps[-1] == ["blocks.0.sub0.conv"]


def test_the_cascade_of_gamer_mril_is_by_distance_from_the_output():
    """Distances derived by hand from the architecture: the classifier 0; the attention score
    and each encoder's fully connected layer 1 (gated attention adds the encoders' outputs to the
    classifier's input); a dense block's skip connections put its layers' second convolutions
    and the transition before it at the same distance."""
    arch = get_architecture("gamer_mril")
    torch.manual_seed(0)
    model = arch.build(2, 2, [16] * 3).eval()
    x = _x(channels=2, shape=(16, 16, 16))
    _, found = distances(model, x)
    top = {"classifier": 0, "attention.score": 1, "attention.signal": 2, "attention.gate": 2}
    per_encoder = {
        "fc": 1,
        "bn_out": 2,
        "block4.layers.1.conv2": 3,
        "block4.layers.0.conv2": 3,
        "transition3.conv": 3,
        "transition3.bn": 4,
        "block4.layers.0.bn1": 6,
        "block4.layers.1.bn1": 6,
        "transition1.conv": 7,
        "bn0": 9,
        "conv0": 10,
        "block1.layers.0.bn1": 12,
    }
    expected = dict(
        top,
        **{f"encoders.{e}.features.{n}": d for n, d in per_encoder.items() for e in (0, 1)},
    )
    assert {n: found[n] for n in expected} == expected
    steps = cascade_order(model, x)
    assert steps[0] == ["classifier"]
    # Parallel paths at the same step, ties by reverse call order (encoder 1 runs after 0).
    assert steps[1] == ["attention.score", "encoders.1.features.fc", "encoders.0.features.fc"]
    assert all(found[n] == d for d, step in enumerate(steps) for n in step)
    named_reverse = [n for n, m in model.named_modules() if list(m.parameters(recurse=False))]
    assert [n for s in steps for n in s] != named_reverse[::-1]


def test_layers_are_set_back_to_their_own_initialisation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(8, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU())
    with torch.no_grad():  # "trained" values far from the initialisation
        net[0].weight.normal_(0, 1.0)
        net[1].weight.normal_(3, 0.5)
        net[1].bias.normal_(2, 0.5)
    assert reinitialise(net, "0", seed=4) == "reset_parameters"
    fresh = nn.Conv3d(8, 8, 3, padding=1)
    torch.manual_seed(_seed(4, "0"))
    fresh.reset_parameters()
    assert torch.equal(net[0].weight, fresh.weight) and torch.equal(net[0].bias, fresh.bias)
    # The default initialisation's spread (variance 1 / (3 fan-in)), not the trained one's.
    expected = (1 / (3 * 8 * 27)) ** 0.5
    assert float(net[0].weight.detach().std()) == pytest.approx(expected, rel=0.1)
    assert float(nn.Conv3d(8, 8, 3).weight.detach().std()) == pytest.approx(expected, rel=0.1)
    assert reinitialise(net, "1") == "norm"
    assert torch.equal(net[1].weight, torch.ones(8)) and torch.equal(net[1].bias, torch.zeros(8))


def test_a_layer_without_an_initialisation_is_refused_or_uses_the_models():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.full((3,), 5.0))

        def forward(self, x):
            return x * self.gain

    class Model(nn.Sequential):
        def _init_weights(self, module):
            nn.init.ones_(module.gain)

    model = Model(Scale())
    assert reinitialise(model, "0") == "_init_weights" and torch.equal(model[0].gain, torch.ones(3))
    with pytest.raises(ValueError, match="initialisation is unknown"):
        reinitialise(nn.Sequential(Scale()), "0")


def test_batch_norm_after_randomisation_and_its_running_statistics():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    trained_mean = net[1].running_mean.clone()
    kept = randomise(_copy(net), x, ["1"], running_stats="keep")
    assert torch.equal(kept[1].weight, torch.ones(4)) and torch.equal(kept[1].bias, torch.zeros(4))
    assert torch.equal(kept[1].running_mean, trained_mean)
    reset = randomise(_copy(net), x, ["1"], running_stats="reset")
    assert torch.equal(reset[1].running_mean, torch.zeros(4))
    recomputed = randomise(_copy(net), x, ["1", "0"], running_stats="recompute")
    with torch.no_grad():
        into = recomputed[0](x)  # what reaches the norm layer from x
        normalised = recomputed[1](into)
    assert torch.allclose(recomputed[1].running_mean, into.mean((0, 2, 3, 4)), atol=1e-6)
    assert torch.allclose(normalised.std((0, 2, 3, 4), unbiased=False), torch.ones(4), atol=1e-3)
    assert not recomputed.training and torch.equal(recomputed[1].weight, torch.ones(4))


def _copy(net):
    import copy

    return copy.deepcopy(net)


def test_the_curve_has_one_entry_per_step_with_every_similarity():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    result = randomisation(net, x, "saliency")
    n = len(result["layers"])
    assert n == 4  # the four parametrised layers of tiny_net, one per step
    for key in (*SIMILARITIES, "sensitivity", "evaluable"):
        assert len(result[key]) == n and (key == "evaluable" or np.isfinite(result[key]).all())
    saved = curve(result)
    assert saved["RandomisedLayers"] == [["7"], ["3"], ["1"], ["0"]]
    assert {len(v) for v in saved.values()} == {n}
    assert result["reference_sensitivity"] > 0


def test_cascading_and_independent_randomisation_change_the_layers_they_say():
    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    with torch.no_grad():  # a batch norm that has learned something
        net[1].weight.fill_(1.5)
        net[1].bias.fill_(0.1)
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    seen = []

    def method(model, x):
        if model is not net:
            seen.append({k: not torch.equal(v, trained[k]) for k, v in model.state_dict().items()})
        return _edges(model, x)

    def changed(state):
        return sorted({k.split(".")[0] for k, differs in state.items() if differs})

    randomisation(net, x, method, cascade=False)
    assert [changed(s) for s in seen] == [["7"], ["3"], ["1"], ["0"]]
    seen.clear()
    randomisation(net, x, method, running_stats="keep")
    assert [changed(s) for s in seen] == [["7"], ["3", "7"], ["1", "3", "7"], ["0", "1", "3", "7"]]
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())  # left as it was


def test_curves_of_one_model_share_each_networks_output_sensitivity(monkeypatch):
    """The network a step makes is the same whatever the method or the class: a second curve
    reads the first's sensitivities, and gets the values a curve computed alone gets."""
    from bidsxai.evaluate import randomisation as module

    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    alone = {
        (method, cascade): randomisation(net, x, method, target=1, cascade=cascade)
        for method in ("saliency", "ig")
        for cascade in (True, False)
    }
    computed = []
    measure = module.output_sensitivity
    monkeypatch.setattr(
        module, "output_sensitivity", lambda *a, **k: computed.append(1) or measure(*a, **k)
    )
    shared = {}
    for (method, cascade), expected in alone.items():
        found = randomisation(net, x, method, target=1, cascade=cascade, sensitivities=shared)
        assert np.array_equal(found["sensitivity"], expected["sensitivity"])
        assert found["reference_sensitivity"] == expected["reference_sensitivity"]
    # The trained network, each of the 4 cascade steps and the 3 single-layer steps that are not
    # the cascade's first: 8 networks measured for 4 curves instead of 20.
    assert len(computed) == 8 == len(shared)


def test_hog_is_scikit_images_and_the_similarity_is_a_correlation():
    from skimage import feature

    rng = np.random.default_rng(0)
    for shape, cell in (((20, 27), 4), ((12, 12), 6), ((33, 41), 8)):
        image = rng.random(shape)
        ours = hog_descriptor(image, cell=cell)
        theirs = feature.hog(image, pixels_per_cell=(cell, cell), cells_per_block=(2, 2))
        assert np.allclose(ours, theirs, atol=1e-6)  # scikit-image sums in float32
    volume = ndimage.gaussian_filter(rng.random(SHAPE), 1)
    assert hog_similarity(volume, 3 * volume + 1) == pytest.approx(1.0)
    assert abs(hog_similarity(volume, ndimage.gaussian_filter(rng.random(SHAPE), 1))) < 0.5
    assert np.isnan(hog_similarity(volume, np.zeros(SHAPE)))


def test_the_sanity_evaluation_writes_its_columns_and_its_curves(tmp_path):
    import json

    from bidsxai.evaluate.evaluations import EVALUATIONS, EvaluationContext, read_table
    from bidsxai.workflows.evaluate_session import write_evaluation

    net, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    # smoothgrad takes "mode" and "seed" of its own: they reach the method, not the check
    explanation = types.SimpleNamespace(
        parameters={"smoothgrad": {"mode": "abs", "samples": 25, "noise": 0.15, "seed": 3}}
    )
    options = types.SimpleNamespace(seed=0)
    context = EvaluationContext(net, x, {}, explanation, options, "3", None, {}, {})
    context.__dict__["region"] = np.ones((10, 12, 8), bool)
    item = types.SimpleNamespace(method="smoothgrad", target="HC", index=1)
    sanity = EVALUATIONS["sanity"]
    row = sanity.run(context, item)
    assert list(row) == [c.name for c in sanity.columns]
    assert row["sanity_evaluable"] is True
    assert row["sanity_passed"] is (abs(row["sanity_abs_spearman"]) < SANITY_THRESHOLD)
    saved = context.randomisation["smoothgrad/HC"]
    assert saved["ParametersInsideTheCheck"] == {"samples": 8}
    assert (
        len(saved["Cascade"]["RandomisedLayers"])
        == len(saved["Independent"]["RandomisedLayers"])
        == 4
    )
    dead = types.SimpleNamespace(method="saliency", target="HC", index=1)
    context.model = _zero_init_net()
    context.x = _x()
    context.__dict__["region"] = np.ones(SHAPE, bool)
    row_dead = sanity.run(context, dead)
    assert row_dead["sanity_evaluable"] is False and row_dead["sanity_passed"] is False
    assert row_dead["sanity_abs_spearman"] is None and row_dead["sanity_spearman"] is None
    settings = types.SimpleNamespace(
        evaluate=["sanity"],
        faithfulness_baseline="blur",
        tolerance_mm=6.0,
        evaluate_sign="absolute",
    )
    session = types.SimpleNamespace(subject="01", session=None)
    rows = [{"method": "smoothgrad", "target": "HC", **row}]
    write_evaluation(tmp_path, session, rows, {}, settings, context.randomisation)
    path = next(tmp_path.rglob("*_evaluation.tsv"))
    table = read_table(path)
    assert table["sanity_passed"][0] == row["sanity_passed"] and table["sanity_evaluable"][0]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["Randomisation"]["smoothgrad/HC"]["Cascade"]["RandomisedLayers"][0] == ["7"]
    assert sidecar["SanityDeadFraction"] == DEAD_FRACTION
    assert "HigherIsBetter" not in sidecar["sanity_passed"]
    assert sidecar["sanity_hog"]["HigherIsBetter"] is False
