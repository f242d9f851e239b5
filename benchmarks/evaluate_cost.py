"""What evaluating a heatmap costs, side by side with Quantus where it computes the same measures.

1. Localisation (AUROC, pointing game, mass inside) of a batch of maps against masks: bidsxai and
   Quantus (AUC, PointingGame, RelevanceMassAccuracy) on the same 2D maps, since Quantus refuses
   3D input; then bidsxai alone on 2 mm volumes.
2. ROAD's noisy linear imputation of a 2D image: bidsxai and Quantus (``noisy_linear_imputation``)
   on the same image and removed pixels.
3. On the 2 mm brain crop of the 3D CNN: Grad-CAM of one session against faithfulness (voxel
   inverting, its random baseline, deletion and insertion: 4 x 20 perturbed volumes, batched; with
   the blurred and with the ROAD baseline) and one step of cascading randomisation.
4. One session's localisation at 2 mm with its baselines and controls, against the methods' maps
   alone as they were scored before there were baselines.

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


def _methods_alone(context):
    """The methods' maps scored one transform each, as before the baselines (but with today's
    AUROC, so the ratio below is if anything too high)."""
    from bidsxai.evaluate import localisation as module
    from bidsxai.evaluate.localisation import template_localisation_row

    for item in context.explanation.maps:
        module._distance.cache_clear()
        template_localisation_row(item.heatmap, context.masks, context.template, 6.0)


def _with_baselines(context):
    """The localisation evaluation as a session runs it: every map, then the baselines, the
    chance rate and the controls. Each call is a new session, whose mask (moved by a voxel) has
    no transform kept; the template's depth map is kept from the first, as in a run."""
    from bidsxai.evaluate.evaluations import _localisation, _localisation_controls

    context.masks = {"lesion": np.roll(context.masks["lesion"], 1, axis=0)}
    maps = context.explanation.maps
    rows = [dict(method=i.method, target=i.target, **_localisation(context, i)) for i in maps]
    return _localisation_controls(context, rows)


def session_localisation(repeats):
    """One session's localisation at 2 mm against one lesion mask, as the participant level runs
    it (``evaluate.evaluations``): the methods' maps alone with one distance transform per map, as
    it was before the baselines and controls, against the methods' maps with the model-free
    baselines, the chance rate and the other-class controls, the transform computed once per
    mask."""
    from types import SimpleNamespace

    from scipy import ndimage

    from bidsxai.template import load_template
    from bidsxai.training.crop_box import brain_crop, crop
    from bidsxai.workflows.explain_session import TargetMap

    template = load_template(2.0)
    box = brain_crop(template.brain_mask)
    rng = np.random.default_rng(0)
    mask = np.zeros(template.shape, bool)
    mask[30:36, 50:56, 40:46] = True
    contrasts = np.stack([template.t1w, template.wm]) + rng.normal(0, 0.02, (2, *template.shape))
    options = SimpleNamespace(tolerance_mm=6.0, evaluate_sign="absolute")
    print(f"one session's localisation at 2 mm, one mask, {os.cpu_count()} cores:")
    for methods, classes in ((1, 3), (5, 2)):
        maps = [
            TargetMap(f"m{m}", f"c{c}", c, ndimage.gaussian_filter(rng.random(template.shape), 3))
            for m in range(methods)
            for c in range(classes)
        ]
        context = SimpleNamespace(
            masks={"lesion": mask},
            template=template,
            options=options,
            spec={"contrasts": ["T1w", "FLAIR"], "crop": box},
            x=torch.from_numpy(crop(contrasts, box)[None].astype(np.float32)),
            explanation=SimpleNamespace(maps=maps),
        )

        old = timed(lambda c=context: _methods_alone(c), repeats)
        new = timed(lambda c=context: _with_baselines(c), repeats)
        rows = len(_with_baselines(context))
        print(
            f"  {methods} method(s) x {classes} classes: methods alone {old:.2f} s; with "
            f"baselines and controls ({rows} rows) {new:.2f} s ({new / old:.2f}x)"
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--maps", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    localisation_side_by_side(args.maps, args.repeats)
    imputation_side_by_side(args.repeats)
    volume_costs(args.repeats)
    session_localisation(args.repeats)


if __name__ == "__main__":
    main()
