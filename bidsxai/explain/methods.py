"""One record per explanation method: what it is, where it comes from, what its values mean.

Everything else derives from this table: the CLI's ``--methods`` choices and help, the parameters a
method takes and their defaults (read from the function's signature, so a default is written once),
the options of ``Settings`` that set them, the parameter record and the per-map extras in every
heatmap sidecar, and the method's sentence in the methods text with its citations.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from bidsxai.normalisations import input_bounds

# The arguments every input method receives positionally, not parameters a user sets.
_CALL_ARGUMENTS = {"model", "x", "targets", "activation", "gradient", "class_weights"}


@dataclass(frozen=True)
class Method:
    name: str  # as typed in --methods and written in file names (method-<name>)
    label: str  # as the literature names it
    family: str  # "cam" (activation, gradient) -> map; "input": (model, x, targets) -> maps, extras
    # Its function as "module:name" in bidsxai.explain, imported on first use (``function``), so
    # that the table is read without torch: the --help text, a report's methods text.
    where: str
    values: str  # what a map's values are, for sidecars
    citation: str  # key in bidsxai/resources/boilerplate/references.bib
    # The functions ("module:name") whose keyword defaults the method takes (default: its own).
    parameter_sources: tuple = ()
    # Parameters left out of the sidecars' record: those that change speed or memory but not the
    # map, and those that only apply to an option the CLI does not offer.
    unrecorded: tuple = ()
    # (Settings field, parameter): the options of a run that set its parameters.
    options: tuple = ()
    # adapt(params, spec, x) -> params: parameters that follow from the model's input.
    adapt: Callable | None = None
    # extras(result, n, t) -> {HeatmapSidecar field: number}: what it reports per map besides the
    # map, from explain_many's result for sample n and target column t.
    extras: Callable | None = None
    # What the methods text adds after its name and citation, formatted with its parameters.
    details: str = ""

    @property
    def function(self) -> Callable:
        return _imported(self.where)

    @property
    def defaults(self) -> dict:
        """The method's keyword parameters and their defaults, from its functions' signatures."""
        found = {}
        for where in self.parameter_sources or (self.where,):
            for name, p in inspect.signature(_imported(where)).parameters.items():
                if name not in _CALL_ARGUMENTS and p.default is not inspect.Parameter.empty:
                    found[name] = p.default
        return found

    def record(self, params: dict) -> dict:
        """The parameters a heatmap's sidecar records: every one that shapes the map."""
        return {k: v for k, v in params.items() if k not in self.unrecorded}

    def parameters(self, settings, spec=None, x=None) -> dict:
        """Its parameters in a run: the defaults, the run's options over them (those it set; an
        unset one is None), then what the model's input implies (``spec``: the bundle's input
        spec; ``x``: the input)."""
        params = dict(self.defaults)
        given = {name: getattr(settings, field) for field, name in self.options}
        params.update({name: value for name, value in given.items() if value is not None})
        if self.adapt is not None and spec is not None:
            params = self.adapt(params, spec, x)
        return params

    def map_extras(self, result, n, t) -> dict:
        return self.extras(result, n, t) if self.extras else {}

    def sentence(self, settings) -> str:
        """Its words in the methods text: name, citation and what the run's options chose."""
        details = self.details.format(**self.parameters(settings)) if self.details else ""
        return f"{self.label} [@{self.citation}]{details}"


def _imported(where):
    module, name = where.split(":")
    return getattr(import_module(f"bidsxai.explain.{module}"), name)


def _lrp_bounds(params, spec, x):
    """z-beta's bounds are the range the input can take (``normalisations.input_bounds``):
    [0, 1] after percentile normalisation, the card's range after min-max, the input's own
    minimum and maximum after z-scoring or none."""
    if spec.get("normalisation") in (None, "percentile"):
        return params  # z-beta's own default bounds are [0, 1]
    return dict(params, bounds=list(input_bounds(spec, x)))


METHODS = {
    m.name: m
    for m in (
        Method(
            "cam",
            "CAM",
            "cam",
            "cam:cam_from",
            "CAM: class-weighted sum of the layer's feature maps (no ReLU)",
            "zhou2016",
        ),
        Method(
            "gradcam",
            "Grad-CAM",
            "cam",
            "gradcam:gradcam_from",
            "Grad-CAM: ReLU of the gradient-weighted feature maps",
            "selvaraju2017",
        ),
        Method(
            "gradcampp",
            "Grad-CAM++",
            "cam",
            "gradcampp:gradcampp_from",
            "Grad-CAM++ (eq. 19) without the voxel-independent factor exp(logit)",
            "chattopadhyay2018",
        ),
        Method(
            "hirescam",
            "HiResCAM",
            "cam",
            "hirescam:hirescam_from",
            "HiResCAM: sum over channels of gradient times activation at each position (signed)",
            "draelos2020",
        ),
        Method(
            "layercam",
            "LayerCAM",
            "cam",
            "layercam:layercam_from",
            "LayerCAM: ReLU of the feature maps weighted by their positive gradients at each "
            "position",
            "jiang2021",
        ),
        Method(
            "saliency",
            "saliency maps",
            "input",
            "gradients:saliency",
            "maximum over channels of |d logit / d input|",
            "simonyan2014",
        ),
        Method(
            "smoothgrad",
            "SmoothGrad",
            "input",
            "gradients:smoothgrad",
            "saliency averaged over noisy copies of the input",
            "smilkov2017",
        ),
        Method(
            "ig",
            "integrated gradients",
            "input",
            "gradients:integrated_gradients",
            "integrated gradients summed over channels",
            "sundararajan2017",
            unrecorded=("internal_batch_size", "blur_sigma"),
            extras=lambda result, n, t: {
                "completeness_error": float(result["ig_completeness_error"][n, t])
            },
        ),
        Method(
            "lrp",
            "layer-wise relevance propagation",
            "input",
            "lrp:lrp",
            "layer-wise relevance propagation (bias-free rules; see the composite)",
            "bach2015",
            options=(
                ("lrp_composite", "composite"),
                ("lrp_start", "start"),
                ("lrp_map", "channels"),
            ),
            adapt=_lrp_bounds,
            details=" ({composite} rules without biases, from the {start} [@lu2023])",
        ),
        Method(
            "perturbation",
            "meaningful-perturbation masks",
            "input",
            "perturbation:perturbation",
            "1 - the meaningful-perturbation mask (Thibeau-Sutre et al. 2020, eq. 2) fitted to "
            "this session",
            "thibeausutre2020",
            parameter_sources=("perturbation:perturbation", "perturbation:fit_mask"),
            extras=lambda result, n, t: {
                "probability_before_mask": float(result["perturbation_probability_before"][n, t]),
                "probability_after_mask": float(result["perturbation_probability_after"][n, t]),
            },
        ),
    )
}


def methods_help():
    """The --methods help text, from the table."""
    return "comma-separated: " + ", ".join(f"{m.name} ({m.label})" for m in METHODS.values())


CAM_FAMILY = tuple(name for name, m in METHODS.items() if m.family == "cam")
INPUT_METHODS = tuple(name for name, m in METHODS.items() if m.family == "input")
