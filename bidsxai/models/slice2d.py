"""The 2D slice classifiers of Zhang et al. (2021): VGG16, VGG19 and ResNet50, each with a
global-average- pooling head (GAP: pooled features -> one linear layer, so CAM applies) or fully
connected layers before the output (FC). Inputs are axial slices with the contrasts as channels.

Module names follow torchvision's layout, so ImageNet weights load from a local torchvision
state-dict file (``load_imagenet`` of its contents); nothing is downloaded. The FC heads: VGG's own
classifier (7 x 7 pooling, 4096, 4096); for ResNet50 one hidden layer of 512 after the pooled
features (the paper's exact customisation is not given).
"""

from collections import OrderedDict

from torch import nn

from bidsxai.models.registry import Architecture, register

VGG_LAYOUTS = {
    "vgg16": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ],
    "vgg19": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


class VGG(nn.Module):
    def __init__(self, layout, in_channels, n_classes, head="gap", width=1.0):
        super().__init__()
        layers, channels = [], in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = max(1, int(item * width))
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        if head == "gap":
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, n_classes))
        else:
            hidden = max(1, int(4096 * width))
            self.avgpool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * 49, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(hidden, n_classes),
            )

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, channels, width, stride=1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet50(nn.Module):
    def __init__(self, in_channels, n_classes, head="gap", width=1.0):
        super().__init__()
        base = max(1, int(64 * width))
        self.conv1 = nn.Conv2d(in_channels, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = base
        for index, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2)), start=1):
            layers = []
            for b in range(blocks):
                layers.append(
                    Bottleneck(channels, base * 2 ** (index - 1), stride if b == 0 else 1)
                )
                channels = layers[-1].conv3.out_channels
            setattr(self, f"layer{index}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        if head == "gap":
            self.fc = nn.Linear(channels, n_classes)
        else:
            self.fc = nn.Sequential(
                OrderedDict(
                    hidden=nn.Linear(channels, 512),
                    relu=nn.ReLU(inplace=True),
                    dropout=nn.Dropout(0.5),
                    out=nn.Linear(512, n_classes),
                )
            )

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def load_imagenet(model, state):
    """Load a torchvision ImageNet state dict (read with ``torch.load(..., weights_only=True)``):
    every tensor whose name and shape match; the first convolution is averaged over RGB and
    repeated for other channel counts; the output layer (another class count) is left as
    initialised. Returns the names loaded."""
    own = model.state_dict()
    loaded = {}
    for name, tensor in state.items():
        if name not in own:
            continue
        if (
            tensor.dim() == 4
            and own[name].dim() == 4
            and tensor.shape[1] == 3 != own[name].shape[1]
            and tensor.shape[0] == own[name].shape[0]
        ):
            tensor = tensor.mean(1, keepdim=True).repeat(1, own[name].shape[1], 1, 1)
        if tensor.shape == own[name].shape:
            loaded[name] = tensor
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded)


def _default_layer(model):
    """ResNet: the last residual stage; VGG: the last convolution (block5_conv3/4, Zhang et al.
    2021)."""
    if isinstance(model, ResNet50):
        return "layer4"
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]


def _register(name, build, source):
    register(
        Architecture(
            name=name,
            build=build,
            default_layer=_default_layer,
            source=source,
            citation="zhang2021",
            dims=2,
            recipe=ZHANG2021_RECIPE,
            scalable=True,
        )
    )


# Adam with learning rate 2e-5 (Zhang et al. 2021, §2.4) and its Keras augmentation.
ZHANG2021_RECIPE = {
    "optimiser": "adam",
    "learning_rate": 2e-5,
    "weight_decay": 0.0,
    "augment": "slice-affine",
}


SOURCE = "Zhang et al. 2021: {} on axial slices, {} head"


def _builder(network, *args):
    """build(in_channels, n_classes, input_shape, **kw) of a VGG layout or ResNet50 with a head."""

    def build(in_channels, n_classes, input_shape, **kw):
        return network(*args[:-1], in_channels, n_classes, args[-1], **kw)

    return build


for _vgg, _layout in VGG_LAYOUTS.items():
    for _head in ("gap", "fc"):
        _register(
            f"{_vgg}_{_head}",
            _builder(VGG, _layout, _head),
            SOURCE.format(_vgg.upper(), _head.upper()),
        )
for _head in ("gap", "fc"):
    _register(
        f"resnet50_{_head}", _builder(ResNet50, _head), SOURCE.format("ResNet50", _head.upper())
    )
