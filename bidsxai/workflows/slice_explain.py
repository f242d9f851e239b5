"""Classify and explain one volume with a 2D slice model (Zhang et al. 2021): every kept axial slice
is classified and explained, the subject's prediction is the mean slice probability, and the slice
maps are resized back and stacked into a volume on the model's crop."""

import torch

from bidsxai.explain import explain_many
from bidsxai.explain.layers import eval_mode
from bidsxai.training.slices import restack, to_slices


def _subject_targets(targets, probabilities):
    """--targets for the subject ('predicted', 'all' or [[indices]]) as a (1, T) index tensor."""
    if targets == "predicted":
        return probabilities.argmax(1, keepdim=True)
    if targets == "all":
        return torch.arange(probabilities.shape[1], device=probabilities.device)[None]
    return torch.as_tensor(targets, device=probabilities.device)


def chunked_probabilities(model, inputs, chunk=16):
    """The softmax of ``model`` over ``inputs`` (N, classes) in eval mode, ``chunk`` rows at a
    time."""
    with eval_mode(model), torch.no_grad():
        return torch.cat(
            [torch.softmax(model(inputs[i : i + chunk]), 1) for i in range(0, len(inputs), chunk)]
        )


def explain_slices(model, spec, x, methods, *, layer, targets, chunk=16, **params):
    """explain_many's result for x (1, C, X, Y, Z), plus 'slice_probabilities' (slices, classes)
    and 'kept' (their axial indices). 'logits' are the log of the mean slice probabilities, so their
    softmax is the subject's probability; per-slice extras (e.g. the IG completeness error) are
    averaged over the slices."""
    kept, size = spec["slices"]["kept"], spec["slices"]["size"]
    slices = to_slices(x[0].cpu().numpy(), kept, size).to(x.device)
    slice_probabilities = chunked_probabilities(model, slices, chunk)
    probabilities = slice_probabilities.mean(0, keepdim=True)
    subject_targets = _subject_targets(targets, probabilities)
    parts = []
    for i in range(0, len(slices), chunk):
        part = slices[i : i + chunk]
        parts.append(
            explain_many(
                model,
                part,
                methods,
                layer=layer,
                targets=subject_targets.expand(len(part), -1),
                **params,
            )
        )
    result = {
        name: restack(torch.cat([p[name].detach() for p in parts]), kept, tuple(x.shape[2:]))[None]
        for name in methods
    }
    for key in parts[0]:
        if key not in result and key not in ("logits", "targets"):
            result[key] = torch.cat([p[key] for p in parts]).mean(0, keepdim=True)
    result.update(
        logits=probabilities.log(),
        targets=subject_targets,
        slice_probabilities=slice_probabilities,
        kept=kept,
    )
    return result
