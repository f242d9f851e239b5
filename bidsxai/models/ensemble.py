"""The fold models' ensemble: the final model of a bundle trained with ``--final-model ensemble``.

Picking one fold model for new subjects picks by a validation score measured on a few subjects, so
the choice is noisy; averaging the fold models' class probabilities uses all of them and is the
usual remedy (Lakshminarayanan et al. 2017 average the members' predictive distributions in the
same way). The ensemble's output is the log of its members' mean class probabilities, so that
its softmax is that mean: the convention of the 2D models' subject probability, which is the mean
of the slice probabilities.
"""

import torch
from torch import nn


class FoldEnsemble(nn.Module):
    """Averages the class probabilities of its members ({name: model}); ``forward`` returns their
    log, (N, classes)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleDict(members)

    def forward(self, *inputs):
        probabilities = torch.stack([torch.softmax(m(*inputs), 1) for m in self.members.values()])
        return probabilities.mean(0).log()
