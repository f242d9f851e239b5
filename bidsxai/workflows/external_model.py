"""``participant --model`` with an imported bundle (``bidsxai-import-model``): which methods can
run on the model, and the check of the first session's input against the card before any work.
"""

import json
import sys
from dataclasses import replace

import numpy as np
import torch

from bidsxai.errors import UsageError
from bidsxai.explain import CAM_FAMILY
from bidsxai.normalisations import input_bounds
from bidsxai.outputs import model_input_path, sidecar_path
from bidsxai.training.dataset import load_inputs


def runnable_methods(meta, methods, layer):
    """The methods that can run on an imported model; one line on stderr for each left out."""
    kept = list(methods)
    if layer is None and any(m in CAM_FAMILY for m in kept):
        left = [m for m in kept if m in CAM_FAMILY]
        kept = [m for m in kept if m not in CAM_FAMILY]
        print(
            f"bidsxai: --model {meta['name']}: {', '.join(left)} need a layer with spatial "
            "output that can be hooked, and this model has none; the other methods run",
            file=sys.stderr,
        )
    if meta.get("lrp") and "lrp" in kept:
        kept.remove("lrp")
        print(
            f"bidsxai: --model {meta['name']}: LRP cannot run: {meta['lrp']}; the other methods "
            "run",
            file=sys.stderr,
        )
    if not kept:
        raise UsageError(f"--model {meta['name']}: none of --methods {','.join(methods)} can run")
    return kept


def with_methods(settings, methods):
    return replace(settings, methods=methods)


def check_first_input(model, meta, out_dir, session, device):
    """The first session's input as the card describes it: its channels are there, written with
    the card's normalisation, and the model answers them with finite scores, one per class."""
    card, spec = meta["card"], meta["input"]
    t1w = model_input_path(
        out_dir,
        session.subject,
        session.session,
        spec["contrasts"][0],
        spec["resolution"],
        spec["space"],
    )
    x = load_inputs(out_dir, session.subject, session.session, spec)
    written = json.loads(sidecar_path(t1w).read_text()).get("IntensityNormalisation")
    if written and written != card["normalisation"]:
        raise UsageError(
            f"--model {meta['name']}: its card expects {card['normalisation']} normalisation, "
            f"{session.key}'s images were written with {written}; rerun the participant level "
            f"with --normalisation {card['normalisation']}"
        )
    low, high = float(np.min(x)), float(np.max(x))
    if card["normalisation"] in ("percentile", "minmax"):
        expected = input_bounds(spec, x)
        slack = 0.5 * (expected[1] - expected[0])
        if low < expected[0] - slack or high > expected[1] + slack:
            raise UsageError(
                f"--model {meta['name']}: {session.key}'s input ranges over "
                f"[{low:.3g}, {high:.3g}], not the [{expected[0]:g}, {expected[1]:g}] of its "
                f"card's {card['normalisation']} normalisation"
            )
    with torch.no_grad():
        scores = model(torch.from_numpy(x)[None].to(device))
    if scores.shape[1] != len(meta["classes"]) or not torch.isfinite(scores).all():
        raise UsageError(
            f"--model {meta['name']}: on {session.key}'s input of shape {list(x.shape)} it gives "
            f"{list(scores.shape[1:])} scores (finite: {bool(torch.isfinite(scores).all())}), "
            f"expected {len(meta['classes'])} finite"
        )
