"""The reference template on the model's grid: T1w, tissue probabilities and brain mask.

The files come from the TemplateFlow home (``bidsxai.template_files``); the default space is
``MNI152NLin2009aSym``, seeded from nilearn's copy, which equals its own left-right mirror image
voxel for voxel about x = 0 (a test mirrors it), so it is the symmetric 2009a release.
Images are resampled from the template's finest resolution to the requested isotropic one with
the origin kept, so every ``res-<r>`` grid shares world coordinates with the finest one.
"""

from dataclasses import dataclass
from functools import lru_cache

import nibabel as nib
import numpy as np

from bidsxai.template_files import DEFAULT_SPACE, template_files, templateflow_home


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


@lru_cache(maxsize=4)
def _load_template(resolution, space, home):
    res = resolution
    if not res > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    affine_fine, (t1, gm, wm, mask) = _template_finest(space, home)
    zoom = float(np.sqrt((affine_fine[:3, :3] ** 2).sum(axis=0))[0])
    factor = res / zoom
    shape = tuple(int(np.ceil(n / factor)) for n in t1.shape)
    affine = affine_fine.copy()
    affine[:3, :3] = affine_fine[:3, :3] * factor
    t1w, gmd, wmd, maskd = (_downsample(v, factor, shape) for v in (t1, gm, wm, mask))
    brain = maskd > 0.5
    t1w = np.clip(t1w, 0, None) / t1w.max()
    gmd, wmd = np.clip(gmd, 0, 1), np.clip(wmd, 0, 1)
    csf = np.where(brain, np.clip(1.0 - gmd - wmd, 0, 1), 0).astype(np.float32)
    return Template(space, res, affine, t1w.astype(np.float32), gmd, wmd, csf, brain)
