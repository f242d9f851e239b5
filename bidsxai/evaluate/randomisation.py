"""Model-parameter randomisation (Adebayo et al. 2018, sections 3-3.1): re-initialise the model's
layers and compare each map with the trained model's. A map that stays the same does not depend
on what the model learned and fails this sanity check.

Re-initialisation. Each layer is set back to its own initialisation: its ``reset_parameters()``
(PyTorch's default initialisation of that layer type, the one a freshly built model of the
architecture has), else the model's ``_init_weights(module)`` where the model defines one, run on a
CPU copy under a seed derived from ``init_seed`` and the layer's name (so the same layer gets the
same weights in the cascade and alone, on any device). A normalisation layer (batch, group,
instance or layer norm) gets gamma = 1 and beta = 0, its initial values. Its running statistics are
recomputed on the explained input by default (``running_stats="recompute"``): each randomised norm
layer's running mean and (biased) variance are set, channel by channel, to those of what reaches it
from ``x``, so it normalises as a freshly initialised network in training mode does. The evidence
(``benchmarks/randomisation_scale.py``: a 4-block ``cnn3d`` trained on a synthetic task, 32^3
input, every layer randomised; numbers in ``docs/benchmarks.md``): the trained network's block
outputs have SDs of 0.57-0.89. Drawing every parameter from N(0, SD of its trained values), scales
included, with the statistics reset leaves 0.002-0.004 and logits that no longer change with the
input at all (output sensitivity 0). PyTorch's initialisation with the statistics reset to mean 0 /
variance 1 shrinks every layer's output (default weight variance 1 / (3 fan-in)): block SDs fall to
0.01-0.14 and the output sensitivity to 0.001 of the trained network's; with the trained statistics
kept, the randomised convolutions are divided by variances they never had (SDs 0.42-1.19,
sensitivity 0.026); recomputed, the block SDs are 0.70-0.85 and the sensitivity 2.7. The other two
choices are kept for comparison.

Order. The cascade goes by distance from the output, read from the autograd graph of one
forward pass: a parametrised layer's distance is the fewest parametrised layers its output
passes through on the way to the logits (0 for the output layer). Step d randomises every layer
at distance d together, listed by reverse call order: one layer per step in a sequential network
(reverse depth), and in a multi-path network (GAMER-MRIL's encoders, dense blocks' skip
connections) the layers at equal distance in parallel paths at once. Layers whose output does not
reach the logits are left out. ``cascade=False`` randomises each step's layers alone, the rest
trained (independent randomisation).

Curve. At every step: Spearman of the two maps, signed and of their absolute values, SSIM, HOG
similarity (``similarity.hog_similarity``), and the output sensitivity relative to the trained
network's (``output_sensitivity``). A step is not evaluable when either map is constant within
the region (including all zero), has a non-finite value, or when the randomised network is dead
(relative output sensitivity below ``DEAD_FRACTION``); its similarities are then NaN. The check
passes (``sanity_verdict.verdict``) when the full cascade is evaluable and the |Spearman of the
absolute maps| is below ``SANITY_THRESHOLD``; it is never passed when not evaluable.
"""

import collections
import copy
import zlib

import numpy as np
import torch
from torch import nn

from bidsxai.evaluate.sanity_verdict import DEAD_FRACTION
from bidsxai.evaluate.similarity import hog_similarity, spearman, ssim
from bidsxai.explain import explain
from bidsxai.explain.layers import eval_mode

# Relative variation within the region at or below which a map is constant (float32 round-off).
CONSTANT_TOLERANCE = 1e-6

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
SIMILARITIES = ("spearman", "abs_spearman", "ssim", "hog")


def _own_parameters(module):
    return list(module.parameters(recurse=False))


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def distances(model, x):
    """(call order, {name: distance}) of the modules that hold parameters of their own:
    the order of their first call in one forward pass of ``x``, and the fewest parametrised
    modules (itself excluded) between each one's output and the model's output, from the autograd
    graph. Modules whose output does not reach the output are absent from the distances."""
    names = {m: n for n, m in model.named_modules() if n and _own_parameters(m)}
    order, outputs, handles = [], collections.defaultdict(set), []

    def hook(module, _inputs, output):
        name = names[module]
        if name not in order:
            order.append(name)
        for t in _tensors(output):
            if t.grad_fn is not None:
                outputs[t.grad_fn].add(name)

    for module in names:
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.enable_grad(), eval_mode(model):
            out = _tensors(model(x.detach().clone().requires_grad_(True)))
    finally:
        for h in handles:
            h.remove()
    best, queue = {}, collections.deque()
    for t in out:
        if t.grad_fn is not None:
            best[t.grad_fn] = 0
            queue.append((t.grad_fn, 0))
    found = {}
    while queue:  # 0-1 breadth-first search: leaving a parametrised module's output costs 1
        node, d = queue.popleft()
        if d > best[node]:
            continue
        step = 0
        if node in outputs:
            for name in outputs[node]:
                found[name] = min(found.get(name, d), d)
            step = 1
        for following, _ in node.next_functions:
            if following is not None and d + step < best.get(following, np.inf):
                best[following] = d + step
                (queue.append if step else queue.appendleft)((following, d + step))
    return order, found


