"""Atomic file writes: a reader never sees a half-written output.

Every output goes to a temporary file in the destination folder and is renamed into place, so an
interrupted run leaves either the old file or the new one, never a truncated one (and a hidden
temporary file that the next run removes, see ``bidsxai.scratch``).
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bidsxai.scratch import temp_file_prefix


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(
        prefix=temp_file_prefix(path.name.split(".")[0]), suffix=suffix, dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs are shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_nifti(img, path):
    """Save a nibabel image atomically (the temporary name keeps the .nii.gz suffix)."""
    with atomic_path(path) as tmp:
        img.to_filename(str(tmp))


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
