"""The model card of an imported model: what its input must be, what its outputs mean, and what a
reader needs to judge it (Mitchell et al. 2019; the fields MONAI's bundle metadata carries).

bidsxai feeds a model exactly what its card says: the preprocessed contrasts (and tissue maps) in
the card's order, on the card's template grid, cut to its crop, with the normalisation the
participant level wrote (percentile, z-score, min-max, taken to the card's ``intensity_range``
where it gives one, or none; ``bidsxai.normalisations``). Every field is checked when the card is
read; a missing or wrong one is one line naming it (exit 64), so a model is never fed the wrong
image in silence.

Native T1w space (a fixed-shape input in each subject's own space) is not supported yet:
bidsxai's preprocessing writes template-space images, and a card asking for another space than a
TemplateFlow template is refused.
"""

import json
import re
from dataclasses import asdict, dataclass, field

from bidsxai.bids import CONTRAST_KEYS
from bidsxai.errors import NoInputError, UsageError
from bidsxai.normalisations import METHODS as NORMALISATIONS
from bidsxai.outputs import TISSUE_INPUTS

OUTPUT_KINDS = {
    "logits": "one unnormalised score per class (softmax gives the probabilities)",
    "probabilities": "one probability per class (they sum to one)",
    "sigmoid": "one score for two classes: sigmoid(score) is the second class's probability",
}
CHANNELS = (*CONTRAST_KEYS.values(), *TISSUE_INPUTS)


@dataclass
class ModelCard:
    name: str
    space: str
    resolution: float
    channels: list
    normalisation: str
    classes: list
    output: str
    crop: list | None = None  # [[x0, x1], [y0, y1], [z0, z1]] on the grid; None: the whole grid
    orientation: str = "RAS"
    intensity_range: list | None = None  # min-max only: [a, b] the brain's range goes to
    target: str = "group"  # the participants.tsv column whose values are the classes
    # participants.tsv columns (numeric) the network takes as its second argument, (N, columns)
    covariates: list = field(default_factory=list)
    intended_use: str = ""
    training_data: dict = field(default_factory=dict)  # {"name": ..., "doi": ...}
    trained_on: list = field(default_factory=list)  # subject labels the model saw in training
    licence: str = ""
    authors: list = field(default_factory=list)
    references: list = field(default_factory=list)

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, record, source="the card"):
        """A card from its JSON record, every field checked (one ``UsageError`` naming it)."""
        if not isinstance(record, dict):
            raise UsageError(f"{source}: a model card is a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(record) - known)
        if unknown:
            raise UsageError(f"{source}: unknown field {unknown[0]!r}")
        required = ("name", "space", "resolution", "channels", "normalisation", "classes")
        missing = [f for f in (*required, "output") if f not in record]
        if missing:
            raise UsageError(f"{source}: field {missing[0]!r} is missing")
        card = cls(**record)
        card._check(source)
        return card

    def _check(self, source):
        def bad(name, why):
            raise UsageError(f"{source}: field {name!r} {why}")

        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.name):
            bad("name", "must be letters, digits, '.', '_' or '-'")
        from bidsxai.template_files import check_space_name

        try:
            check_space_name(str(self.space))
        except UsageError as exc:
            bad("space", f"is not a TemplateFlow template ({str(exc).split(': ', 1)[-1]})")
        if not isinstance(self.resolution, (int, float)) or not self.resolution > 0:
            bad("resolution", "must be a positive number of mm")
        self.resolution = float(self.resolution)
        if not self.channels or not isinstance(self.channels, list):
            bad("channels", 'must list the input channels in order, e.g. ["T1w"]')
        wrong = [c for c in self.channels if c not in CHANNELS]
        if wrong:
            bad("channels", f"has {wrong[0]!r}; each is one of {', '.join(CHANNELS)}")
        if self.normalisation not in NORMALISATIONS:
            bad(
                "normalisation",
                f"is {self.normalisation!r}; bidsxai's preprocessing writes "
                f"{', '.join(NORMALISATIONS)}",
            )
        if self.intensity_range is not None:
            if self.normalisation != "minmax":
                bad("intensity_range", "is for min-max normalisation only")
            good = (
                isinstance(self.intensity_range, list)
                and len(self.intensity_range) == 2
                and all(isinstance(v, (int, float)) for v in self.intensity_range)
                and self.intensity_range[0] < self.intensity_range[1]
            )
            if not good:
                bad("intensity_range", "must be [low, high] with low < high, e.g. [0, 1]")
            self.intensity_range = [float(v) for v in self.intensity_range]
        if not isinstance(self.classes, list) or len(self.classes) < 2:
            bad("classes", "must list at least two class names, in the order of the outputs")
        if len({str(c) for c in self.classes}) != len(self.classes):
            bad("classes", "has a name twice")
        self.classes = [str(c) for c in self.classes]
        if self.output not in OUTPUT_KINDS:
            bad("output", f"is {self.output!r}; one of {', '.join(OUTPUT_KINDS)}")
        if self.output == "sigmoid" and len(self.classes) != 2:
            bad("output", "'sigmoid' is for two classes")
        if self.orientation != "RAS":
            bad("orientation", "must be RAS (bidsxai's template grids are RAS)")
        if self.crop is not None and (
            not isinstance(self.crop, list)
            or len(self.crop) != 3
            or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r)
                for r in self.crop
            )
        ):
            bad("crop", "must be [[x0, x1], [y0, y1], [z0, z1]] in voxels of the grid")
        if not isinstance(self.covariates, list) or not all(
            isinstance(c, str) and c for c in self.covariates
        ):
            bad("covariates", 'must list participants.tsv columns, e.g. ["age"], or be []')
        if len(set(self.covariates)) != len(self.covariates):
            bad("covariates", "has a column twice")
        self.trained_on = [str(s).removeprefix("sub-") for s in self.trained_on]

    def input_shape(self, grid_shape):
        """(channels, X, Y, Z) the model reads on a grid of ``grid_shape``."""
        box = self.crop_box(grid_shape)
        return (len(self.channels), *(hi - lo for lo, hi in box))

    def crop_box(self, grid_shape):
        if self.crop is None:
            return [[0, int(n)] for n in grid_shape]
        for axis, ((lo, hi), n) in enumerate(zip(self.crop, grid_shape)):
            if not 0 <= lo < hi <= n:
                raise UsageError(
                    f"the card's crop {self.crop[axis]} on axis {axis} does not fit the "
                    f"{self.space} grid at {self.resolution:g} mm ({n} voxels)"
                )
        return self.crop


def read_card(path):
    try:
        record = json.loads(path.read_text())
    except OSError as exc:
        raise NoInputError(f"--card {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise UsageError(f"--card {path}: not JSON ({exc})") from None
    return ModelCard.from_json(record, f"--card {path.name}")


def card_template():
    """The card ``bidsxai-import-model --init-card`` writes, to be filled in."""
    return {
        "name": "my_model",
        "space": "MNI152NLin2009cAsym",
        "resolution": 2,
        "channels": ["T1w"],
        "normalisation": "percentile",
        "crop": None,
        "orientation": "RAS",
        "classes": ["CN", "AD"],
        "output": "logits",
        "target": "group",
        "covariates": [],
        "intended_use": "research only: which disease the model was trained to detect, on whom",
        "training_data": {"name": "", "doi": ""},
        "trained_on": [],
        "licence": "",
        "authors": [],
        "references": [],
    }