def cascade_order(model, x):
    """The cascade's steps, output first: [[names at distance 0], [at distance 1], ...], each
    step's layers by reverse call order."""
    order, found = distances(model, x)
    steps = collections.defaultdict(list)
    for name in reversed(order):
        if name in found:
            steps[found[name]].append(name)
    return [steps[d] for d in sorted(steps)]


def parametrised_layers(model, x):
    """Every parametrised layer that reaches the output, in cascade order."""
    return [name for step in cascade_order(model, x) for name in step]


def _seed(seed, name):
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**63


def reinitialise(model, name, seed=0):
    """Set module ``name`` of ``model`` back to its initialisation (module docstring); returns
    how: "norm", "reset_parameters" or "_init_weights"."""
    module = model.get_submodule(name)
    with torch.no_grad():
        if isinstance(module, NORMS):
            if getattr(module, "weight", None) is not None:
                module.weight.fill_(1.0)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
            return "norm"
        fresh = copy.deepcopy(module).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(seed, name))
            if hasattr(fresh, "reset_parameters"):
                fresh.reset_parameters()
                how = "reset_parameters"
            elif callable(getattr(model, "_init_weights", None)):
                model._init_weights(fresh)
                how = "_init_weights"
            else:
                raise ValueError(
                    f"layer {name!r} ({type(module).__name__}) has no reset_parameters() and the "
                    "model defines no _init_weights(module): its initialisation is unknown"
                )
        for own, new in zip(_own_parameters(module), _own_parameters(fresh)):
            own.copy_(new.to(own))
    return how


def randomise(model, x, names, seed=0, running_stats="recompute", before=()):
    """Re-initialise the layers ``names`` of ``model`` in place (``reinitialise``) and treat the
    norm layers' running statistics as ``running_stats`` says; "recompute" also recomputes those
    of the norm layers among ``before`` (randomised earlier, their input has changed)."""
    for name in names:
        reinitialise(model, name, seed)
        module = model.get_submodule(name)
        if running_stats == "reset" and hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    if running_stats == "recompute":
        recompute_statistics(model, x, [*before, *names])
    return model


