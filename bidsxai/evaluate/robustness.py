"""Do the maps of one session agree across models: the fold models of a bundle (fold
robustness) or bundles trained with different seeds (run robustness), as in Thibeau-Sutre et al.
(2020)?"""

import itertools

import numpy as np

from bidsxai.evaluate.similarity import spearman
from bidsxai.group.atlas import cosine_similarity, roi_vector


def robustness(maps_by_model: dict, *, region: np.ndarray | None = None, atlas=None) -> dict:
    """{"pairs": [{"a", "b", "spearman"[, "roi_cosine"]}], "spearman_mean"[, "roi_cosine_mean"]}
    over every pair of models; ``atlas`` adds the cosine similarity of ROI vectors."""
    names = list(maps_by_model)
    if len(names) < 2:
        raise ValueError("robustness needs the maps of at least two models")
    vectors = {n: roi_vector(maps_by_model[n], atlas) for n in names} if atlas is not None else None
    pairs = []
    for a, b in itertools.combinations(names, 2):
        row = {"a": a, "b": b, "spearman": spearman(maps_by_model[a], maps_by_model[b], region)}
        if vectors is not None:
            row["roi_cosine"] = float(cosine_similarity(np.stack([vectors[a], vectors[b]]))[0, 1])
        pairs.append(row)
    result = {"pairs": pairs, "spearman_mean": float(np.mean([p["spearman"] for p in pairs]))}
    if vectors is not None:
        result["roi_cosine_mean"] = float(np.mean([p["roi_cosine"] for p in pairs]))
    return result
