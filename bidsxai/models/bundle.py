"""Model bundles: ``model.json`` + ``weights.safetensors``; loading never unpickles anything.

model.json records the architecture and its arguments, the classes, the input specification
(space, resolution, contrasts, normalisation, crop box), the split, the metrics and the sha256 of
the weights file, which is checked before the weights are read.
"""

import hashlib
import json
from pathlib import Path

from bidsxai.atomic import atomic_path, write_json
from bidsxai.errors import NoInputError
from bidsxai.models.registry import get_architecture

WEIGHTS = "weights.safetensors"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(folder, model, meta):
    """Write weights then model.json (with the weights' sha256); returns the final meta."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    meta = dict(meta, weights=WEIGHTS, sha256=sha256_of(folder / WEIGHTS))
    write_json(folder / "model.json", meta)
    return meta


def resolve_bundle(name_or_path, output_dir):
    """A bundle folder from a path or a name under OUTPUT_DIR/models/."""
    candidates = [Path(name_or_path), Path(output_dir) / "models" / str(name_or_path)]
    for folder in candidates:
        if (folder / "model.json").is_file():
            return folder
    raise NoInputError(f"--model {name_or_path}: no model bundle (model.json) found at "
                       f"{candidates[0]} or {candidates[1]}")


def load_bundle(folder, device="cpu"):
    """(model in eval mode, meta); refuses unknown architectures and weights that fail the sha256."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise NoInputError(f"{folder}/model.json: unreadable ({exc})") from None
    try:
        arch = get_architecture(meta["architecture"])
    except KeyError as exc:
        raise NoInputError(f"{folder}: {exc.args[0]}") from None
    weights = folder / meta.get("weights", WEIGHTS)
    if not weights.is_file() or sha256_of(weights) != meta.get("sha256"):
        raise NoInputError(f"{folder}: weights missing or their sha256 does not match model.json; "
                           "refusing to load")
    model = arch.build(**meta["architecture_args"])
    model.load_state_dict(load_file(str(weights), device="cpu"))
    return model.to(device).eval(), meta
