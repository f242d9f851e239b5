"""Does the model's decision depend on what the map points at?

- Voxel inverting (Lu et al. 2023): the top-q fraction of the map's voxels is reflected about
  the middle of the input's normalised range, for q in ``fractions``, and the target probability
  recorded; a random set of the same size is the baseline. A faithful map drops the probability
  faster. Lu et al.'s 1 - x is the reflection about 0.5 of inputs in [0, 1] (percentile
  normalisation); z-scored inputs are reflected about the brain's mean, 0 (-x), so that the
  perturbation stays within the range the model saw instead of shifting every voxel by 1.
- Deletion and insertion: the top-q voxels are replaced (deletion), or only they are kept and the
  rest of the region replaced (insertion). Either baseline stays closer to the data distribution
  than zeros, which would create edges the model never saw:
  - ``blur`` (the default): a Gaussian-blurred copy of the input; one copy serves every fraction,
    so a curve costs its forward passes only;
  - ``road``: noisy linear imputation (Rong et al. 2022), which also hides the removal's shape
    from the model, at the cost of one sparse solve per fraction and channel (seconds each on a
    2 mm volume; ``benchmarks/evaluate_cost.py``).
  The areas under the curves (over q, divided by the swept range) summarise them: low for
  deletion and high for insertion are faithful. They are partial (``partial_deletion_auc``,
  ``partial_insertion_auc``): Petsiuk et al. (2018) remove every pixel, fill deletions with
  zeros and integrate over 0-1, so these numbers cannot be compared with theirs.

Voxels the map ties are ordered at random (with ``seed``) rather than in raster order, so a map
with plateaus does not remove the voxels of one corner first.

Every perturbed volume of every curve runs through the model in batches of ``chunk``.
"""

import numpy as np
import torch
from scipy import ndimage
from scipy.integrate import trapezoid

from bidsxai.evaluate.imputation import linear_imputation

DEFAULT_FRACTIONS = tuple(np.round(np.arange(1, 21) * 0.025, 3))  # 2.5 % ... 50 %
BASELINES = ("blur", "road")


def _area(fractions, values):
    return float(trapezoid(values, fractions) / (fractions[-1] - fractions[0]))


def _blurred(x, sigma):
    blurred = np.stack([ndimage.gaussian_filter(c, sigma) for c in x[0].cpu().numpy()])
    return torch.as_tensor(blurred, dtype=x.dtype, device=x.device)[None]


def _imputer(x, noise, seed):
    """fill(chosen): the noisy linear imputation of the chosen voxels of ``x``, in their order."""
    values = x[0].detach().cpu().numpy()
    spatial = values.shape[1:]

    def fill(chosen):
        index = chosen.cpu().numpy()
        removed = np.zeros(int(np.prod(spatial)), bool)
        removed[index] = True
        imputed = linear_imputation(values, removed.reshape(spatial), noise=noise, seed=seed)
        filled = imputed.reshape(len(values), -1)[:, index]
        return torch.as_tensor(filled, dtype=x.dtype, device=x.device)[None]

    return fill


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
    road_noise: float = 0.01,
    seed: int = 0,
    chunk: int = 8,
    centre: float = 0.5,
) -> dict:
    """Curves of the target probability for one input ``x`` (1, C, *spatial) and its map
    (*spatial), over the voxels of ``region`` (default: every voxel). ``baseline`` is "blur"
    (SD ``blur_sigma`` voxels) or "road" (noise SD ``road_noise``, in the input's units).
    ``centre``: the value inverting reflects about (0.5 for inputs in [0, 1], 0 for z-scores).

    Returns {"fractions", "probability" (unperturbed), "inverted", "inverted_random", "deletion",
    "insertion", "inverting_drop" and "inverting_drop_random" (mean probability drop over the
    fractions), "partial_deletion_auc", "partial_insertion_auc"}.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    model.eval()
    fractions = np.asarray(fractions, np.float64)
    heatmap = np.asarray(maps, np.float64)
    region = np.ones(heatmap.shape, bool) if region is None else np.asarray(region, bool)
    voxels = np.flatnonzero(region)
    rng = np.random.default_rng(seed)
    shuffled = torch.as_tensor(rng.permutation(voxels))
    ties = rng.permutation(len(voxels))  # the order among equal values
    ranked = torch.as_tensor(voxels[np.lexsort((ties, -heatmap.ravel()[voxels]))])
    counts = np.maximum(1, np.round(fractions * len(voxels)).astype(int))
    flat = x.reshape(1, x.shape[1], -1)
    inverted = 2 * centre - flat

    def replaced(order, sizes, fill):
        """The input with the first k voxels of ``order`` replaced by ``fill(chosen)``, per k."""
        volumes = []
        for k in sizes:
            chosen = order[:k].to(x.device)
            volume = flat.clone()
            volume[..., chosen] = fill(chosen)
            volumes.append(volume.reshape(x.shape))
        return volumes

    if baseline == "blur":
        blurred = _blurred(x, blur_sigma).reshape(flat.shape)
        removed = lambda chosen: blurred[..., chosen]
    else:
        removed = _imputer(x, road_noise, seed)
    probability = float(_probabilities(model, [x], target, 1)[0])
    curves = {
        "inverted": replaced(ranked, counts, lambda chosen: inverted[..., chosen]),
        "inverted_random": replaced(shuffled, counts, lambda chosen: inverted[..., chosen]),
        "deletion": replaced(ranked, counts, removed),
        # insertion keeps the top k of the region: the other n - k are replaced
        "insertion": replaced(ranked.flip(0), len(voxels) - counts, removed),
    }
    names = list(curves)
    values = _probabilities(model, [v for n in names for v in curves[n]], target, chunk)
    result = {"fractions": fractions, "probability": probability}
    for i, name in enumerate(names):
        result[name] = values[i * len(fractions) : (i + 1) * len(fractions)]
    result["inverting_drop"] = float(np.mean(probability - result["inverted"]))
    result["inverting_drop_random"] = float(np.mean(probability - result["inverted_random"]))
    result["partial_deletion_auc"] = _area(fractions, result["deletion"])
    result["partial_insertion_auc"] = _area(fractions, result["insertion"])
    return result
