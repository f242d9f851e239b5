"""Model inputs: preprocessed contrasts stacked as channels, cropped to the template's brain box."""

import numpy as np
import torch

from bidsxai.errors import NoInputError
from bidsxai.nifti import read_image
from bidsxai.normalisations import scaled_input
from bidsxai.outputs import TISSUE_INPUTS, model_input_path, session_key
from bidsxai.training.crop_box import crop


def load_inputs(out_dir, subject, session, spec):
    """(C, X, Y, Z) float32 array for one session, as the model's input spec describes (an
    imported min-max model's images taken to its card's range)."""
    channels = []
    for contrast in spec["contrasts"]:
        path = model_input_path(
            out_dir, subject, session, contrast, spec["resolution"], spec["space"]
        )
        if not path.is_file():
            flag = " with --tissue-maps" if contrast in TISSUE_INPUTS else ""
            raise NoInputError(
                f"{session_key(subject, session)}: no {contrast} at {path}; run the participant "
                f"level{flag} first"
            )
        channels.append(crop(read_image(path)[1], spec["crop"]))
    return scaled_input(np.stack(channels), spec)


class VolumeDataset(torch.utils.data.Dataset):
    """Whole volumes (C, X, Y, Z) from ``arrays`` (a list, an array or cached memory maps), read as
    float16 and served as float32, each with its label, loss weight and covariates ((N, K): age for
    GAMER-MRIL); ``augment`` (training only) transforms each served sample."""

    def __init__(self, arrays, labels, weights=None, covariates=None, augment=None):
        self.arrays = arrays
        self.labels = np.asarray(labels, np.int64)
        n = len(self.labels)
        self.weights = (
            np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
        )
        self.covariates = (
            np.zeros((n, 0), np.float32)
            if covariates is None
            else np.asarray(covariates, np.float32)
        )
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def sample(self, i):
        """The float32 tensor of sample i before augmentation."""
        return torch.from_numpy(np.asarray(self.arrays[i], np.float32))

    def __getitem__(self, i):
        x = self.sample(i)
        if self.augment is not None:
            x = self.augment(x)
        owner = self.owner(i)
        return (
            x,
            int(self.labels[i]),
            float(self.weights[owner]),
            torch.from_numpy(self.covariates[owner]),
        )

    def owner(self, i):
        """The volume sample i comes from (its weight and covariates are that subject's)."""
        return i

    def subject_labels(self):
        return self.labels

    def subject_probabilities(self, probabilities):
        """Per-sample probabilities -> per-subject ones (the same for whole volumes)."""
        return probabilities
