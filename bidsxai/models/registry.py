"""Architectures by name: a bundle names what to build, and a new architecture is one entry."""

from collections.abc import Callable
from dataclasses import dataclass, field

# The recipe of an architecture whose paper gives none: what --optimiser, --learning-rate,
# --weight-decay and --augment mean when left unset.
DEFAULT_RECIPE = {
    "optimiser": "adamw",
    "learning_rate": 3e-4,
    "weight_decay": 1e-4,
    "augment": "flip",
}


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable  # build(in_channels, n_classes, input_shape, **kwargs) -> nn.Module
    default_layer: Callable  # default_layer(model) -> dotted module name used for Grad-CAM
    source: str  # the paper it comes from, as users read it
    citation: str  # the paper's key in bidsxai/resources/boilerplate/references.bib
    dims: int = 3  # 3: whole volumes; 2: axial slices (subject prediction = mean slice probability)
    # the paper's training recipe: optimiser, learning rate, weight decay, augmentation scheme
    recipe: dict = field(default_factory=lambda: dict(DEFAULT_RECIPE))
    covariates: tuple = ()  # extra scalar inputs after the image, e.g. ("age",)
    scalable: bool = False  # build accepts width= (channel multiplier, for quick trials)


ARCHITECTURES = {}


def register(arch):
    ARCHITECTURES[arch.name] = arch
    return arch


def _register_builtins():
    from bidsxai.models import cnn3d, gamer_mril, slice2d, stroke2d  # noqa: F401  (importing registers their entries)


def get_architecture(name):
    _register_builtins()
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def list_architectures():
    _register_builtins()
    return sorted(ARCHITECTURES.values(), key=lambda a: a.name)
