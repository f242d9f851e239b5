"""Model bundles: ``model.json`` + one ``<member>.safetensors`` per cross-validation fold model;
loading never unpickles anything.

model.json records the architecture and its arguments, the classes, the input specification
(space, resolution, contrasts, normalisation, crop box), the fold assignment, the metrics and, for
every member, its weights file and sha256, which is checked before the weights are read. The
top-level ``weights``/``sha256`` name the final model (used for subjects outside the cohort); when
the final model is the fold models' ensemble (``models.ensemble``), ``ensemble`` lists its members
and the top-level ``sha256`` is the ensemble's digest of theirs, with no weights file of its own.
"""

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from bidsxai.atomic import atomic_path, write_json
from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.registry import get_architecture
from bidsxai.outputs import (
    ENSEMBLE,
    bundle_dir,
    describe_collision,
    ensemble_members,
    label_collisions,
    member_name,
)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensemble_sha256(digests):
    """The fold models' ensemble's identity in sidecars and reports: the sha256 of its members'
    weight digests, in member order, joined by newlines."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def save_bundle(folder, models, meta, final):
    """Write every member's weights ({name: model}), then model.json; returns the final meta.
    ``final``: a member's name, or ``ENSEMBLE`` for the ensemble of the fold models."""
    from safetensors.torch import save_file

    folder = Path(folder)
    members = {}
    for name, model in models.items():
        path = folder / f"{name}.safetensors"
        with atomic_path(path) as tmp:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp)
            )
        members[name] = {"weights": path.name, "sha256": sha256_of(path)}
    if final == ENSEMBLE:
        chosen = ensemble_members(members)
        identity = {
            "ensemble": chosen,
            "sha256": ensemble_sha256(members[n]["sha256"] for n in chosen),
        }
    else:
        identity = members[final]
    meta = dict(meta, members=members, final_member=final, **identity)
    write_json(folder / "model.json", meta)
    return meta


def resolve_bundle(name_or_path, output_dir):
    """A bundle folder from a path or a name under OUTPUT_DIR/models/."""
    candidates = [Path(name_or_path), bundle_dir(output_dir, name_or_path)]
    for folder in candidates:
        if (folder / "model.json").is_file():
            return folder
    raise NoInputError(
        f"--model {name_or_path}: no model bundle (model.json) found at "
        f"{candidates[0]} or {candidates[1]}"
    )


def read_meta(folder):
    """model.json, refusing bundles of an unknown architecture."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise NoInputError(f"{folder}/model.json: unreadable ({exc})") from None
    if "external" in meta:  # imported by bidsxai-import-model: its card says what it reads
        return meta
    try:
        get_architecture(meta["architecture"])
    except KeyError as exc:
        raise NoInputError(f"{folder}: {exc.args[0]}") from None
    return meta


def grid_of(template):
    """What a bundle records of its template's grid: voxels (shape) and world position (affine)."""
    return {"shape": list(template.shape), "affine": np.round(template.affine, 4).tolist()}


def check_space(meta, template):
    """Refuse a bundle trained on images in another template space or grid than this run's."""
    trained = meta.get("input", {}).get("space")
    name = meta.get("name")
    if trained != template.space:
        raise UsageError(
            f"--model {name}: trained on images in space {trained}, but this run "
            f"preprocesses into {template.space}; give --output-spaces {trained} or train the "
            "model again on this run's outputs"
        )
    if meta["input"].get("grid") != grid_of(template):
        raise UsageError(
            f"--model {name}: trained on a {trained} grid other than this run's "
            f"({template.resolution:g} mm, shape {list(template.shape)}); train the model again "
            "on this run's outputs"
        )


def check_class_labels(meta):
    """Refuse a bundle whose class names share a file label (trained before such sets were
    refused): one class's heatmaps would overwrite another's."""
    collisions = label_collisions(meta.get("classes", []))
    if collisions:
        raise UsageError(
            f"--model {meta.get('name')}: {describe_collision(collisions[0])}; "
            "retrain with class names that differ in letters or digits"
        )


def load_member(folder, meta, member=None, device="cpu"):
    """One member's model in eval mode (the final model by default), after its sha256 check."""
    from safetensors.torch import load_file

    entry = (
        meta.get("members", {}).get(member)
        if member
        else {"weights": meta.get("weights"), "sha256": meta.get("sha256")}
    )
    if entry is None or not re.fullmatch(r"[\w.-]+", str(entry.get("weights"))):
        raise NoInputError(f"{folder}: model.json names no usable weights for member {member}")
    weights = Path(folder) / entry["weights"]
    if not weights.is_file() or sha256_of(weights) != entry.get("sha256"):
        raise NoInputError(
            f"{folder}: weights {weights.name} missing or their sha256 does not match "
            "model.json; refusing to load"
        )
    if "external" in meta:
        from bidsxai.models.external import ExternalModel, load_network

        network = load_network(meta["external"], folder)
        one = meta["external"]["format"] == "export"
        covariates = len(meta["card"].get("covariates", []))
        return ExternalModel(network, meta["card"]["output"], one, covariates).to(device).eval()
    from safetensors import SafetensorError

    try:
        model = get_architecture(meta["architecture"]).build(**meta["architecture_args"])
        model.load_state_dict(load_file(str(weights), device="cpu"))
    except (SafetensorError, RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise NoInputError(f"{folder}: weights {weights.name} are unreadable ({reason})") from None
    return model.to(device).eval()


def member_for(meta, subject):
    """(member name, split, why) of the model that explains ``subject``: a cohort subject gets the
    fold model of repeat 1 that held it out, others the final model; an imported model explains
    every subject, in sample for those its card names as trained on."""
    if "external" in meta:
        if subject in meta["card"].get("trained_on", []):
            return (
                "external",
                "in-sample",
                "the model's card names this subject among those it trained on: its "
                "explanations are in-sample",
            )
        return (
            "external",
            "external",
            "not among the subjects the model's card names as trained on: explained by the "
            "imported model",
        )
    place = (meta.get("assignments") or [{}])[0].get(subject)
    final = meta.get("final_member")
    if isinstance(place, int):
        return (
            member_name(1, place),
            f"fold-{place}",
            f"cross-validation fold {place} (repeat 1): explained by that fold's model, which "
            "never trained on this subject",
        )
    if final == ENSEMBLE:
        described = (
            f"the ensemble of the {len(meta['ensemble'])} fold models, whose probabilities and "
            "maps are averaged"
        )
    else:
        described = final
    if place == "test":
        return (
            final,
            "test",
            f"held-out test set: explained by the final model ({described}), which never trained "
            "on it",
        )
    return (
        final,
        "not-in-training",
        f"not in the training cohort: explained by the final model ({described})",
    )


class BundleModels:
    """A bundle's member models, each loaded (and sha256-checked) once, when first needed."""

    def __init__(self, folder, device):
        self.folder, self.device = folder, device
        self.meta = read_meta(folder)
        self._models = {}

    def get(self, member):
        if member == ENSEMBLE:
            from bidsxai.models.ensemble import FoldEnsemble

            return FoldEnsemble({n: self.get(n) for n in self.meta["ensemble"]}).eval()
        if member not in self._models:
            self._models[member] = load_member(self.folder, self.meta, member, self.device)
        return self._models[member]

    def sha256(self, member):
        members = self.meta.get("members", {})
        return members[member]["sha256"] if member in members else self.meta["sha256"]

    def representative(self):
        """A single network of the bundle, for what needs one (a layer's name, a dry run): the final
        model, or the ensemble's first member."""
        return self.get((self.meta.get("ensemble") or [self.meta.get("final_member")])[0])
