"""Does a randomised network still respond to its input? The evidence for how
``bidsxai.evaluate.randomisation`` re-initialises layers and treats batch-norm statistics.

A 4-block ``cnn3d`` (32^3 input) is trained for a few epochs on a synthetic task (a bright blob
in the left or the right half of smooth noise), then every parametrised layer is randomised in
four ways: parameters drawn from N(0, SD of the trained values),
batch-norm scales included, running statistics reset), and PyTorch's initialisation
(``reset_parameters``, batch norm gamma = 1, beta = 0) with the running statistics kept, reset to
mean 0 / variance 1, or recomputed on the explained input. For each: the SD of every block's
output on a held-out input, the logits' SD over held-out inputs relative to their mean
magnitude, the output sensitivity (``output_sensitivity``) relative to the trained network's,
and the Spearman rank correlation of the absolute saliency and Grad-CAM maps with the trained
network's; and, as a reference, the same correlation between the maps of two independently
seeded random networks. Runs in about two minutes on 2 CPU cores.

Usage: python benchmarks/randomisation_scale.py [--epochs 6] [--seed 0]
"""

import argparse
import copy

import numpy as np
import torch
from scipy import ndimage

from bidsxai.evaluate.randomisation import (
    output_sensitivity,
    parametrised_layers,
    randomise,
)
from bidsxai.evaluate.similarity import spearman
from bidsxai.explain import explain
from bidsxai.models.registry import get_architecture

SIZE = 32


def cohort(n, rng):
    """(volumes (n, 1, 32, 32, 32), labels): smooth noise with a blob left (0) or right (1)."""
    xs, ys = [], []
    grid = np.indices((SIZE,) * 3)
    for i in range(n):
        label = i % 2
        noise = ndimage.gaussian_filter(rng.normal(size=(SIZE,) * 3), 2) * 3
        centre = [rng.integers(8, 24), rng.integers(8, 24), rng.integers(4, 12) + 16 * label]
        blob = np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / (2 * 3.0**2))
        xs.append(noise + 2 * blob)
        ys.append(label)
    return torch.tensor(np.array(xs)[:, None], dtype=torch.float32), torch.tensor(ys)


def train(model, x, y, epochs, seed):
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(8):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.eval()


def gaussian_scaled(model, seed=0):
    """Every parameter drawn from N(0, SD of its trained values), running statistics reset."""
    work = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in work.modules():
        for p in module.parameters(recurse=False):
            with torch.no_grad():
                p.copy_(torch.randn_like(p) * (p.std() if p.numel() > 1 and p.std() > 0 else 1.0))
        if hasattr(module, "running_mean"):
            module.reset_running_stats()
    return work


@torch.no_grad()
def block_sds(model, x):
    sds, h = [], x
    for block in model.blocks:
        h = block(h)
        sds.append(float(h.std()))
    return sds


@torch.no_grad()
def logit_variation(model, xs):
    logits = model(xs)
    return float((logits.std(0) / logits.mean(0).abs()).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = cohort(64, rng)
    x_test, y_test = cohort(8, rng)
    torch.manual_seed(args.seed)
    arch = get_architecture("cnn3d")
    model = arch.build(1, 2, [SIZE] * 3)
    model = train(model, x_train, y_train, args.epochs, args.seed)
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    x, layer = x_test[1:2], arch.default_layer(model)
    names = parametrised_layers(model, x)
    target = int(model(x).argmax(1)[0])
    maps = {
        m: explain(model, x, m, target=target, **({"layer": layer} if m == "gradcam" else {}))
        for m in ("saliency", "gradcam")
    }
    trained = output_sensitivity(model, x)
    networks = {"trained": model, "N(0, SD of trained), stats reset": gaussian_scaled(model)}
    for how in ("keep", "reset", "recompute"):
        networks[f"reset_parameters, stats {how}"] = randomise(
            copy.deepcopy(model), x, names, running_stats=how
        )
    print(f"cnn3d, 4 blocks, {SIZE}^3, {args.epochs} epochs: held-out accuracy {accuracy:.2f}")
    print(
        "| network | block output SDs | logit SD / mean | output sensitivity | "
        "abs-Spearman saliency | abs-Spearman Grad-CAM |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, net in networks.items():
        rho = []
        for m, reference in maps.items():
            params = {"layer": layer} if m == "gradcam" else {}
            randomised = explain(net, x, m, target=target, **params)[0].detach().numpy()
            rho.append(spearman(np.abs(reference[0].detach().numpy()), np.abs(randomised)))
        sds = ", ".join(f"{s:.3g}" for s in block_sds(net, x))
        print(
            f"| {label} | {sds} | {logit_variation(net, x_test):.2g} | "
            f"{output_sensitivity(net, x) / trained:.2g} | {rho[0]:.2f} | {rho[1]:.2f} |"
        )
    # What two unrelated random networks' maps share (input structure alone): the level below
    # which a randomised map cannot be told from any random network's.
    other = randomise(copy.deepcopy(model), x, names, seed=1)
    shared = []
    for m in maps:
        params = {"layer": layer} if m == "gradcam" else {}
        a, b = (
            np.abs(explain(n, x, m, target=target, **params)[0].detach().numpy())
            for n in (networks["reset_parameters, stats recompute"], other)
        )
        shared.append(spearman(a, b))
    print(
        "abs-Spearman between two independently seeded random networks' maps: "
        f"saliency {shared[0]:.2f}, Grad-CAM {shared[1]:.2f}"
    )


if __name__ == "__main__":
    main()
