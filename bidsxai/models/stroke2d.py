"""The 2D stroke classifiers of Avci (2021) (Avci 2021, after Herzog et al. 2020): a deep VGG-like
baseline with MC dropout and the four "model debugging" variants. Inputs are axial slices with
the contrasts as channels.

- ``stroke_baseline``: 16 convolution blocks (3x3 convolution, batch norm, ReLU, MC dropout 0.3)
  from 32 to 512 filters, max pooling (2x2) after each of five stages (2, 2, 4, 4, 4 blocks; the
  paper gives the block count and filter range, not the stages), flatten, then two dense blocks
  (dense, batch norm, ReLU, MC dropout 0.3) of 400 and 100 units.
- The variants use the simplified block of §3.5.2 (3x3 convolution, batch norm, ReLU, 2x2 average
  pooling, MC dropout 0.3) with 32 filters doubling per block:
  ``stroke_dense`` 5 blocks, flatten, dense 400 and 100; ``stroke_flat`` 5 blocks, flatten, output;
  ``stroke_gap`` 5 blocks, global average pooling, batch norm, ReLU, MC dropout, output (the
  paper's chosen "Stroke model"); ``stroke_shallow`` 3 blocks, global average pooling, output.
The default explained layer is the activation after the last convolution (Avci 2021 §4.1.4).
"""

from collections import OrderedDict

from torch import nn

from bidsxai.models.mc_dropout import MCDropout
from bidsxai.models.registry import Architecture, register

DROPOUT = 0.3
BASELINE_STAGES = (2, 2, 4, 4, 4)


def _conv_block(channels, out, pool):
    layers = OrderedDict(
        conv=nn.Conv2d(channels, out, 3, padding=1), bn=nn.BatchNorm2d(out), act=nn.ReLU()
    )
    if pool == "avg":
        layers["pool"] = nn.AvgPool2d(2)
    layers["dropout"] = MCDropout(DROPOUT)
    if pool == "max":
        layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


def _dense_blocks(features, sizes):
    layers = OrderedDict()
    for i, size in enumerate(sizes):
        layers[f"dense{i}"] = nn.Sequential(
            OrderedDict(
                fc=nn.Linear(features, size),
                bn=nn.BatchNorm1d(size),
                act=nn.ReLU(),
                dropout=MCDropout(DROPOUT),
            )
        )
        features = size
    return layers, features


def _width(filters, width):
    return max(1, int(filters * width))


class StrokeNet(nn.Module):
    """``blocks`` (nn.Sequential of conv blocks) -> ``head`` (nn.Sequential ending in ``out``)."""

    def __init__(self, in_channels, n_classes, size, variant, width=1.0):
        super().__init__()
        blocks, channels = [], in_channels
        if variant == "baseline":
            filters = [
                32 * 2 ** min(stage, 4) for stage, n in enumerate(BASELINE_STAGES) for _ in range(n)
            ]
            ends = {sum(BASELINE_STAGES[: i + 1]) - 1 for i in range(len(BASELINE_STAGES))}
            for i, f in enumerate(filters):
                out = _width(f, width)
                blocks.append(_conv_block(channels, out, "max" if i in ends else None))
                channels = out
            n_pools = len(BASELINE_STAGES)
        else:
            n_pools = 3 if variant == "shallow" else 5
            for i in range(n_pools):
                out = _width(32 * 2**i, width)
                blocks.append(_conv_block(channels, out, "avg"))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        head = OrderedDict()
        if variant in ("baseline", "dense", "flat"):
            head["flatten"] = nn.Flatten()
            features = channels * (size // 2**n_pools) ** 2
            if variant != "flat":
                dense, features = _dense_blocks(features, (400, 100))
                head.update(dense)
        else:
            head["gap"] = nn.AdaptiveAvgPool2d(1)
            head["flatten"] = nn.Flatten()
            features = channels
            if variant == "gap":
                head.update(bn=nn.BatchNorm1d(channels), act=nn.ReLU(), dropout=MCDropout(DROPOUT))
        head["out"] = nn.Linear(features, n_classes)
        self.head = nn.Sequential(head)

    def forward(self, x):
        return self.head(self.blocks(x))


def _last_activation(model):
    return f"blocks.{len(model.blocks) - 1}.act"


VARIANTS = {
    "baseline": "baseline VGG-like model with MC dropout (16 convolutions, dense 400 and 100)",
    "dense": "Dense-Model (5 convolutions, flatten, dense 400 and 100)",
    "flat": "Flat-Model (5 convolutions, flatten)",
    "gap": "GAP-Model, the paper's Stroke model (5 convolutions, global average pooling)",
    "shallow": "Shallow-Model (3 convolutions, global average pooling)",
}
for _variant, _text in VARIANTS.items():
    register(
        Architecture(
            name=f"stroke_{_variant}",
            build=lambda in_channels, n_classes, input_shape, variant=_variant, **kw: StrokeNet(
                in_channels, n_classes, input_shape[-1], variant, **kw
            ),
            default_layer=_last_activation,
            source=f"Avci 2021: {_text} on axial slices",
            citation="avci2021",
            dims=2,
            scalable=True,
            # Keras's Adam defaults; the paper names ImageDataGenerator without its settings, so
            # Zhang et al.'s (2021)
            recipe={
                "optimiser": "adam",
                "learning_rate": 1e-3,
                "weight_decay": 0.0,
                "augment": "slice-affine",
            },
        )
    )
