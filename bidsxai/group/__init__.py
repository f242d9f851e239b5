"""Group statistics on plain arrays: ``ttest.ttest`` (voxel-wise, with Bonferroni, FDR and
permutation max-T FWE), ``tfce.tfce`` and ``permutation.spearman_permutation``.

The package imports none of its modules: those that run permutations import torch, which a
report rewritten from disk (``group --reports-only``) does not wait for."""
