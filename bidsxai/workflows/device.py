"""--device auto|cpu|cuda[:N] to a torch device, with a clear error when CUDA is not there.

On a GPU, fp32 means fp32: PyTorch lets cuDNN run fp32 convolutions in TF32 (10-bit mantissa) by
default, and measured on an H200 (``benchmarks/gpu_check.py``, docs/benchmarks.md) that moved
LRP maps by 3.8e-2 of their range from the CPU's and integrated gradients by 2.3e-2; with TF32
off, 3e-6 and 2.4e-3, for 0.20 s instead of 0.14 s for four methods. So TF32 is turned off for
matrix products and convolutions; ``--precision amp`` still trains in float16 autocast.
"""

import torch

from bidsxai.errors import UsageError


def pick_device(name):
    if name in (None, "auto"):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name == "cpu":
        device = torch.device("cpu")
    elif name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
    else:
        raise UsageError(f"--device must be auto, cpu or cuda[:N]; got {name!r}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device
