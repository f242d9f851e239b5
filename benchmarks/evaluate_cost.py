"""What evaluating a heatmap costs, side by side with Quantus where it computes the same measures.

1. Localisation (AUROC, pointing game, mass inside) of a batch of maps against masks: bidsxai and
   Quantus (AUC, PointingGame, RelevanceMassAccuracy) on the same 2D maps, since Quantus refuses
   3D input; then bidsxai alone on 2 mm volumes.
2. ROAD's noisy linear imputation of a 2D image: bidsxai and Quantus (``noisy_linear_imputation``)
   on the same image and removed pixels.
3. On the 2 mm brain crop of the 3D CNN: Grad-CAM of one session against faithfulness (voxel
   inverting, its random baseline, deletion and insertion: 4 x 20 perturbed volumes, batched; with
   the blurred and with the ROAD baseline) and one step of cascading randomisation.

Usage: python benchmarks/evaluate_cost.py [--maps 32] [--repeats 3]
"""

import argparse
import os
import time

import numpy as np
import torch


def timed(fn, repeats):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def localisation_side_by_side(n_maps, repeats):
    import quantus

    from bidsxai.evaluate.localisation import localisation

    rng = np.random.default_rng(0)
    a = rng.random((n_maps, 1, 224, 224)).astype(np.float32)
    s = np.zeros_like(a)
    s[:, :, 60:120, 80:150] = 1
    x, y = rng.random(a.shape).astype(np.float32), np.zeros(n_maps, int)
    brain = np.ones((224, 224), bool)
    ours = timed(lambda: localisation(a[:, 0], s[:, 0] > 0, brain=brain, tolerance_mm=0), repeats)
    metrics = [
        getattr(quantus, m)(disable_warnings=True, display_progressbar=False)
        for m in ("AUC", "PointingGame", "RelevanceMassAccuracy")
    ]
    theirs = timed(
        lambda: [m(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s) for m in metrics],
        repeats,
    )
    print(
        f"localisation, {n_maps} maps of 224 x 224: bidsxai {ours:.3f} s, Quantus {theirs:.3f} s "
        f"({theirs / ours:.1f}x)"
    )


def imputation_side_by_side(repeats):
    from quantus.functions.perturb_func import noisy_linear_imputation

    from bidsxai.evaluate.imputation import linear_imputation

    rng = np.random.default_rng(0)
    image = rng.random((3, 224, 224))
    removed = np.zeros((224, 224), bool)
    removed[40:150, 60:170] = True  # a blob, as the top of a map is, and scattered pixels
    removed |= rng.random((224, 224)) < 0.1
    ours = timed(lambda: linear_imputation(image, removed, noise=0.01), repeats)
    theirs = timed(
        lambda: noisy_linear_imputation(image, np.flatnonzero(removed), noise=0.01), repeats
    )
    print(
        f"ROAD imputation of {removed.sum()} of 224 x 224 pixels, 3 channels: bidsxai "
        f"{ours:.3f} s, Quantus {theirs:.3f} s ({theirs / ours:.1f}x)"
    )


def volume_costs(repeats):
    from bidsxai.evaluate.faithfulness import faithfulness
    from bidsxai.evaluate.localisation import localisation
    from bidsxai.evaluate.randomisation import randomisation
    from bidsxai.explain import explain
    from bidsxai.models.registry import get_architecture
    from bidsxai.template import load_template
    from bidsxai.training.crop_box import brain_crop, crop

    template = load_template(2.0)
    box = brain_crop(template.brain_mask)
    region = crop(template.brain_mask, box)
    arch = get_architecture("cnn3d")
    torch.manual_seed(0)
    model = arch.build(in_channels=3, n_classes=3, input_shape=list(region.shape)).eval()
    x = torch.rand(1, 3, *region.shape)
    layer = arch.default_layer(model)
    heatmap = explain(model, x, "gradcam", layer=layer, target=1)[0].detach().numpy()
    masks = np.zeros((8, *template.shape), bool)
    masks[:, 30:40, 50:60, 40:50] = True
    maps = np.random.default_rng(1).random((8, *template.shape))
    costs = {
        "Grad-CAM, one class": timed(
            lambda: explain(model, x, "gradcam", layer=layer, target=1), repeats
        ),
        "faithfulness (80 perturbed volumes)": timed(
            lambda: faithfulness(model, x, heatmap, target=1, region=region), 1
        ),
        "faithfulness, ROAD baseline": timed(
            lambda: faithfulness(model, x, heatmap, target=1, region=region, baseline="road"), 1
        ),
        "randomisation, one layer step": timed(
            lambda: randomisation(model, x, "gradcam", target=1, layers=[layer], layer=layer), 1
        ),
        "localisation of 8 maps": timed(
            lambda: localisation(maps, masks, brain=template.brain_mask, voxel_size=(2, 2, 2)),
            repeats,
        ),
    }
    base = costs["Grad-CAM, one class"]
    print(f"3D CNN on the 2 mm brain crop {tuple(region.shape)}, {os.cpu_count()} cores:")
    for name, seconds in costs.items():
        print(f"  {name}: {seconds:.3f} s ({seconds / base:.1f}x Grad-CAM)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--maps", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    localisation_side_by_side(args.maps, args.repeats)
    imputation_side_by_side(args.repeats)
    volume_costs(args.repeats)


if __name__ == "__main__":
    main()
