"""Does the model's decision depend on what the map points at?

- Voxel inverting (Lu et al. 2023): the top-q fraction of the map's voxels is replaced by 1 - x on
  the [0, 1]-normalised input, for q in ``fractions``, and the target probability recorded; a
  random set of the same size is the baseline. A faithful map drops the probability faster.
- Deletion and insertion: the top-q voxels are replaced by a blurred copy of the input (deletion),
  or only they are kept and the rest blurred (insertion). A blur stays closer to the data
  distribution than zeros, which would create edges the model never saw; it is the default for
  that reason. The areas under the curves (over q) summarise them: low for deletion and high for
  insertion are faithful.

Every perturbed volume of every curve runs through the model in batches of ``chunk``.
"""

import numpy as np
import torch
from scipy import ndimage
from scipy.integrate import trapezoid

DEFAULT_FRACTIONS = tuple(np.round(np.arange(1, 21) * 0.025, 3))  # 2.5 % ... 50 %


def _area(fractions, values):
    return float(trapezoid(values, fractions) / (fractions[-1] - fractions[0]))


def _blurred(x, sigma):
    blurred = np.stack([ndimage.gaussian_filter(c, sigma) for c in x[0].cpu().numpy()])
    return torch.as_tensor(blurred, dtype=x.dtype, device=x.device)[None]


@torch.no_grad()
def _probabilities(model, volumes, target, chunk):
    out = []
    for start in range(0, len(volumes), chunk):
        batch = torch.cat(volumes[start : start + chunk])
        out.append(torch.softmax(model(batch), 1)[:, target])
    return torch.cat(out).cpu().numpy()


def faithfulness(
    model: torch.nn.Module,
    x: torch.Tensor,
    maps: np.ndarray,
    *,
    target: int,
    fractions=DEFAULT_FRACTIONS,
    baseline: str = "blur",
    region: np.ndarray | None = None,
    blur_sigma: float = 3.0,
    seed: int = 0,
    chunk: int = 8,
) -> dict:
    """Curves of the target probability for one input ``x`` (1, C, *spatial) and its map
    (*spatial), over the voxels of ``region`` (default: every voxel).

    Returns {"fractions", "probability" (unperturbed), "inverted", "inverted_random", "deletion",
    "insertion", "inverting_drop" and "inverting_drop_random" (mean probability drop over the
    fractions), "deletion_auc", "insertion_auc"}.
    """
    if baseline != "blur":
        raise ValueError(f"baseline must be 'blur', got {baseline!r}")
    model.eval()
    fractions = np.asarray(fractions, np.float64)
    heatmap = np.asarray(maps, np.float64)
    region = np.ones(heatmap.shape, bool) if region is None else np.asarray(region, bool)
    voxels = np.flatnonzero(region)
    ranked = torch.as_tensor(voxels[np.argsort(-heatmap.ravel()[voxels], kind="stable")])
    shuffled = torch.as_tensor(np.random.default_rng(seed).permutation(voxels))
    counts = np.maximum(1, np.round(fractions * len(voxels)).astype(int))
    flat = x.reshape(1, x.shape[1], -1)
    blurred = _blurred(x, blur_sigma).reshape(flat.shape)

    def perturbed(order, replace_with, keep=False):
        volumes = []
        for k in counts:
            chosen = order[:k].to(x.device)
            if keep:  # insertion: the blurred input with the chosen voxels put back
                volume = replace_with.clone()
                volume[..., chosen] = flat[..., chosen]
            else:
                volume = flat.clone()
                volume[..., chosen] = replace_with[..., chosen]
            volumes.append(volume.reshape(x.shape))
        return volumes

    inverted_input = 1 - flat
    probability = float(_probabilities(model, [x], target, 1)[0])
    curves = {
        "inverted": perturbed(ranked, inverted_input),
        "inverted_random": perturbed(shuffled, inverted_input),
        "deletion": perturbed(ranked, blurred),
        "insertion": perturbed(ranked, blurred, keep=True),
    }
    names = list(curves)
    values = _probabilities(model, [v for n in names for v in curves[n]], target, chunk)
    result = {"fractions": fractions, "probability": probability}
    for i, name in enumerate(names):
        result[name] = values[i * len(fractions) : (i + 1) * len(fractions)]
    result["inverting_drop"] = float(np.mean(probability - result["inverted"]))
    result["inverting_drop_random"] = float(np.mean(probability - result["inverted_random"]))
    result["deletion_auc"] = _area(fractions, result["deletion"])
    result["insertion_auc"] = _area(fractions, result["insertion"])
    return result
