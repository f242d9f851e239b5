"""``bidsxai-import-model``: a bundle from a network trained elsewhere, so that ``participant
--model`` classifies and explains with it and the group level compares its maps.

  bidsxai-import-model --init-card card.json
  bidsxai-import-model OUT/models/mine --card card.json --monai DenseNet121 \\
      --args '{"spatial_dims": 3, "in_channels": 1, "out_channels": 2}' --weights model.pt
  bidsxai-import-model OUT/models/mine --card card.json --monai-bundle my_bundle/
  bidsxai-import-model OUT/models/mine --card card.json --torchscript model.ts
  bidsxai-import-model OUT/models/mine --card card.json --export model.pt2
  bidsxai-import-model OUT/models/mine --card card.json --entry-point mypkg.nets:build \\
      --weights model.safetensors

The model card (``models/card.py``) says what the network reads and what its outputs mean. The
network is built, given the card's input once (zeros of its shape), and must answer with one score
per class (one for a sigmoid); the CAM family's layer is found on that pass. The file read is
copied into the bundle with its sha256, which loading checks.

Exit codes: 0 done; 64 a wrong option, card field or network answer; 66 a file that is missing or
cannot be read as weights; 73 a bundle folder that cannot be written.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from bidsxai import __version__
from bidsxai.atomic import atomic_path, write_json
from bidsxai.errors import BidsxaiError, CannotCreateOutputError, NoInputError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see bidsxai-import-model --help)")


def _parser():
    p = _Parser(
        prog="bidsxai-import-model",
        description="Write a bidsxai model bundle from a network trained elsewhere.",
    )
    p.add_argument("bundle", type=Path, nargs="?", help="the bundle folder to write")
    p.add_argument("--card", type=Path, help="the model card (JSON; see --init-card)")
    p.add_argument("--init-card", type=Path, metavar="FILE", help="write a card to fill in, exit")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--monai", metavar="NAME", help="a network of monai.networks.nets")
    source.add_argument(
        "--entry-point",
        metavar="MODULE:FACTORY",
        help="a Python factory returning the network (runs that code)",
    )
    source.add_argument(
        "--monai-bundle",
        type=Path,
        metavar="FOLDER",
        help="a MONAI bundle folder (configs/metadata.json, configs/inference.json, models/)",
    )
    source.add_argument("--torchscript", type=Path, metavar="FILE", help="a TorchScript file")
    source.add_argument("--export", type=Path, metavar="FILE", help="a torch.export program (.pt2)")
    p.add_argument("--args", default="{}", help="JSON keyword arguments of --monai/--entry-point")
    p.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="the state dict of --monai/--entry-point: safetensors, or .pt/.pth read as weights "
        "only",
    )
    p.add_argument("--version", action="version", version=f"bidsxai {__version__}")
    return p


def _source(args):
    """(format, the network's name or None, the file to copy, keyword arguments, the MONAI
    bundle's record or None)."""
    try:
        kwargs = json.loads(args.args)
    except ValueError as exc:
        raise UsageError(f"--args: not JSON ({exc})") from None
    if not isinstance(kwargs, dict):
        raise UsageError("--args: a JSON object of keyword arguments")
    if args.monai_bundle:
        from bidsxai.models.monai_bundle import read_monai_bundle

        if args.weights is not None or args.args != "{}":
            raise UsageError("--monai-bundle reads its network and weights from the folder")
        bundle = read_monai_bundle(args.monai_bundle)
        return "monai", bundle["network"], bundle["weights"], bundle["args"], bundle
    if args.monai or args.entry_point:
        flag = "--monai" if args.monai else "--entry-point"
        if args.weights is None:
            raise UsageError(f"{flag} needs --weights (the network's state dict)")
        kind = "monai" if args.monai else "entry_point"
        return kind, args.monai or args.entry_point, args.weights, kwargs, None
    if args.weights is not None:
        raise UsageError("--weights goes with --monai or --entry-point")
    if args.torchscript:
        return "torchscript", None, args.torchscript, {}, None
    if args.export:
        return "export", None, args.export, {}, None
    raise UsageError(
        "give the network: --monai, --monai-bundle, --entry-point, --torchscript or --export"
    )


def import_model(args):
    """Write the bundle; returns its model.json record."""
    import torch

    from bidsxai.models.bundle import grid_of, sha256_of
    from bidsxai.models.card import read_card
    from bidsxai.models.external import (
        HOOKABLE,
        ExternalModel,
        last_spatial_layer,
        load_network,
        lrp_unsupported,
    )
    from bidsxai.template import load_template
    from bidsxai.template_files import template_files

    if args.bundle is None or args.card is None:
        raise UsageError("give the bundle folder and --card (or --init-card FILE)")
    kind, network_name, source, kwargs, monai_bundle = _source(args)
    card = read_card(args.card)
    if monai_bundle is not None:
        from bidsxai.models.monai_bundle import check_against_card

        check_against_card(monai_bundle["format"], card, args.monai_bundle.name)
    if not source.is_file():
        raise NoInputError(f"{source}: no such file")
    template_files(card.space)
    template = load_template(card.resolution, card.space)
    record = {"format": kind, "file": source.name, "network": network_name, "args": kwargs}
    if monai_bundle is not None:
        record["monai_bundle"] = monai_bundle["metadata"]
    network = load_network(record, source.parent)
    model = ExternalModel(network, card.output, kind == "export", len(card.covariates))
    model.eval()
    shape = card.input_shape(template.shape)
    x = torch.zeros((1, *shape))
    try:
        with torch.no_grad():
            scores = model(x)
    except Exception as exc:  # the author's network: any error means it cannot read this input
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UsageError(
            f"the network cannot read the card's input of shape {list(shape)} "
            f"(channels {', '.join(card.channels)}"
            + (f"; covariates {', '.join(card.covariates)}" if card.covariates else "")
            + f"): {reason}"
        ) from None
    expected = 1 if card.output == "sigmoid" else len(card.classes)
    given = scores.shape[1] // 2 if card.output == "sigmoid" else scores.shape[1]
    if given != expected:
        raise UsageError(
            f"the card lists {len(card.classes)} classes with output {card.output!r}, so the "
            f"network should give {expected} score{'s' if expected > 1 else ''}; it gives {given}"
        )
    layer = last_spatial_layer(model, x) if kind in HOOKABLE else None
    folder = Path(args.bundle)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / source.name
        if copy.resolve() != source.resolve():
            with atomic_path(copy) as tmp:
                shutil.copyfile(source, tmp)
    except OSError as exc:
        raise CannotCreateOutputError(
            f"{folder}: cannot write the bundle ({exc.strerror})"
        ) from None
    digest = sha256_of(copy)
    meta = {
        "name": card.name,
        "architecture": "external",
        "external": {**record, "sha256": digest},
        "card": card.to_json(),
        "classes": card.classes,
        "target": card.target,
        "target_threshold": None,
        "covariates": card.covariates,
        "input": {
            "space": card.space,
            "resolution": card.resolution,
            "grid": grid_of(template),
            "contrasts": card.channels,
            "normalisation": card.normalisation,
            "intensity_range": card.intensity_range,
            "crop": card.crop_box(template.shape),
        },
        "explain_layer": layer,
        "lrp": lrp_unsupported(model),
        "assignments": [],
        "excluded": [],
        "metrics": {},
        "warning": None,
        "members": {"external": {"weights": copy.name, "sha256": digest}},
        "final_member": "external",
        "weights": copy.name,
        "sha256": digest,
    }
    write_json(folder / "model.json", meta)
    return meta


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        if args.init_card:
            from bidsxai.models.card import card_template

            write_json(args.init_card, card_template())
            print(f"wrote {args.init_card}: fill it in and give it as --card")
            return 0
        meta = import_model(args)
    except BidsxaiError as exc:
        print(f"bidsxai-import-model: error: {exc}", file=sys.stderr)
        return exc.exit_code
    layer = meta["explain_layer"] or "none (the CAM family cannot run)"
    lrp = f"no: {meta['lrp']}" if meta["lrp"] else "yes"
    print(f"wrote {args.bundle}: CAM-family layer {layer}; LRP {lrp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
