"""Small networks with known structure that the explanation tests share."""

import torch
from torch import nn


def tiny_net(dims):
    conv, bn, pool = {
        2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d),
        3: (nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d),
    }[dims]
    torch.manual_seed(0)
    net = nn.Sequential(
        conv(2, 4, 3, padding=1),
        bn(4),
        nn.ReLU(),
        conv(4, 6, 3, padding=1),
        nn.ReLU(),
        pool(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    with torch.no_grad():  # non-trivial BN statistics, so eval mode matters
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


def gap_net(dims, seed=0):
    conv, pool = {2: (nn.Conv2d, nn.AdaptiveAvgPool2d), 3: (nn.Conv3d, nn.AdaptiveAvgPool3d)}[dims]
    torch.manual_seed(seed)
    return nn.Sequential(
        conv(2, 4, 3, padding=1),
        nn.ReLU(),
        conv(4, 6, 3, padding=1),
        nn.ReLU(),
        pool(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


def maxpool_net(dims):
    """A non-GAP head (max pooling, two linear layers) after the explained layer."""
    conv, pool = {2: (nn.Conv2d, nn.MaxPool2d), 3: (nn.Conv3d, nn.MaxPool3d)}[dims]
    torch.manual_seed(1)
    size = 6 * (2**dims)
    return nn.Sequential(
        conv(2, 6, 3, padding=1),
        nn.ReLU(),
        pool(2),
        nn.Flatten(),
        nn.Linear(size, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).eval()


class CovariateNet(nn.Module):
    """gap_net's pooled features and covariates (age / 100) into one linear layer, as networks
    that take age beside the image do; called as ``net(x, covariates)``."""

    def __init__(self, dims):
        super().__init__()
        self.features = gap_net(dims)[:-1]
        self.classifier = nn.Linear(7, 3)

    def forward(self, x, covariates):
        return self.classifier(torch.cat([self.features(x), covariates / 100], 1))


def covariate_net(dims):
    torch.manual_seed(2)
    return CovariateNet(dims).eval()