def recompute_statistics(model, x, names):
    """Set the running mean and biased variance of the norm layers ``names`` to those of their
    input in one eval-mode forward pass of ``x``, per channel (the statistics a training-mode
    pass would normalise with). A layer with one value per channel keeps its statistics."""

    def hook(module, inputs):
        value = inputs[0].detach()
        if value.numel() // value.shape[1] > 1:
            dims = [d for d in range(value.dim()) if d != 1]
            module.running_mean.copy_(value.mean(dims))
            module.running_var.copy_(value.var(dims, unbiased=False))

    chosen = [model.get_submodule(n) for n in names]
    chosen = [m for m in chosen if getattr(m, "running_mean", None) is not None]
    handles = [m.register_forward_pre_hook(hook) for m in chosen]
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def output_sensitivity(model, x, copies=3, noise=0.1, seed=0):
    """How much the output follows the input: the root mean square, over ``copies`` copies of
    ``x`` with Gaussian noise of SD ``noise`` x SD(x) added, of the L2 norm of the change of the
    logit vector, in eval mode. The noise is drawn on the CPU from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    scale = noise * float(x.detach().float().std())
    with eval_mode(model):
        reference = model(x).float()
        changes = []
        for _ in range(copies):
            e = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * scale
            changes.append(((model(x + e).float() - reference) ** 2).sum())
    return float(torch.stack(changes).mean().sqrt())


def _map(model, x, method, target, params):
    if callable(method):
        return np.asarray(method(model, x), np.float64)
    return explain(model, x, method, target=target, **params)[0].detach().cpu().numpy()


def evaluable(values, region=None):
    """Whether a map can be compared: finite within ``region`` and not constant there."""
    v = np.asarray(values, np.float64)
    v = v[np.ones(v.shape, bool) if region is None else np.asarray(region, bool)]
    if v.size < 2 or not np.isfinite(v).all():
        return False
    return bool(np.ptp(v) > CONSTANT_TOLERANCE * np.abs(v).max())


def similarities(reference, randomised, region=None):
    """{"spearman", "abs_spearman", "ssim", "hog"} of two maps; NaN where either is not
    evaluable (or its absolute values are constant)."""
    if not (evaluable(reference, region) and evaluable(randomised, region)):
        return dict.fromkeys(SIMILARITIES, float("nan"))
    a, b = np.abs(reference), np.abs(randomised)
    both = evaluable(a, region) and evaluable(b, region)
    return {
        "spearman": spearman(reference, randomised, region),
        "abs_spearman": spearman(a, b, region) if both else float("nan"),
        "ssim": ssim(reference, randomised, region),
        "hog": hog_similarity(reference, randomised, region),
    }


def randomisation(
    model: torch.nn.Module,
    x: torch.Tensor,
    method,
    *,
    target: int | None = None,
    layers: list | None = None,
    region: np.ndarray | None = None,
    init_seed: int = 0,
    cascade: bool = True,
    running_stats: str = "recompute",
    reference_map: np.ndarray | None = None,
    sensitivities: dict | None = None,
    **explain_params,
) -> dict:
    """The randomisation curve of one map, one entry per step:

    - "layers": the layer names randomised at each step (default: ``cascade_order``; given
      ``layers``, each entry is a step: a name or a list of names, a name without parameters of
      its own standing for the parametrised modules inside it);
    - "spearman", "abs_spearman", "ssim", "hog": the map's similarity to the trained model's;
    - "sensitivity": the randomised network's output sensitivity over the trained one's;
    - "evaluable": whether both maps are evaluable and the network is alive (module docstring);
    - "reference_sensitivity": the trained network's output sensitivity (one number);
    - "reference_map": the trained model's map, which a second curve of the same map can be given
      as ``reference_map`` instead of computing it again.

    ``cascade``: each step adds its layers to those already random (True), or randomises them
    alone, the rest trained (False: independent randomisation). ``init_seed`` seeds the
    re-initialisation (``reinitialise``) and the sensitivity's noise. ``running_stats``:
    "recompute" (default), "keep" or "reset" (module docstring). ``method`` is a name for
    ``bidsxai.explain.explain`` (with ``explain_params``) or a function (model, x) -> map; the
    target is the trained model's predicted class unless given. ``sensitivities``: a dict the
    caller keeps across the curves of one model and input. The network a step makes does not
    depend on the method or the class explained, so its output sensitivity (four forward passes,
    more than half of a Grad-CAM curve's time at 2 mm) is computed for the first curve and read
    back by the others.
    """
    if running_stats not in ("recompute", "keep", "reset"):
        raise ValueError(f"running_stats must be recompute, keep or reset, not {running_stats!r}")
    if target is None:
        with torch.no_grad(), eval_mode(model):
            target = int(model(x).argmax(1)[0])
    steps = cascade_order(model, x) if layers is None else _given_steps(model, layers)
    reference = (
        _map(model, x, method, target, explain_params) if reference_map is None else reference_map
    )
    sensitivities = {} if sensitivities is None else sensitivities

    def sensitivity(network, randomised):
        key = (tuple(randomised), running_stats, init_seed)  # what makes the network
        if key not in sensitivities:
            sensitivities[key] = output_sensitivity(network, x, seed=init_seed)
        return sensitivities[key]

    trained = sensitivity(model, [])
    rows = {"layers": steps, "sensitivity": [], "evaluable": [], **{k: [] for k in SIMILARITIES}}
    work = copy.deepcopy(model)
    done = []
    for step in steps:
        if not cascade:
            work, done = copy.deepcopy(model), []
        randomise(work, x, step, init_seed, running_stats, before=done)
        done += step
        randomised = _map(work, x, method, target, explain_params)
        relative = sensitivity(work, done) / trained if trained > 0 else np.nan
        alive = bool(np.isfinite(relative) and relative >= DEAD_FRACTION)
        found = similarities(reference, randomised, region)
        ok = alive and evaluable(reference, region) and evaluable(randomised, region)
        for k in SIMILARITIES:
            rows[k].append(found[k] if ok else np.nan)
        rows["sensitivity"].append(relative)
        rows["evaluable"].append(ok)
    result = {k: v if k == "layers" else np.asarray(v) for k, v in rows.items()}
    result["reference_sensitivity"] = trained
    result["reference_map"] = reference
    return result


def _given_steps(model, layers):
    steps = []
    for entry in layers:
        names = [entry] if isinstance(entry, str) else list(entry)
        found = []
        for name in names:
            module = model.get_submodule(name)
            found += [
                f"{name}.{n}" if n else name
                for n, m in module.named_modules()
                if _own_parameters(m)
            ]
        steps.append(found)
    return steps
