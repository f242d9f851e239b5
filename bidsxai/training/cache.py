"""Model inputs cached once as float16 .npy files and memory-mapped by the data loaders.

Reading and cropping the preprocessed NIfTIs of every session each epoch would starve a GPU; the
cache holds each session's cropped, stacked contrasts once (half the bytes of float32), and every
DataLoader worker maps the files instead of copying the arrays. The key is the input specification
and the source files' sizes and modification times, so a re-preprocessed session is re-cached.
"""

import hashlib
import json

import numpy as np

from bidsxai.atomic import atomic_path
from bidsxai.outputs import input_cache_path, model_input_path
from bidsxai.training.dataset import load_inputs


def _key(out_dir, session, spec):
    sources = [
        model_input_path(
            out_dir, session.subject, session.session, c, spec["resolution"], spec["space"]
        )
        for c in spec["contrasts"]
    ]
    stamp = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sources]
    wanted = {k: spec[k] for k in ("space", "resolution", "contrasts", "crop", "normalisation")}
    return hashlib.sha256(json.dumps([wanted, stamp]).encode()).hexdigest()[:16]


def cache_inputs(out_dir, sessions, spec, cache_dir):
    """The cache file of every session (written when missing), in the order of ``sessions``."""
    paths = []
    for session in sessions:
        path = input_cache_path(
            cache_dir, session.subject, session.session, _key(out_dir, session, spec)
        )
        if not path.is_file():
            array = load_inputs(out_dir, session.subject, session.session, spec).astype(np.float16)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, array)
        paths.append(path)
    return paths


class MappedArrays:
    """A list of .npy files read through memory maps opened lazily in each process (a map does not
    survive pickling into a worker, a path does)."""

    def __init__(self, paths):
        self.paths = [str(p) for p in paths]
        self._maps = {}

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        if i not in self._maps:
            self._maps[i] = np.load(self.paths[i], mmap_mode="r")
        return self._maps[i]

    def __getstate__(self):
        return {"paths": self.paths, "_maps": {}}
