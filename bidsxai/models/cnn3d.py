"""The 3D CNN of Thibeau-Sutre et al. (Thibeau-Sutre et al. 2020) for whole-volume classification.

Blocks of sub-blocks (3x3x3 convolution, batch norm, leaky ReLU) each closed by 2x2x2 max pooling,
then dropout and one fully connected layer. The paper's random search chose 7 blocks for
121x145x121 grey-matter maps at 1.5 mm; on a 2 mm brain crop (about 80x96x80) five blocks reach
the same few-voxel bottleneck, so the block count follows the input size (see ``n_blocks_for``).
"""

from collections import OrderedDict

import torch
from torch import nn

from bidsxai.models.registry import Architecture, register


def n_blocks_for(input_shape, min_size=2, max_blocks=7):
    """Pooling blocks until the smallest axis would fall under ``min_size`` voxels."""
    n, size = 0, min(input_shape)
    while n < max_blocks and size // 2 >= min_size:
        size //= 2
        n += 1
    return max(n, 1)


class CNN3D(nn.Module):
    def __init__(
        self,
        in_channels,
        n_classes,
        input_shape,
        filters=8,
        n_blocks=None,
        convs_per_block=(1, 1, 2, 2, 2, 3, 3),
        dropout=0.5,
    ):
        super().__init__()
        n_blocks = n_blocks or n_blocks_for(input_shape)
        blocks, channels, shape = [], in_channels, list(input_shape)
        for b in range(n_blocks):
            out = filters * 2**b
            layers = OrderedDict()
            for s in range(convs_per_block[min(b, len(convs_per_block) - 1)]):
                layers[f"sub{s}"] = nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv3d(channels, out, 3, padding=1),
                        bn=nn.BatchNorm3d(out),
                        act=nn.LeakyReLU(0.01),
                    )
                )
                channels = out
            layers["pool"] = nn.MaxPool3d(2, 2)
            blocks.append(nn.Sequential(layers))
            shape = [s // 2 for s in shape]
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * int(torch.tensor(shape).prod()), n_classes)

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.blocks(x), 1)))


def last_conv_block(model):
    """The output of the last sub-block before its pooling: the finest map of the last block."""
    last = len(model.blocks) - 1
    subs = [n for n, _ in model.blocks[last].named_children() if n.startswith("sub")]
    return f"blocks.{last}.{subs[-1]}"


register(
    Architecture(
        "cnn3d",
        CNN3D,
        last_conv_block,
        "Thibeau-Sutre et al., SPIE Medical Imaging 2020",
        "thibeausutre2020",
    )
)
