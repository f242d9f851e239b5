"""--device auto|cpu|cuda[:N] to a torch device, with a clear error when CUDA is not there."""

import torch

from bidsxai.errors import UsageError


def pick_device(name):
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
        return device
    raise UsageError(f"--device must be auto, cpu or cuda[:N]; got {name!r}")
