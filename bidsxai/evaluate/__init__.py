"""Is a heatmap true? Measures of explanations on plain arrays and models.

- ``localisation.localisation``: AUROC of map values against a reference mask, the pointing game,
  the share of the map's mass inside the mask;
- ``faithfulness.faithfulness``: the voxel-inverting experiment of Lu et al. (2023) against a
  random mask of the same size, and deletion / insertion curves with a blurred baseline;
- ``randomisation.randomisation``: cascading model-parameter randomisation (Adebayo et al. 2018),
  the sanity check that a map depends on what the model learned;
- ``robustness.robustness``: agreement of one session's maps from several models (folds or
  training runs).

The package imports none of its modules: those that run a model import torch, which a report
rewritten from disk (``--reports-only``) does not wait for.
"""
