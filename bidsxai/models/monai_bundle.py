"""A MONAI bundle folder read as data: the network that ``configs/inference.json`` defines
(``network_def``), its weights in ``models/``, and the inputs and outputs that
``configs/metadata.json`` declares (``network_data_format``).

MONAI's own config parser evaluates ``$`` expressions, which are Python code. bidsxai reads the
network definition without evaluating anything: ``_target_`` must name a network of
``monai.networks.nets``, and an argument is a JSON value or an ``@name`` reference to another
top-level entry of the same file. A definition that needs code is refused with one line; such a
network comes in through ``--entry-point`` instead.
"""

import json
from pathlib import Path

from bidsxai.errors import NoInputError, UsageError

NETS_PREFIXES = ("monai.networks.nets.", "monai.networks.")
WEIGHT_FILES = ("models/model.safetensors", "models/model.pt")


def _read_json(path):
    if not path.is_file():
        raise NoInputError(f"{path}: no such file (a MONAI bundle has configs/ and models/)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NoInputError(f"{path}: not readable JSON ({exc})") from None


def _resolve(value, config, where, depth=0):
    """A JSON value with its ``@name`` references replaced; ``$`` expressions refused."""
    if isinstance(value, str) and value.startswith("$"):
        raise UsageError(
            f"{where}: {value!r} is a Python expression, which bidsxai does not evaluate; give "
            "plain values, or import the network with --entry-point"
        )
    if isinstance(value, str) and value.startswith("@"):
        name = value[1:]
        if name not in config or depth > 8:
            raise UsageError(f"{where}: {value!r} refers to no top-level entry of inference.json")
        return _resolve(config[name], config, where, depth + 1)
    if isinstance(value, list):
        return [_resolve(v, config, where, depth) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, config, where, depth) for k, v in value.items()}
    return value


def _network(config, where):
    """(name in monai.networks.nets, keyword arguments) of ``network_def``."""
    definition = config.get("network_def")
    if isinstance(definition, str) and definition.startswith("@"):
        definition = _resolve(definition, config, where)
    if not isinstance(definition, dict) or not isinstance(definition.get("_target_"), str):
        raise UsageError(f"{where}: network_def must be an object with a _target_")
    target = definition["_target_"]
    for prefix in NETS_PREFIXES:
        if target.startswith(prefix):
            target = target[len(prefix) :].removeprefix("nets.")
    if "." in target:
        raise UsageError(
            f"{where}: _target_ {definition['_target_']!r} is not a network of "
            "monai.networks.nets; import it with --entry-point"
        )
    special = sorted(k for k in definition if k.startswith("_") and k != "_target_")
    if special:
        raise UsageError(f"{where}: network_def's {special[0]} is not supported")
    args = {k: _resolve(v, config, f"{where} network_def.{k}") for k, v in definition.items()}
    del args["_target_"]
    return target, args


def _data_format(metadata, where):
    """{"in_channels", "spatial_shape", "out_channels"} of the first input and output."""
    declared = metadata.get("network_data_format")
    try:
        first_input = next(iter(declared["inputs"].values()))
        first_output = next(iter(declared["outputs"].values()))
        return {
            "in_channels": int(first_input["num_channels"]),
            "spatial_shape": list(first_input.get("spatial_shape") or []),
            "out_channels": int(first_output["num_channels"]),
        }
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError):
        raise UsageError(
            f"{where}: network_data_format needs inputs and outputs with num_channels"
        ) from None


def read_monai_bundle(folder):
    """{"network", "args", "weights", "format", "metadata"} of the MONAI bundle in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoInputError(f"{folder}: no such folder (a MONAI bundle)")
    metadata = _read_json(folder / "configs" / "metadata.json")
    config = _read_json(folder / "configs" / "inference.json")
    if not isinstance(metadata, dict) or not isinstance(config, dict):
        raise NoInputError(f"{folder}: configs/metadata.json and inference.json must be objects")
    name, args = _network(config, f"{folder.name}/configs/inference.json")
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if weights is None:
        raise NoInputError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)})")
    return {
        "network": name,
        "args": args,
        "weights": weights,
        "format": _data_format(metadata, f"{folder.name}/configs/metadata.json"),
        "metadata": {k: metadata[k] for k in ("name", "version", "authors") if k in metadata},
    }


def check_against_card(declared, card, where):
    """The bundle's declared channels and outputs against the card's, one line on a mismatch."""
    scores = 1 if card.output == "sigmoid" else len(card.classes)
    if declared["in_channels"] != len(card.channels):
        raise UsageError(
            f"{where}: its metadata declares {declared['in_channels']} input channels, the card "
            f"lists {len(card.channels)} ({', '.join(card.channels)})"
        )
    if declared["out_channels"] != scores:
        raise UsageError(
            f"{where}: its metadata declares {declared['out_channels']} output channels, the "
            f"card's classes and output {card.output!r} need {scores}"
        )
