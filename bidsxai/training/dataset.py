"""Model inputs: preprocessed contrasts stacked as channels, cropped to the template's brain box."""

import nibabel as nib
import numpy as np
import torch

from bidsxai.errors import NoInputError
from bidsxai.preprocess.pipeline import preproc_path


def brain_crop(mask, margin=2):
    """[[lo, hi), ...] per axis around a boolean brain mask, widened by ``margin`` voxels."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append([max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[axis])])
    return box


def crop(volume, box):
    return volume[..., box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]]


def uncrop(volume, box, shape):
    """Place a cropped volume back into a zero volume of the full grid ``shape``."""
    full = np.zeros(tuple(volume.shape[:-3]) + tuple(shape), dtype=volume.dtype)
    full[..., box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]] = volume
    return full


def load_inputs(out_dir, subject, session, spec):
    """(C, X, Y, Z) float32 array for one session, as the model's input spec describes."""
    channels = []
    for contrast in spec["contrasts"]:
        path = preproc_path(out_dir, subject, session, contrast, spec["resolution"])
        if not path.is_file():
            raise NoInputError(f"sub-{subject}{'_ses-' + session if session else ''}: no "
                               f"preprocessed {contrast} at {path}; run the participant level first")
        channels.append(crop(np.asarray(nib.load(str(path)).dataobj, np.float32), spec["crop"]))
    return np.stack(channels)


class VolumeDataset(torch.utils.data.Dataset):
    """Volumes held once in memory as float16; optional left-right flips for training."""

    def __init__(self, volumes, labels, flip=False, seed=0):
        self.volumes = np.asarray(volumes, np.float16)
        self.labels = np.asarray(labels, np.int64)
        self.flip = flip
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.volumes[i].astype(np.float32)
        if self.flip and self.rng.random() < 0.5:
            x = x[:, ::-1].copy()  # axis 1 of (C, X, Y, Z) is left-right in RAS
        return torch.from_numpy(x), int(self.labels[i])
