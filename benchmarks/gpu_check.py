"""Do the CUDA paths give what the CPU path gives, and how fast are they? For a machine with a GPU.

1. Training: one epoch of the 3D CNN on the 2 mm crop from the same initial weights and batches,
   with dropout off (the CPU's and the GPU's random streams differ): fp32 on the CPU against fp32
   on the GPU (TF32 off) and `--precision amp` (float16 autocast with loss scaling) on the GPU. Per
   run: the epoch's mean loss, the largest difference of the trained parameters from the CPU's,
   and how far the parameters moved from the initial weights (Adam moves a parameter by at most
   about the learning rate per step, so a run whose first step the loss scaler skipped moves
   less).
2. Explanations of the untrained 3D CNN on the 2 mm crop: Grad-CAM and Grad-CAM++ (CAM itself
   needs a GAP head, which the 3D CNN has not), integrated gradients and LRP, fp32 on each device,
   with cuDNN's TF32 convolutions off and on (PyTorch's default is on): the largest difference
   relative to the map's range.
3. Max-T: 10,000 permutations of a two-sample test at 235,375 voxels and 50 subjects: the largest
   t difference and the largest FWE p difference.
4. TFCE: 200 permutations on a 2 mm brain-masked volume of 20 subjects: the same.

Prints, per check, the time on each device, the peak GPU memory, and the agreement.

Usage: python benchmarks/gpu_check.py [--device cuda] [--small]
  --small: small sizes, to try the script itself (with --device cpu it compares the CPU with itself)
"""

import argparse
import copy
import time

import numpy as np
import torch


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return result, time.perf_counter() - start, peak


def report(name, cpu_s, gpu_s, peak_mb, agreement):
    print(
        f"{name}: CPU {cpu_s:.2f} s, GPU {gpu_s:.2f} s ({cpu_s / gpu_s:.1f}x), "
        f"peak GPU memory {peak_mb:.0f} MB; {agreement}"
    )


def training_epoch(model, x, y, device, precision):
    from bidsxai.training.dataset import VolumeDataset
    from bidsxai.training.loop import TrainOptions, fit

    options = TrainOptions(epochs=1, patience=1, batch_size=4, precision=precision)
    data = VolumeDataset(x, y)
    history, _ = fit(model, data, data, device=device, options=options, seed=0)
    return history[-1]["train_loss"], model


def _tf32(enabled):
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def _largest_difference(a, b):
    b = dict(b.named_parameters())
    return max(
        (p.detach().cpu() - b[n].detach().cpu()).abs().max().item() for n, p in a.named_parameters()
    )


def check_training(shape, n, device):
    from bidsxai.models.registry import get_architecture

    rng = np.random.default_rng(0)
    x = rng.random((n, 3, *shape)).astype(np.float32)
    y = np.arange(n) % 2
    torch.manual_seed(0)
    model = get_architecture("cnn3d").build(in_channels=3, n_classes=2, input_shape=list(shape))
    initial = copy.deepcopy(model)
    for module in initial.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    _tf32(False)
    runs = {}
    configurations = (
        ("CPU fp32", torch.device("cpu"), "fp32"),
        ("GPU fp32", device, "fp32"),
        ("GPU amp", device, "amp"),
    )
    for _, on, precision in configurations:  # warm-up: first calls, cuDNN's choice of kernels
        training_epoch(copy.deepcopy(initial), x[:2], y[:2], on, precision)
    for label, on, precision in configurations:
        (loss, trained), seconds, peak = timed(
            lambda on=on, precision=precision: training_epoch(
                copy.deepcopy(initial), x, y, on, precision
            ),
            on,
        )
        runs[label] = (loss, trained, seconds, peak)
    _tf32(True)
    cpu_loss, cpu_model, cpu_s, _ = runs["CPU fp32"]
    for label in ("GPU fp32", "GPU amp"):
        loss, trained, seconds, peak = runs[label]
        report(
            f"training epoch (CPU fp32, {label})",
            cpu_s,
            seconds,
            peak,
            f"mean loss {cpu_loss:.4f} vs {loss:.4f}, largest parameter difference "
            f"{_largest_difference(cpu_model, trained):.2e}, largest move from the initial "
            f"weights {_largest_difference(initial, cpu_model):.2e} vs "
            f"{_largest_difference(initial, trained):.2e}",
        )
    return model


