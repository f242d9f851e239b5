"""Training throughput: samples per second of the training step (forward, backward, optimiser) for
GAMER-MRIL (3 contrasts, 2 mm brain crop) and VGG19-GAP (3-channel axial slices), in fp32 and mixed
precision, and how fast the data loader feeds them (float16 memory-mapped cache + the papers'
augmentation) with 0 and N worker processes. A loader rate above the step rate means the device
is not starved.

Usage: python benchmarks/training_throughput.py [--device cpu] [--steps 3] [--workers 2]
       [--slice-size 256] [--batch3d 4] [--batch2d 16] [--precisions fp32,amp]
(default precisions: fp32 on CPU, where bfloat16 autocast without hardware support is several
times slower; fp32 and amp on GPU)
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bidsxai.models.registry import get_architecture
from bidsxai.template import load_template
from bidsxai.training.augment import augmenter
from bidsxai.training.cache import MappedArrays
from bidsxai.training.crop_box import brain_crop
from bidsxai.training.dataset import VolumeDataset
from bidsxai.training.loop import TrainOptions, call, make_optimiser
from bidsxai.training.slices import SliceDataset


def step_rate(model, x, y, covariates, device, precision, steps):
    """Samples per second of full training steps on one fixed batch (after one warm-up step)."""
    model.to(device).train()
    optimiser = make_optimiser(model, TrainOptions(optimiser="adamw", learning_rate=1e-4))
    amp = precision == "amp"
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    x, y, covariates = x.to(device), y.to(device), covariates.to(device)

    def one():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(
            device.type,
            dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
            enabled=amp,
        ):
            logits = call(model, x, covariates)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - start)


def loader_rate(dataset, batch, workers, batches):
    """Samples per second the DataLoader delivers (after its first batch)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(iterator)[0])
    return n / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precisions", help="comma-separated fp32, amp")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--slice-size", type=int, default=256)
    p.add_argument("--batch3d", type=int, default=4)
    p.add_argument("--batch2d", type=int, default=16)
    args = p.parse_args()
    device = torch.device(args.device)
    precisions = (args.precisions or ("fp32,amp" if device.type == "cuda" else "fp32")).split(",")
    torch.manual_seed(0)
    shape = [hi - lo for lo, hi in brain_crop(load_template(2.0).brain_mask)]
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "crop": shape,
    }
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(24):
            paths.append(Path(folder) / f"{i}.npy")
            np.save(
                paths[-1],
                np.random.default_rng(i).random((3, *shape), dtype=np.float32).astype(np.float16),
            )
        arrays, labels = MappedArrays(paths), np.arange(24) % 2
        volumes = VolumeDataset(
            arrays, labels, covariates=np.full((24, 1), 45.0), augment=augmenter("volume-affine")
        )
        slices = SliceDataset(
            arrays,
            labels,
            list(range(10, shape[2] - 10)),
            args.slice_size,
            augment=augmenter("slice-affine"),
        )
        cases = {
            "gamer_mril": (
                get_architecture("gamer_mril").build(in_channels=3, n_classes=2, input_shape=shape),
                torch.rand(args.batch3d, 3, *shape),
                torch.full((args.batch3d, 1), 45.0),
                volumes,
                args.batch3d,
            ),
            "vgg19_gap": (
                get_architecture("vgg19_gap").build(in_channels=3, n_classes=2, input_shape=None),
                torch.rand(args.batch2d, 3, args.slice_size, args.slice_size),
                torch.zeros(args.batch2d, 0),
                slices,
                args.batch2d,
            ),
        }
        for name, (model, x, covariates, dataset, batch) in cases.items():
            y = torch.arange(len(x)) % 2
            row = {"batch": batch}
            for precision in precisions:
                row[f"train_{precision}_samples_per_s"] = step_rate(
                    model, x, y, covariates, device, precision, args.steps
                )
                print(json.dumps({name: row}), flush=True)
            for workers in (0, args.workers):
                row[f"loader_{workers}_workers_samples_per_s"] = loader_rate(
                    dataset, batch, workers, 4
                )
                print(json.dumps({name: row}), flush=True)
            results[name] = row
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
