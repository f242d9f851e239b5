"""The reference template, served from the copy that ships inside nilearn (nothing is downloaded).

nilearn's documentation calls its MNI152 copy the 2009a *asymmetric* template, but the volume
(and its grey-matter, white-matter and brain-mask maps) equals its own left-right mirror image
voxel for voxel, about x = 0: it is the symmetric release, TemplateFlow's ``MNI152NLin2009aSym``
(a test mirrors it).
Images are resampled to the requested isotropic resolution with the template's origin kept, so
every ``res-<r>`` grid shares world coordinates with the 1 mm original.
"""

from dataclasses import dataclass
from functools import lru_cache

import nibabel as nib
import numpy as np

SPACE = "MNI152NLin2009aSym"


@dataclass(frozen=True)
class Template:
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
        img.header.set_qform(self.affine, code=4)  # 4 = MNI152
        img.header.set_sform(self.affine, code=4)
        img.header.set_xyzt_units("mm", "sec")
        return img


@lru_cache(maxsize=1)
def _template_1mm():
    from nilearn import datasets

    t1 = datasets.load_mni152_template()
    maps = [t1] + [
        load()
        for load in (
            datasets.load_mni152_gm_template,
            datasets.load_mni152_wm_template,
            datasets.load_mni152_brain_mask,
        )
    ]
    return t1.affine.copy(), [m.get_fdata(dtype=np.float32) for m in maps]


def _downsample(volume, resolution, shape):
    """Anti-aliased linear resampling of a 1 mm volume onto the ``resolution`` grid (same
    origin)."""
    from scipy import ndimage

    if resolution == 1.0:
        return volume
    smooth = ndimage.gaussian_filter(volume, sigma=0.42 * resolution) if resolution > 1 else volume
    return ndimage.affine_transform(
        smooth, np.diag(np.full(3, resolution)), output_shape=shape, order=1
    )


@lru_cache(maxsize=4)
def load_template(resolution=2.0):
    """The template, its tissue probabilities and brain mask at ``resolution`` mm."""
    res = float(resolution)
    if not res > 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    affine_1mm, (t1, gm, wm, mask) = _template_1mm()
    shape = tuple(int(np.ceil(n / res)) for n in t1.shape)
    affine = affine_1mm.copy()
    affine[:3, :3] = np.diag(np.full(3, res))
    t1w, gmd, wmd, maskd = (_downsample(v, res, shape) for v in (t1, gm, wm, mask))
    t1w = np.clip(t1w, 0, None) / t1w.max()
    gmd, wmd = np.clip(gmd, 0, 1), np.clip(wmd, 0, 1)
    brain = maskd > 0.5
    csf = np.where(brain, np.clip(1.0 - gmd - wmd, 0, 1), 0).astype(np.float32)
    return Template(res, affine, t1w.astype(np.float32), gmd, wmd, csf, brain)
