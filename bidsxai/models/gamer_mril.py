"""GAMER-MRIL (Lu et al. 2023): one DenseNet-3D encoder per contrast, gated attention over the
contrasts (eqs. 1-3, K = 16), age / 100 concatenated, one fully connected output layer.

Encoder (§II-C): a 3x3x3 convolution of 16 filters, batch norm, ReLU and 3x3x3 max pooling (stride
2, padding 1); four dense blocks of two dense layers (BN, ReLU, 1x1x1 convolution to 4 x growth
channels, BN, ReLU, 3x3x3 convolution with replication padding to ``growth`` = 4 channels),
transition layers (BN, ReLU, 1x1x1 convolution, 2x2x2 average pooling) between them, then BN,
ReLU and a fully connected layer of 32 neurons. Two choices the paper leaves open: the features
are averaged over space before that layer (so any input size works), and transitions keep their
channel count. The output has one logit per class (two for the paper's binary task; softmax
over two logits is the paper's sigmoid of their difference). Without an ``age`` argument the age
is the one bound by ``models.covariates.binding`` (explanations of one subject), else 0.
"""

from collections import OrderedDict

import torch
from torch import nn

from bidsxai.models.covariates import bound_covariates
from bidsxai.models.gated_attention import GatedAttention
from bidsxai.models.registry import Architecture, register


def _dense_layer(channels, growth):
    return nn.Sequential(
        OrderedDict(
            bn1=nn.BatchNorm3d(channels),
            relu1=nn.ReLU(),
            conv1=nn.Conv3d(channels, 4 * growth, 1, bias=False),
            bn2=nn.BatchNorm3d(4 * growth),
            relu2=nn.ReLU(),
            conv2=nn.Conv3d(4 * growth, growth, 3, padding=1, padding_mode="replicate", bias=False),
        )
    )


class DenseBlock(nn.Module):
    def __init__(self, channels, growth, n_layers=2):
        super().__init__()
        self.layers = nn.ModuleList(
            _dense_layer(channels + i * growth, growth) for i in range(n_layers)
        )

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class DenseEncoder(nn.Module):
    """One contrast (N, 1, D, H, W) -> hidden vector (N, features)."""

    def __init__(self, features=32, filters=16, growth=4, n_blocks=4):
        super().__init__()
        layers = OrderedDict(
            conv0=nn.Conv3d(1, filters, 3, padding=1, bias=False),
            bn0=nn.BatchNorm3d(filters),
            relu0=nn.ReLU(),
            pool0=nn.MaxPool3d(3, stride=2, padding=1),
        )
        channels = filters
        for b in range(n_blocks):
            layers[f"block{b + 1}"] = DenseBlock(channels, growth)
            channels += 2 * growth
            if b < n_blocks - 1:
                layers[f"transition{b + 1}"] = nn.Sequential(
                    OrderedDict(
                        bn=nn.BatchNorm3d(channels),
                        relu=nn.ReLU(),
                        conv=nn.Conv3d(channels, channels, 1, bias=False),
                        pool=nn.AvgPool3d(2),
                    )
                )
        layers["bn_out"] = nn.BatchNorm3d(channels)
        layers["relu_out"] = nn.ReLU()
        layers["pool_out"] = nn.AdaptiveAvgPool3d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(channels, features)
        self.features = nn.Sequential(layers)

    def forward(self, x):
        return self.features(x)


class GamerMRIL(nn.Module):
    def __init__(self, in_channels, n_classes, features=32, attention_hidden=16):
        super().__init__()
        self.encoders = nn.ModuleList(DenseEncoder(features) for _ in range(in_channels))
        self.attention = GatedAttention(features, attention_hidden)
        self.classifier = nn.Linear(features + 1, n_classes)

    def forward(self, x, age=None):
        hidden = torch.stack(
            [encoder(x[:, i : i + 1]) for i, encoder in enumerate(self.encoders)], 1
        )
        combined, _, _ = self.attention(hidden)
        if age is None:
            bound = bound_covariates(self)
            age = bound[0] if bound is not None else 0.0
        age = torch.as_tensor(age).to(x).reshape(-1)
        age = age.expand(len(x)) if age.numel() == 1 else age
        return self.classifier(torch.cat([combined, age.reshape(-1, 1) / 100], 1))


def _default_layer(model):
    return "encoders.0.features.block4"


register(
    Architecture(
        name="gamer_mril",
        build=lambda in_channels, n_classes, input_shape, **kwargs: GamerMRIL(
            in_channels, n_classes, **kwargs
        ),
        default_layer=_default_layer,
        source="Lu et al. 2023, GAMER-MRIL: DenseNet-3D per contrast with gated attention",
        citation="lu2023",
        recipe={
            "optimiser": "adamw",
            "learning_rate": 5e-5,
            "weight_decay": 1e-2,
            "augment": "volume-affine",
        },
        covariates=("age",),
    )
)
