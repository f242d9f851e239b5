"""Is a heatmap true? Measures of explanations on plain arrays and models.

- ``localisation``: AUROC of map values against a reference mask, the pointing game, the share of
  the map's mass inside the mask;
- ``faithfulness``: the voxel-inverting experiment of Lu et al. (2023) against a random mask of the
  same size, and deletion / insertion curves with a blurred baseline;
- ``randomisation``: cascading model-parameter randomisation (Adebayo et al. 2018), the sanity
  check that a map depends on what the model learned;
- ``robustness``: agreement of one session's maps from several models (folds or training runs).
"""

from bidsxai.evaluate.faithfulness import faithfulness
from bidsxai.evaluate.localisation import localisation
from bidsxai.evaluate.randomisation import randomisation
from bidsxai.evaluate.robustness import robustness

__all__ = ["faithfulness", "localisation", "randomisation", "robustness"]
