"""Explanations for every class, bidsxai against pytorch-grad-cam, captum and MONAI, side by side
in one run on the same model and input.

Tasks: ``camset`` (CAM + Grad-CAM + Grad-CAM++ for every class; each library computes the ones it
has: pytorch-grad-cam has no CAM, captum only Grad-CAM) and ``ig`` (integrated gradients, 32
Gauss-Legendre steps, every class; bidsxai and captum). Models: ``densenet3d`` (MONAI's DenseNet,
3D, 2 mm brain crop 77 x 94 x 80, 3 contrasts), ``vgg19gap`` (bidsxai's VGG19-GAP on 128 x 128
axial slices, 3 contrasts). Each library runs in its own process, so peak resident memory
(ru_maxrss) is its own.

Usage: python benchmarks/explain_vs_libraries.py [--model densenet3d] [--task camset]
       [--batch 8] [--repeats 2] [--device cpu]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

CLASSES = 3


def build(name, device, batch):
    """(model, input, the layer whose output feeds global average pooling)."""
    torch.manual_seed(0)
    if name == "densenet3d":
        from monai.networks.nets import DenseNet

        from bidsxai.template import load_template
        from bidsxai.training.crop_box import brain_crop

        shape = [hi - lo for lo, hi in brain_crop(load_template(2.0).brain_mask)]
        model = DenseNet(
            spatial_dims=3,
            in_channels=3,
            out_channels=CLASSES,
            init_features=16,
            growth_rate=8,
            block_config=(2, 2, 2, 2),
        )
        return (
            model.to(device).eval(),
            torch.randn(batch, 3, *shape, device=device),
            "class_layers.relu",
        )
    from bidsxai.models.registry import get_architecture

    model = get_architecture("vgg19_gap").build(in_channels=3, n_classes=CLASSES, input_shape=None)
    return model.to(device).eval(), torch.randn(batch, 3, 128, 128, device=device), "features"


def _fc_name(model):
    return "class_layers.out" if hasattr(model, "class_layers") else "classifier.1"


def camset_bidsxai(model, x, layer):
    from bidsxai.explain import explain_many

    result = explain_many(
        model, x, ["cam", "gradcam", "gradcampp"], layer=layer, targets="all", fc=_fc_name(model)
    )
    return ["cam", "gradcam", "gradcampp"], result["gradcampp"]


def camset_pytorch_grad_cam(model, x, layer):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from bidsxai.explain.layers import get_layer

    maps = []
    for method in (GradCAM, GradCAMPlusPlus):
        with method(model=model, target_layers=[get_layer(model, layer)]) as cam:
            for c in range(CLASSES):
                maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(c)] * len(x)))
    return ["gradcam", "gradcampp"], torch.as_tensor(maps[-1])


def camset_captum(model, x, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    from bidsxai.explain.layers import get_layer

    cam = LayerGradCam(model, get_layer(model, layer))
    mode = "trilinear" if x.dim() == 5 else "bilinear"
    maps = [
        LayerAttribution.interpolate(
            cam.attribute(x, target=c, relu_attributions=True), tuple(x.shape[2:]), mode
        )
        for c in range(CLASSES)
    ]
    return ["gradcam"], torch.cat(maps, 1)


def camset_monai(model, x, layer):
    """MONAI 1.6.1's GradCAMpp fails on batches of more than one sample (its exp(score), shaped
    (N,), is broadcast against the (N, C, ...) gradient), so it runs sample by sample."""
    from monai.visualize import CAM, GradCAM, GradCAMpp

    maps = []
    for method in (CAM, GradCAM, GradCAMpp):
        kwargs = {"fc_layers": _fc_name(model)} if method is CAM else {}
        cam = method(nn_module=model, target_layers=layer, **kwargs)
        batches = [x[i : i + 1] for i in range(len(x))] if method is GradCAMpp else [x]
        for c in range(CLASSES):
            maps += [cam(part, class_idx=torch.full((len(part),), c)) for part in batches]
    return ["cam", "gradcam", "gradcampp"], maps[-1]


def ig_bidsxai(model, x, layer):
    from bidsxai.explain import explain_many

    return ["ig"], explain_many(model, x, ["ig"], targets="all", steps=32)["ig"]


def ig_captum(model, x, layer):
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    maps = [
        ig.attribute(x, target=c, n_steps=32, method="gausslegendre", internal_batch_size=16).sum(1)
        for c in range(CLASSES)
    ]
    return ["ig"], torch.stack(maps, 1)


LIBRARIES = {
    "camset": {
        "bidsxai": camset_bidsxai,
        "pytorch-grad-cam": camset_pytorch_grad_cam,
        "captum": camset_captum,
        "monai": camset_monai,
    },
    "ig": {"bidsxai": ig_bidsxai, "captum": ig_captum},
}


def worker(args):
    model, x, layer = build(args.model, args.device, args.batch)
    fn = LIBRARIES[args.task][args.worker]
    fn(model, x, layer)  # warm-up
    times = []
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        names, _ = fn(model, x, layer)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if args.device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps({"seconds": min(times), "maps": names, "peak_mb": peak}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=("densenet3d", "vgg19gap"), default="densenet3d")
    p.add_argument("--task", choices=tuple(LIBRARIES), default="camset")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--worker")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    results = {}
    for name in LIBRARIES[args.task]:
        command = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--model",
            args.model,
            "--task",
            args.task,
            "--batch",
            str(args.batch),
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
        ]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode:
            results[name] = {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
        else:
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    memory = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    print(
        f"{args.task}, {CLASSES} classes, {args.model}, batch {args.batch}, {args.device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    ours = results["bidsxai"].get("seconds")
    for name, r in results.items():
        if "error" in r:
            print(f"  {name:16s} failed: {r['error']}")
            continue
        ratio = f"{r['seconds'] / ours:5.2f}x bidsxai's time" if ours else ""
        print(
            f"  {name:16s} {r['seconds']:8.2f} s  {memory} {r['peak_mb']:7.0f} MB  "
            f"maps: {', '.join(r['maps'])}  {ratio}"
        )


if __name__ == "__main__":
    main()
