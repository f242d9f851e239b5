"""sMRIPrep's or fMRIPrep's anatomical preprocessing of a session (``--derivatives smriprep=PATH``),
found and checked before bidsxai reuses it instead of its own N4, skull stripping and template
registration.

The checks make each mismatch one line for its session: a subject the dataset does not have, files
made from another subject's T1w, no transform to the run's template (or one only to another
template), and a composite transform that ANTs cannot read.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ants

from bidsxai.errors import NoInputError
from bidsxai.outputs import ANATOMY_DATASETS, file_subject, find_anatomy, session_key, sidecar_path

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Anatomy:
    """Checked anatomical derivatives of one session: ``files`` (``outputs.AnatomyFiles``) from the
    dataset named ``dataset`` at ``root``."""

    dataset: str
    root: Path
    files: object

    @property
    def paths(self):
        return (self.files.t1w, self.files.brain_mask, self.files.transform)

    @property
    def generator(self):
        """Who made it, for sidecars and the report: sMRIPrep or fMRIPrep."""
        return "fMRIPrep" if self.dataset == "fmriprep" else "sMRIPrep"


def session_anatomy(derivatives, inputs, space):
    """The ``Anatomy`` of a session when ``derivatives`` names an sMRIPrep/fMRIPrep dataset (None
    otherwise); ``NoInputError`` where that dataset cannot serve this session."""
    named = [(name, path) for name, path in derivatives.items() if name in ANATOMY_DATASETS]
    if not named:
        return None
    name, root = named[0]
    found = find_anatomy(root, inputs.subject, inputs.session, space)
    if found is None:
        raise NoInputError(
            f"{inputs.key}: --derivatives {name}={root} has no desc-preproc_T1w of this subject"
        )
    if not found.brain_mask.is_file():
        raise NoInputError(f"{inputs.key}: {found.brain_mask.name} is missing in {root}")
    _check_subject(found, inputs.subject)
    if found.transform is None:
        other = f" (it has {', '.join(found.spaces)}; run with --output-spaces one of them)"
        raise NoInputError(
            f"{inputs.key}: no transform from T1w to {space} in {found.t1w.parent}"
            + (other if found.spaces else "")
        )
    check_transform(found.transform)
    return Anatomy(name, Path(root), found)


def _check_subject(found, subject):
    """Refuse files whose sidecars say they were made from another subject's T1w (RawSources in
    older fMRIPrep, Sources as BIDS URIs in newer)."""
    for image in (found.t1w, found.brain_mask):
        sidecar = sidecar_path(image)
        try:
            entries = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        except ValueError:
            raise NoInputError(f"{sidecar.name}: not valid JSON") from None
        sources = entries.get("Sources", []) + entries.get("RawSources", [])
        others = [s for s in sources if file_subject(s) not in (None, subject)]
        if others:
            raise NoInputError(
                f"{image.name}: made from {Path(str(others[0])).name}, not from an image of "
                f"{session_key(subject, None)}"
            )


def check_transform(path):
    """``NoInputError`` unless ANTs can read ``path`` as a transform. ITK writes its reasons to the
    process's stderr, so they are kept out of the user's terminal and the first one is quoted."""
    with open(path, "rb") as handle:
        if handle.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise NoInputError(f"{Path(path).name}: not an ANTs composite transform (not HDF5)")
    with _stderr_captured() as captured:
        try:
            ants.read_transform(str(path))
            return
        except (RuntimeError, ValueError):
            lines = captured()
    # HDF5's trace ends with the innermost cause, e.g. "truncated file: eof = 6208, ...".
    causes = [line.split("(): ", 1)[1].strip() for line in lines if "(): " in line]
    reason = causes[-1] if causes else "not a transform ITK knows"
    raise NoInputError(f"{Path(path).name}: ANTs cannot read this transform ({reason[:120]})")


@contextmanager
def _stderr_captured():
    """Redirect file descriptor 2 (where C++ libraries write) to a temporary file; yields a
    function that returns its lines."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:

        def lines():
            sink.seek(0)
            return sink.read().splitlines()

        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
