"""Where a template's files come from: the TemplateFlow home, as TemplateFlow lays it out.

A template is read from ``$TEMPLATEFLOW_HOME`` (default ``~/.cache/templateflow``, TemplateFlow's
own rule) when its files are there. When they are not, TemplateFlow's API (``templateflow.api``)
is asked for them, which downloads them where a network is reachable; a template TemplateFlow
does not know is a usage error (exit 64), one it knows but cannot provide is missing input
(exit 66).

The default space, ``MNI152NLin2009aSym``, never needs a network: a home that lacks it is seeded
from the copy inside nilearn. That copy is TemplateFlow's 2009a symmetric template on a larger
field of view (197 x 233 x 189 voxels from (-98, -134, -72) mm); cropping 2 voxels from each
side in x and y and 2 from the top, and padding 6 empty slices below, puts it voxel for voxel on
TemplateFlow's ``res-1`` grid (193 x 229 x 193 from (-96, -132, -78) mm), without interpolation.
The crop removes no brain (a test checks this).
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsxai.atomic import save_nifti, write_json
from bidsxai.errors import NoInputError, UsageError
from bidsxai.outputs import templateflow_files, templateflow_folder, templateflow_path

DEFAULT_SPACE = "MNI152NLin2009aSym"

# Spaces that fMRIPrep accepts but that are not a template grid.
NONSTANDARD_SPACES = ("T1w", "T2w", "anat", "func", "run", "fsnative", "fsaverage", "fsLR")

# The crop (start) and pad (before, after) per axis from nilearn's grid to TemplateFlow's res-1.
_NILEARN_TO_RES1 = ((2, 2, (0, 0)), (2, 2, (0, 0)), (0, 2, (6, 0)))


@dataclass(frozen=True)
class TemplateFiles:
    """The files of one template at its finest resolution."""

    space: str
    t1w: Path  # desc-brain_T1w where there is one, else the T1w (masked on loading)
    brain_mask: Path
    gm: Path
    wm: Path

    @property
    def skull_stripped(self):
        return "_desc-brain_T1w" in self.t1w.name


def templateflow_home():
    """``$TEMPLATEFLOW_HOME``, else ``~/.cache/templateflow`` (TemplateFlow's own default)."""
    home = os.environ.get("TEMPLATEFLOW_HOME")
    return Path(home) if home else Path.home() / ".cache" / "templateflow"


def check_space_name(name):
    """Refuse, with one line, a space that cannot be a template (checked when parsing options)."""
    if ":" in name:
        raise UsageError(
            f"--output-spaces {name}: give the template's name only; the grid is set with "
            "--resolution"
        )
    if name in NONSTANDARD_SPACES:
        raise UsageError(
            f"--output-spaces {name}: bidsxai writes its outputs on a template's grid; give a "
            f"TemplateFlow template such as {DEFAULT_SPACE} or MNI152NLin2009cAsym"
        )
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise UsageError(f"--output-spaces {name}: not a TemplateFlow template name")
    return name


def _local_files(space):
    """The template's files in the home at the finest resolution that has them all, or None."""
    home = templateflow_home()
    brain = templateflow_files(home, space, "desc-brain_T1w")
    kinds = {
        "t1w": {**templateflow_files(home, space, "T1w"), **brain},
        "brain_mask": templateflow_files(home, space, "desc-brain_mask"),
        "gm": templateflow_files(home, space, "label-GM_probseg"),
        "wm": templateflow_files(home, space, "label-WM_probseg"),
    }
    complete = set.intersection(*(set(found) for found in kinds.values()))
    if not complete:
        return None
    res = min(complete, key=int)
    return TemplateFiles(space, **{k: found[res] for k, found in kinds.items()})


def _fetch(space):
    """Ask TemplateFlow's API for the 1 mm files (a download where a network is reachable)."""
    api = _client(templateflow_home())
    known = api.templates()
    if space not in known:
        raise UsageError(
            f"--output-spaces {space}: not a TemplateFlow template (known: "
            f"{', '.join(sorted(known))})"
        )
    queries = (
        {"suffix": "T1w", "desc": "brain"},
        {"suffix": "T1w", "desc": None},
        {"suffix": "mask", "desc": "brain"},
        {"suffix": "probseg", "label": "GM"},
        {"suffix": "probseg", "label": "WM"},
    )
    try:
        for query in queries:
            if api.ls(space, resolution=1, extension=".nii.gz", **query):
                api.get(space, resolution=1, extension=".nii.gz", **query)
    except Exception as exc:  # noqa: BLE001 - requests, OSError and TemplateFlow's RuntimeError
        raise NoInputError(
            f"--output-spaces {space}: not in the TemplateFlow home {templateflow_home()} and "
            f"it cannot be fetched ({type(exc).__name__}); set TEMPLATEFLOW_HOME to a home that "
            "holds it"
        ) from None


def _crop_to_res1(image):
    """nilearn's 1 mm grid -> TemplateFlow's res-1 grid: integer crop and pad, values kept."""
    data = np.asarray(image.dataobj)
    for axis, (start, stop, pad) in enumerate(_NILEARN_TO_RES1):
        index = [slice(None)] * 3
        index[axis] = slice(start, data.shape[axis] - stop)
        data = np.pad(data[tuple(index)], [pad if a == axis else (0, 0) for a in range(3)])
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([s - p[0] for s, _, p in _NILEARN_TO_RES1])
    out = nib.Nifti1Image(data, affine)
    out.set_data_dtype(data.dtype)
    out.header.set_xyzt_units("mm")
    out.header.set_qform(affine, code=4)
    out.header.set_sform(affine, code=4)
    return out


def _client(home):
    """TemplateFlow's API on ``home`` (the module-level one keeps the home of its import)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # "populating a new stub", for its home
        from templateflow.client import TemplateFlowClient

    return TemplateFlowClient(home)


def _install_skeleton(home):
    """TemplateFlow's own empty layout of every template (a local unzip, no download), so that the
    seeded home still lets TemplateFlow fetch the others."""
    _client(home).cache.ensure()


def seed_default_space(home=None):
    """Write nilearn's MNI152 2009a symmetric template into a TemplateFlow home, named as
    TemplateFlow names it (brain-extracted T1w, brain mask, GM and WM probability at res-1)."""
    from nilearn import datasets

    home = Path(home or templateflow_home())
    if not home.is_dir() or not any(home.iterdir()):
        _install_skeleton(home)
    folder = templateflow_folder(home, DEFAULT_SPACE)
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "desc-brain_T1w": datasets.load_mni152_template(),
        "desc-brain_mask": datasets.load_mni152_brain_mask(),
        "label-GM_probseg": datasets.load_mni152_gm_template(),
        "label-WM_probseg": datasets.load_mni152_wm_template(),
    }
    for kind, image in images.items():
        save_nifti(_crop_to_res1(image), templateflow_path(home, DEFAULT_SPACE, "1", kind))
    description = folder / "template_description.json"
    if not description.is_file() or not description.stat().st_size:
        write_json(
            description,
            {
                "Name": "ICBM 152 Nonlinear Symmetrical template version 2009a",
                "Identifier": DEFAULT_SPACE,
                "res": {
                    "1": {
                        "origin": [-96.0, -132.0, -78.0],
                        "shape": [193, 229, 193],
                        "zooms": [1.0, 1.0, 1.0],
                    }
                },
                "GeneratedBy": [{"Name": "bidsxai", "Description": "nilearn's MNI152 copy"}],
            },
        )
    return folder


def template_files(space=DEFAULT_SPACE):
    """The files of ``space``: from the home, else seeded (default space) or fetched."""
    found = _local_files(space)
    if found is None and space == DEFAULT_SPACE:
        try:
            seed_default_space()
        except OSError as exc:
            raise NoInputError(
                f"cannot write {DEFAULT_SPACE} into the TemplateFlow home "
                f"{templateflow_home()} ({exc.strerror}); set TEMPLATEFLOW_HOME to a writable "
                "folder"
            ) from None
        found = _local_files(space)
    if found is None:
        _fetch(space)
        found = _local_files(space)
    if found is None:
        raise NoInputError(
            f"--output-spaces {space}: the TemplateFlow home {templateflow_home()} lacks its "
            "T1w, desc-brain mask or GM/WM probseg images"
        )
    return found


def describe(space):
    """The template's name from its ``template_description.json``, as a phrase for the methods
    text ("... template")."""
    path = templateflow_folder(templateflow_home(), space) / "template_description.json"
    try:
        name = json.loads(path.read_text()).get("Name") or space
    except (OSError, ValueError):
        name = space
    return name if "template" in name.lower() else f"{name} template"