def check_explanations(model, shape, device):
    from bidsxai.explain import explain_many
    from bidsxai.models.registry import get_architecture

    layer = get_architecture("cnn3d").default_layer(model)
    x = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(1))
    methods = ["gradcam", "gradcampp", "ig", "lrp"]  # CAM needs a GAP head, which cnn3d has not

    def run(on):
        net = copy.deepcopy(model).to(on).eval()
        maps = explain_many(net, x.to(on), methods, layer=layer, targets="all")
        return {m: v.detach().cpu().numpy() for m, v in maps.items()}

    run(device)  # warm-up: first calls, cuDNN's choice of kernels
    cpu, cpu_s, _ = timed(lambda: run(torch.device("cpu")), torch.device("cpu"))
    for tf32 in (False, True):
        _tf32(tf32)
        gpu, gpu_s, peak = timed(lambda: run(device), device)
        gaps = ", ".join(
            f"{m} {np.abs(cpu[m] - gpu[m]).max() / max(np.ptp(cpu[m]), 1e-12):.1e}" for m in methods
        )
        report(
            f"Grad-CAM, Grad-CAM++, IG and LRP (every class; TF32 {'on' if tf32 else 'off'})",
            cpu_s,
            gpu_s,
            peak,
            f"relative difference {gaps}",
        )


def check_max_t(voxels, subjects, perms, device):
    from bidsxai.group.permutation import permutation_fwe

    data = np.random.default_rng(2).normal(size=(subjects, voxels))
    labels = np.arange(subjects) < subjects // 2
    cpu, cpu_s, _ = timed(
        lambda: permutation_fwe(data, labels, n_perm=perms, device="cpu"), torch.device("cpu")
    )
    gpu, gpu_s, peak = timed(
        lambda: permutation_fwe(data, labels, n_perm=perms, device=device), device
    )
    report(
        f"max-T, {perms} permutations, {voxels} voxels, {subjects} subjects",
        cpu_s,
        gpu_s,
        peak,
        f"t {np.abs(cpu['t'] - gpu['t']).max():.1e}, "
        f"p_fwe {np.abs(cpu['p_fwe'] - gpu['p_fwe']).max():.1e}",
    )


def check_tfce(resolution, subjects, perms, device):
    from bidsxai.group.ttest import ttest
    from bidsxai.template import load_template

    mask = load_template(resolution).brain_mask
    maps = np.random.default_rng(3).normal(size=(subjects, *mask.shape))
    half = subjects // 2

    def run(on):
        return ttest(maps[:half], maps[half:], mask=mask, tfce=True, n_perm=perms, device=on)

    cpu, cpu_s, _ = timed(lambda: run("cpu"), torch.device("cpu"))
    gpu, gpu_s, peak = timed(lambda: run(device), device)
    report(
        f"TFCE, {perms} permutations, {subjects} subjects at {resolution:g} mm",
        cpu_s,
        gpu_s,
        peak,
        f"tfce {np.abs(cpu['tfce'] - gpu['tfce']).max():.1e}, "
        f"p_fwe_tfce {np.abs(cpu['p_fwe_tfce'] - gpu['p_fwe_tfce']).max():.1e}",
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available here (try --device cpu --small)")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    shape = (24, 28, 24) if args.small else (77, 94, 80)
    model = check_training(shape, 4 if args.small else 8, device)
    check_explanations(model, shape, device)
    check_max_t(*((2000, 10, 100) if args.small else (235375, 50, 10000)), device)
    check_tfce(*((6.0, 8, 20) if args.small else (2.0, 20, 200)), device)


if __name__ == "__main__":
    main()
