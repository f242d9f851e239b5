"""Grad-CAM for every class: bidsxai (one forward pass, one backward per class on the same graph)
against captum's LayerGradCam (a forward and a backward per class), side by side in one run.

Each library runs in its own subprocess so that peak resident memory (ru_maxrss) is its own.
Usage: python benchmarks/gradcam_all_classes.py [--batch 8] [--repeats 3] [--device cpu]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def build(device, batch):
    from bidsxai.models.registry import get_architecture
    from bidsxai.template import load_template
    from bidsxai.training.dataset import brain_crop

    crop = brain_crop(load_template(2.0).brain_mask)
    shape = [hi - lo for lo, hi in crop]
    arch = get_architecture("cnn3d")
    torch.manual_seed(0)
    model = arch.build(in_channels=3, n_classes=3, input_shape=shape).to(device).eval()
    x = torch.randn(batch, 3, *shape, device=device)
    return model, x, arch.default_layer(model)


def run_bidsxai(model, x, layer):
    from bidsxai.explain import explain_many

    return explain_many(model, x, ["gradcam"], layer=layer, targets="all")["gradcam"]


def run_captum(model, x, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    from bidsxai.explain.layers import get_layer

    cam = LayerGradCam(model, get_layer(model, layer))
    maps = [LayerAttribution.interpolate(cam.attribute(x, target=c, relu_attributions=True),
                                         tuple(x.shape[2:]), "trilinear") for c in range(3)]
    return torch.cat(maps, 1)


def worker(name, device, batch, repeats):
    model, x, layer = build(device, batch)
    fn = {"bidsxai": run_bidsxai, "captum": run_captum}[name]
    fn(model, x, layer)  # warm-up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        maps = fn(model, x, layer)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    print(json.dumps({"name": name, "seconds": min(times), "shape": list(maps.shape),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mb": base / 1024}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--worker")
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.device, args.batch, args.repeats)
    results = {}
    for name in ("bidsxai", "captum"):
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--batch", str(args.batch),
                              "--repeats", str(args.repeats), "--device", args.device],
                             capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Grad-CAM, 3 classes, cnn3d at 2 mm, batch {args.batch}, {args.device}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    for name, r in results.items():
        print(f"  {name:8s} {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mb']:7.0f} MB   maps {r['shape']}")
    ratio = results["captum"]["seconds"] / results["bidsxai"]["seconds"]
    print(f"  captum / bidsxai time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
