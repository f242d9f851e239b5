"""Group statistics on plain arrays: ``ttest`` (voxel-wise, with Bonferroni, FDR and permutation
max-T FWE), ``tfce`` and ``spearman_permutation``."""

from bidsxai.group.permutation import spearman_permutation
from bidsxai.group.tfce import tfce
from bidsxai.group.ttest import ttest

__all__ = ["spearman_permutation", "tfce", "ttest"]
