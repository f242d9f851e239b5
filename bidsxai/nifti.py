"""Read a NIfTI image whole, or say in one line why it cannot be read: for the input's images
(``preprocess.conform``) and for the preprocessed images a later stage reads back from
OUTPUT_DIR (the model's input, the quality gate, the subject report)."""

import nibabel as nib
import numpy as np

from bidsxai.errors import UnreadableImageError


def read_image(path):
    """(image, float32 data) of a NIfTI file, every byte read (which finds truncation); one-line
    ``UnreadableImageError`` (exit 66) for a file nibabel cannot read."""
    try:
        img = nib.load(str(path))
        return img, np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise UnreadableImageError(
            f"{path}: not a readable NIfTI image ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'})"
        ) from None
