"""The reference template on the model's grid: T1w, tissue probabilities and brain mask.

The files come from the TemplateFlow home (``bidsxai.template_files``); the default space is
``MNI152NLin2009aSym``, seeded from nilearn's copy, which equals its own left-right mirror image
voxel for voxel about x = 0 (a test mirrors it), so it is the symmetric 2009a release.
Images are resampled from the template's finest resolution to the requested isotropic one with
the origin kept, so every ``res-<r>`` grid shares world coordinates with the finest one. The
resampled grids are kept in ``$XDG_CACHE_HOME/bidsxai/templates`` (default ``~/.cache``), named
by what they were computed from: the source files (path, size, time) and this module's code. The
resampling takes a second or two at 2 mm, which every run would otherwise pay before its work,
a report's rewrite included. Where that folder cannot be written, the grid is computed each time.
"""

import hashlib
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsxai.atomic import atomic_path
from bidsxai.outputs import template_cache_path
from bidsxai.template_files import DEFAULT_SPACE, template_files, templateflow_home

_ARRAYS = ("t1w", "gm", "wm", "csf", "brain_mask")


@dataclass(frozen=True)
class Template:
    space: str
    resolution: float
    affine: np.ndarray
    t1w: np.ndarray  # skull-stripped T1w intensities, 0..1
    gm: np.ndarray  # tissue probabilities, 0..1
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray  # bool

    @property
    def shape(self):
        return self.t1w.shape

    def image(self, data, dtype=np.float32):
        """A NIfTI image on this template's grid."""
        img = nib.Nifti1Image(np.asarray(data, dtype=dtype), self.affine)
        code = 4 if self.space.startswith("MNI152") else 5  # 4 = MNI152, 5 = other template
        img.header.set_qform(self.affine, code=code)
        img.header.set_sform(self.affine, code=code)
        img.header.set_xyzt_units("mm", "sec")
        return img


@lru_cache(maxsize=2)
def _template_finest(space, home):
    """The template's affine and (T1w, GM, WM, brain mask) arrays at its finest resolution, read
    from the TemplateFlow ``home`` (part of the cache key: another home may hold another file)."""
    files = template_files(space)
    images = [nib.load(p) for p in (files.t1w, files.gm, files.wm, files.brain_mask)]
    t1, gm, wm, mask = (m.get_fdata(dtype=np.float32) for m in images)
    if not files.skull_stripped:
        t1 = t1 * (mask > 0.5)
    return images[0].affine.copy(), [t1, gm, wm, mask]


def _downsample(volume, factor, shape):
    """Anti-aliased linear resampling onto a grid ``factor`` times coarser (same origin)."""
    from scipy import ndimage

    if factor == 1.0:
        return volume
    smooth = ndimage.gaussian_filter(volume, sigma=0.42 * factor) if factor > 1 else volume
    return ndimage.affine_transform(
        smooth, np.diag(np.full(3, factor)), output_shape=shape, order=1
    )


def load_template(resolution=2.0, space=DEFAULT_SPACE):
    """The template ``space``, its tissue probabilities and brain mask at ``resolution`` mm."""
    return _load_template(float(resolution), space, str(templateflow_home()))


def user_cache_dir(name):
    """``$XDG_CACHE_HOME/bidsxai/<name>`` (default ``~/.cache``): what bidsxai keeps between runs
    (resampled templates, report figures)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bidsxai" / name


def template_cache_dir():
    """Where resampled template grids are kept."""
    return user_cache_dir("templates")


def _cache_path(resolution, space):
    """The cache file of a grid, named by the space, the resolution and a digest of the source
    files' paths, sizes and times and of this module's code: a changed source or a changed
    resampling is a new file, never a stale one."""
    files = template_files(space)
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in (files.t1w, files.gm, files.wm, files.brain_mask):
        found = Path(path).resolve().stat()
        digest.update(f"{Path(path).resolve()}|{found.st_size}|{found.st_mtime_ns}".encode())
    return template_cache_path(template_cache_dir(), space, resolution, digest.hexdigest()[:16])


def _cached(resolution, space, path):
    try:
        with np.load(path) as saved:
            return Template(space, resolution, saved["affine"], *(saved[k] for k in _ARRAYS))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _keep(template, path):
    try:
        with atomic_path(path) as tmp:
            arrays = {k: getattr(template, k) for k in _ARRAYS}
            np.savez(tmp, affine=template.affine, **arrays)
    except OSError:
        pass  # an unwritable cache: the grid is computed again next time


@lru_cache(maxsize=4)
def _load_template(resolution, space, home):
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    path = _cache_path(resolution, space)
    template = _cached(resolution, space, path) if path.is_file() else None
    if template is None:
        template = _resampled(resolution, space, home)
        if resolution != _voxel_size(_template_finest(space, home)[0]):  # not a copy of a file
            _keep(template, path)
    return template


def _voxel_size(affine):
    return float(np.sqrt((affine[:3, :3] ** 2).sum(axis=0))[0])


def _resampled(resolution, space, home):
    res = resolution
    affine_fine, (t1, gm, wm, mask) = _template_finest(space, home)
    factor = res / _voxel_size(affine_fine)
    shape = tuple(int(np.ceil(n / factor)) for n in t1.shape)
    affine = affine_fine.copy()
    affine[:3, :3] = affine_fine[:3, :3] * factor
    t1w, gmd, wmd, maskd = (_downsample(v, factor, shape) for v in (t1, gm, wm, mask))
    brain = maskd > 0.5
    t1w = np.clip(t1w, 0, None) / t1w.max()
    gmd, wmd = np.clip(gmd, 0, 1), np.clip(wmd, 0, 1)
    csf = np.where(brain, np.clip(1.0 - gmd - wmd, 0, 1), 0).astype(np.float32)
    return Template(space, res, affine, t1w.astype(np.float32), gmd, wmd, csf, brain)
