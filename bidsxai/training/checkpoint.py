"""Training that resumes: every finished fold model is kept at once, and the fold in progress
after every epoch, so that the same ``train`` command run again after SIGTERM (a scheduler's time
limit) or a kill continues from the last epoch it finished, with the same random state.

The files live in ``OUTPUT_DIR/cache/training/<bundle>/`` and are written atomically; each carries
the run's key (a hash of everything that decides the training: its options, the cohort and its
folds, the input cache, the architecture, the processes), so a changed command never continues
from another's state: it starts again. They are read with ``torch.load(weights_only=True)``, which
unpickles no code, and removed once the bundle is written.

What makes it exact on CPU: the global torch generator (dropout, augmentation without loader
workers), the data loader's generator (the workers' seeds), the optimiser's and the loss scaler's
state, the early-stopping counters and the selected epoch's weights are all restored; the sampler
draws from (seed, epoch) alone.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from bidsxai.atomic import atomic_path
from bidsxai.logs import event


def run_key(record):
    """The key of a training run: a hash of a JSON-able record of what decides it."""
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoints:
    """The checkpoints of one training run (``key``) in ``folder``, for one process (``rank``)."""

    def __init__(self, folder, key, rank=0, world=1):
        self.folder, self.key = Path(folder), key
        self.suffix = f".rank-{rank}" if world > 1 else ""

    def _path(self, member, kind):
        return self.folder / f"{member}.{kind}{self.suffix}.pt"

    def _save(self, path, content):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"key": self.key, **content}, tmp)

    def _load(self, path):
        if not path.is_file():
            return None
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a file from another version or damaged: train that part again
            event("checkpoint_unreadable", path=str(path), reason=f"{type(exc).__name__}: {exc}")
            return None
        if content.get("key") != self.key:
            event("checkpoint_of_another_run", path=str(path))
            return None
        return content

    def save_epoch(self, member, state):
        """The fold in progress after an epoch (``state``: tensors, numbers, lists, dicts)."""
        self._save(self._path(member, "in-progress"), state)

    def load_epoch(self, member):
        return self._load(self._path(member, "in-progress"))

    def save_member(self, member, record):
        """A finished fold model: its weights and what it predicted (``record``)."""
        self._save(self._path(member, "finished"), record)
        self._path(member, "in-progress").unlink(missing_ok=True)

    def load_member(self, member):
        return self._load(self._path(member, "finished"))

    def remove(self):
        """Once the bundle is written, the checkpoints are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)


def rng_state(generator):
    """The random state a resumed epoch needs: the global generators' and the loader's."""
    state = {"torch": torch.get_rng_state(), "loader": generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state, generator):
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def as_tensors(arrays):
    """numpy arrays (of any nesting in a dict) as tensors, bit for bit, for ``weights_only``."""
    if isinstance(arrays, dict):
        return {k: as_tensors(v) for k, v in arrays.items()}
    return torch.from_numpy(np.ascontiguousarray(arrays))


def as_arrays(tensors):
    if isinstance(tensors, dict):
        return {k: as_arrays(v) for k, v in tensors.items()}
    return tensors.numpy()
