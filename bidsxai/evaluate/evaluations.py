"""One record per ``--evaluate`` choice: what it computes, the columns it writes, when it applies.

Everything else derives from this table, as the method table does for methods: the CLI's
``--evaluate`` choices and help, the dispatch in ``workflows.evaluate_session``, the evaluation
sidecar's description and recorded options, the group's method comparison (which columns it
summarises and in which direction a ranking reads them) and the reports' notes. Adding a measure
is one function and one record here, plus its test against an independent reference.
"""

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bidsxai.atomic import atomic_path
from bidsxai.errors import NoInputError
from bidsxai.evaluate.baselines import MARGINS, chance_scores, model_free_maps, with_margins
from bidsxai.evaluate.localisation import on_footing, template_localisation_row
from bidsxai.evaluate.robustness import robustness
from bidsxai.evaluate.sanity_verdict import DEAD_FRACTION, SANITY_THRESHOLD, curve, verdict
from bidsxai.explain.methods import CAM_FAMILY
from bidsxai.group.atlas import atlas_option
from bidsxai.normalisations import inverting_centre
from bidsxai.template import load_template
from bidsxai.training.crop_box import crop, uncrop

# What the sanity check computes its maps with, where a method's own parameters would cost a
# map per step that the check cannot afford (the trained model's map is recomputed with them too).
SANITY_PARAMETERS = {
    "ig": {"steps": 16},
    "smoothgrad": {"samples": 8},
    "perturbation": {"max_epochs": 300, "patience": 50},
}


@dataclass(frozen=True)
class Column:
    """A column of ``*_evaluation.tsv``."""

    name: str  # as written; for a per-mask column its stem (auroc -> auroc_<mask label>)
    meaning: str  # what a reader is told about it
    higher_is_better: bool | None = None  # None: a reference or a record, never ranked
    chance: float | None = None  # its value for a map that knows nothing, where that is fixed
    per_mask: bool = False  # one column per reference mask of the session
    # The method comparison summarises |value| under this name instead of the signed value.
    absolute_as: str | None = None
    # A ranking is stated on the primary column present of the lowest rank (1: AUROC, else 2).
    primary: int | None = None
    rate: bool = False  # a hit (0 or 1) per map: the method comparison gives a Wilson interval

    def names(self, masks=()):
        """The TSV column names it takes for a session with reference masks ``masks``."""
        return [f"{self.name}_{m}" for m in masks] if self.per_mask else [self.name]


@dataclass
class EvaluationContext:
    """What every evaluation of one explained session shares."""

    model: object
    x: object  # (1, C, *crop)
    spec: dict  # the bundle's input spec
    explanation: object  # workflows.explain_session.SessionExplanation
    options: object  # the run's explanation stage (Settings.stage("explanation"))
    layer: str
    template: object
    masks: dict  # label -> reference mask on the template grid
    members: dict  # "fold" / "run" -> {member name: model}, for robustness
    curves: dict = field(default_factory=dict)  # "<method>/<target>" -> faithfulness curves
    randomisation: dict = field(default_factory=dict)  # "<method>/<target>" -> sanity curves
    sensitivities: dict = field(default_factory=dict)  # the sanity check's, shared by its curves
    _maps: dict = field(default_factory=dict)  # (method, member) -> map, shared by robustness

    @functools.cached_property
    def region(self):
        """The brain on the model's crop."""
        return crop(self.template.brain_mask, self.spec["crop"])

    def parameters(self, method):
        """The method's parameters as the session was explained with them."""
        params = dict(self.explanation.parameters.get(method, {}))
        return dict(params, layer=self.layer) if method in CAM_FAMILY else params


@dataclass(frozen=True)
class Evaluation:
    name: str  # as typed in --evaluate
    run: Callable  # run(context, target_map) -> {column: value}
    columns: tuple  # (Column, ...)
    description: str  # one sentence for the sidecar and --help
    cost: str  # for --help: what it costs
    citation: str | None = None  # key in bidsxai/resources/boilerplate/references.bib
    predicted_only: bool = False  # evaluates the predicted class's map only (else every map)
    applies: Callable = lambda spec: True  # whether it applies to a model with this input spec
    # Re-initialises one network's layers: not run for a session that the fold models' ensemble
    # (models.ensemble) explains, which has several.
    single_network: bool = False
    options: tuple = ()  # (Settings field, sidecar key): the options it reads, as recorded
    # (context, rows) -> the session's rows with what the evaluation adds once per session (its
    # baselines and controls) and what it derives from all rows (margins).
    session_rows: Callable | None = None

    def recorded(self, settings):
        """Its entries in the evaluation sidecar: the options it ran with."""
        return {key: getattr(settings, name) for name, key in self.options}


def _footing(context, heatmap):
    return on_footing(heatmap, context.options.evaluate_sign)


def _faithfulness(context, item):
    from bidsxai.evaluate.faithfulness import faithfulness  # torch: imported where a model runs

    result = faithfulness(
        context.model,
        context.x,
        crop(_footing(context, item.heatmap), context.spec["crop"]),
        target=item.index,
        region=context.region,
        baseline=context.options.faithfulness_baseline,
        seed=context.options.seed,
        centre=inverting_centre(context.spec, context.x),
    )
    context.curves[f"{item.method}/{item.target}"] = {
        k: np.asarray(result[k]).tolist()
        for k in ("fractions", "inverted", "inverted_random", "deletion", "insertion")
    }
    return {c.name: result[c.name] for c in FAITHFULNESS_COLUMNS}


def _localisation(context, item):
    return _localise(context, _footing(context, item.heatmap))


def _localise(context, heatmap):
    """{<measure>_<mask>: value} of one map on the template grid against every reference mask."""
    return template_localisation_row(
        heatmap, context.masks, context.template, context.options.tolerance_mm
    )


def _localisation_controls(context, rows):
    """The session's rows with the model-free baselines, chance and each method's other-class
    control scored against the same masks (``evaluate.baselines``), once per target class so that
    each class's maps are compared with them, and each method row's margin over the best
    baseline."""
    if not context.masks:
        return rows
    template = context.template
    contrasts = {
        name: uncrop(context.x[0, c].detach().cpu().numpy(), context.spec["crop"], template.shape)
        for c, name in enumerate(context.spec["contrasts"])
    }
    baselines = model_free_maps(contrasts, template)
    scored = {name: _localise(context, heatmap) for name, heatmap in baselines.items()}
    chance = {}
    for label, mask in context.masks.items():
        found = chance_scores(
            mask,
            template.brain_mask,
            tolerance_mm=context.options.tolerance_mm,
            voxel_size=(template.resolution,) * 3,
        )
        chance.update({f"{k}_{label}": v for k, v in found.items()})
    scored["baseline-random"] = chance
    maps = context.explanation.maps
    added = []
    for target in dict.fromkeys(item.target for item in maps):
        added += [dict(method=name, target=target, **row) for name, row in scored.items()]
    # The other classes' maps were scored in their own rows: the control averages those scores.
    columns = list(scored[next(iter(baselines))])
    scores = {(r["method"], r["target"]): {c: r[c] for c in columns} for r in rows}
    for item in maps:
        others = [o for o in maps if o.method == item.method and o.target != item.target]
        if others:
            found = pd.DataFrame([scores[o.method, o.target] for o in others]).mean()
            added.append(
                dict(method=f"control-otherclass-{item.method}", target=item.target, **found)
            )
    return with_margins(rows + added, context.masks)


def _sanity(context, item):
    """Model-parameter randomisation of one map (``evaluate.randomisation``), cascading and
    layer by layer: the columns are the full cascade's; both curves go to the sidecar."""
    from bidsxai.evaluate.randomisation import randomisation  # torch, as above

    params = dict(context.parameters(item.method), **SANITY_PARAMETERS.get(item.method, {}))
    results = {}
    for mode in ("cascade", "independent"):  # the trained model's map is computed once
        results[mode] = randomisation(
            context.model,
            context.x,
            item.method,
            target=item.index,
            region=context.region,
            init_seed=context.options.seed,
            cascade=mode == "cascade",
            reference_map=results["cascade"]["reference_map"] if results else None,
            sensitivities=context.sensitivities,
            **params,
        )
    cascade = results["cascade"]
    context.randomisation[f"{item.method}/{item.target}"] = {
        "TrainedOutputSensitivity": cascade["reference_sensitivity"],
        "ParametersInsideTheCheck": SANITY_PARAMETERS.get(item.method, {}),
        "Cascade": curve(cascade),
        "Independent": curve(results["independent"]),
    }
    evaluable, passed = verdict(cascade)

    def last(key):
        value = float(cascade[key][-1])
        return value if np.isfinite(value) else None

    return {
        "sanity_spearman": last("spearman"),
        "sanity_abs_spearman": last("abs_spearman"),
        "sanity_ssim": last("ssim"),
        "sanity_hog": last("hog"),
        "sanity_output_sensitivity": last("sensitivity"),
        "sanity_evaluable": evaluable,
        "sanity_passed": passed,
    }


def _robustness(context, item):
    """Agreement of the map with the same session's maps from every fold model of repeat 1, and
    from every training run of the explaining fold (``train --seeds``)."""
    from bidsxai.explain.api import explain  # torch, as above

    compared = {kind: group for kind, group in context.members.items() if len(group) > 1}
    atlas = _cropped_atlas(context) if compared else None
    row = {}
    for kind, group in compared.items():
        maps = {}
        for name, member in group.items():
            key = (item.method, name)
            if key not in context._maps:  # the explaining fold's model is in both groups
                explained = explain(
                    member,
                    context.x,
                    item.method,
                    target=item.index,
                    **context.parameters(item.method),
                )
                context._maps[key] = explained[0].detach().cpu().numpy()
            maps[name] = context._maps[key]
        agreement = robustness(maps, region=context.region, atlas=atlas)
        row[f"{kind}_robustness_spearman"] = agreement["spearman_mean"]
        if atlas is not None:
            row[f"{kind}_robustness_roi_cosine"] = agreement["roi_cosine_mean"]
    return row


def _cropped_atlas(context):
    box = tuple(map(tuple, context.spec["crop"]))
    grid = (context.template.resolution, context.template.space)
    return _atlas_on_crop(context.options.atlas, grid, box)


@functools.lru_cache(maxsize=4)
def _atlas_on_crop(option, grid, box):
    """The --atlas regions on the model's crop, read once per process (None without an atlas)."""
    atlas = atlas_option(option, load_template(*grid))
    return atlas and dataclasses.replace(atlas, labels=crop(atlas.labels, box))


FAITHFULNESS_COLUMNS = (
    Column(
        "inverting_drop",
        "the mean fall of the target probability as the map's top 2.5-50 % voxels are inverted "
        "(1 - x, Lu et al. 2023; -x for z-scored inputs): a faithful map drops it faster than "
        "random voxels do",
        higher_is_better=True,
        primary=2,
    ),
    Column(
        "inverting_drop_random",
        "the same fall for random voxels of the same number: the reference for inverting_drop",
    ),
    Column(
        "partial_deletion_auc",
        "the area under the target probability as the map's top 2.5-50 % of the brain's voxels "
        "are replaced by the --faithfulness-baseline (a blurred copy, or ROAD's noisy linear "
        "imputation), divided by the swept range: low is faithful. Partial: not the deletion "
        "protocol of Petsiuk et al. (2018), which removes every pixel, fills with zeros and "
        "integrates over 0-1, so its numbers cannot be compared with theirs",
        higher_is_better=False,
    ),
    Column(
        "partial_insertion_auc",
        "the same area as only the top 2.5-50 % are kept and the rest replaced: high is "
        "faithful (partial, as partial_deletion_auc: not Petsiuk et al.'s insertion)",
        higher_is_better=True,
    ),
)

EVALUATIONS = {
    e.name: e
    for e in (
        Evaluation(
            "faithfulness",
            _faithfulness,
            FAITHFULNESS_COLUMNS,
            "faithfulness (voxel inverting of the top fraction of the map against a random set "
            "of the same size, Lu et al. 2023; partial deletion and insertion curves with a "
            "blurred or imputed baseline)",
            "about 50 Grad-CAMs per map",
            citation="lu2023",
            applies=lambda spec: not spec.get("slices"),
            options=(
                ("faithfulness_baseline", "FaithfulnessBaseline"),
                ("evaluate_sign", "MapSign"),
            ),
        ),
        Evaluation(
            "localisation",
            _localisation,
            (
                Column(
                    "auroc",
                    "the probability that a voxel inside the reference mask outscores one "
                    "outside it, within the brain (0.5 is chance)",
                    higher_is_better=True,
                    chance=0.5,
                    per_mask=True,
                    primary=1,
                ),
                Column(
                    "pointing",
                    "1 when the map's peak lies within --tolerance-mm of the mask (pointing game)",
                    higher_is_better=True,
                    per_mask=True,
                    rate=True,
                ),
                Column(
                    "peak_distance_mm",
                    "the distance from the map's peak to the mask, in mm",
                    higher_is_better=False,
                    per_mask=True,
                ),
                Column(
                    "mass_inside",
                    "the share of the map's positive mass within the brain that lies inside the "
                    "mask",
                    higher_is_better=True,
                    per_mask=True,
                ),
                Column(
                    "rank_accuracy",
                    "of the map's K highest brain voxels, K the mask's size, the share inside the "
                    "mask (relevance rank accuracy, Arras et al. 2022)",
                    higher_is_better=True,
                    per_mask=True,
                ),
                Column(
                    "separation",
                    "where the session has a label-distractor mask: the AUROC of this mask's "
                    "voxels against the distractor's, over those voxels only (0.5: the map lights "
                    "both alike, as a map that follows the image does; 1: the signal only)",
                    higher_is_better=True,
                    chance=0.5,
                    per_mask=True,
                ),
                *(
                    Column(
                        f"{measure}_margin",
                        f"the map's {measure} minus the best model-free baseline's (the "
                        "baseline-* rows: each input contrast and its inversion, the tissue "
                        "priors, depth and chance): positive where the method localises better "
                        "than every map that never looked at the model",
                        higher_is_better=True,
                        chance=0.0,
                        per_mask=True,
                    )
                    for measure in MARGINS
                ),
            ),
            "localisation against reference masks (AUROC, pointing game, mass inside, rank "
            "accuracy), beside "
            "maps that never looked at the model (baseline-* rows), each method's map of the "
            "other classes (control-otherclass-* rows) and each method's margin over the best "
            "baseline",
            "little",
            options=(("tolerance_mm", "PointingToleranceMM"), ("evaluate_sign", "MapSign")),
            session_rows=_localisation_controls,
        ),
        Evaluation(
            "sanity",
            _sanity,
            (
                Column(
                    "sanity_spearman",
                    "Spearman of the map with the trained model's once every layer of the model "
                    "is re-initialised, output first (cascading model randomisation, Adebayo et "
                    "al. 2018), signed; empty when not evaluable",
                    chance=0.0,
                    absolute_as="sanity_spearman_magnitude",
                ),
                Column(
                    "sanity_abs_spearman",
                    "Spearman of the absolute values of the same two maps: the check's measure, "
                    f"|value| below {SANITY_THRESHOLD:g} passes; empty when not evaluable",
                    chance=0.0,
                    absolute_as="sanity_abs_spearman_magnitude",
                ),
                Column(
                    "sanity_ssim",
                    "SSIM of the same two maps: near 0 passes",
                    higher_is_better=False,
                ),
                Column(
                    "sanity_hog",
                    "Pearson correlation of the two maps' HOG descriptors (Dalal & Triggs 2005; "
                    "axial slice by slice, within the brain's bounding box): near 0 passes",
                    higher_is_better=False,
                ),
                Column(
                    "sanity_output_sensitivity",
                    "the fully randomised network's output sensitivity over the trained "
                    "network's (root mean square change of the logits under input noise of 0.1 "
                    f"SD); below {DEAD_FRACTION:g} the randomised network ignores its input and "
                    "the check is not evaluable",
                ),
                Column(
                    "sanity_evaluable",
                    "whether the check could be made: both maps finite and not constant within "
                    "the brain, and the randomised network not dead (sanity_output_sensitivity "
                    f"at least {DEAD_FRACTION:g})",
                    rate=True,
                ),
                Column(
                    "sanity_passed",
                    f"whether the check passed: evaluable and |sanity_abs_spearman| < "
                    f"{SANITY_THRESHOLD:g}; False when not evaluable",
                    rate=True,
                ),
            ),
            "sanity (model-parameter randomisation, Adebayo et al. 2018: layers re-initialised "
            "from the output down, by distance from it, and one at a time; Spearman of the "
            "signed and of the absolute maps, SSIM, HOG and output sensitivity at every step; "
            "integrated gradients with 16 steps, SmoothGrad with 8 samples and "
            "meaningful-perturbation masks with at most 300 epochs inside the check)",
            "two maps per randomisation step",
            citation="adebayo2018",
            predicted_only=True,
            applies=lambda spec: not spec.get("slices"),
            single_network=True,
        ),
        Evaluation(
            "robustness",
            _robustness,
            tuple(
                Column(
                    f"{kind}_robustness_{measure}",
                    f"the mean {label} of the maps of {models}",
                    higher_is_better=True,
                )
                for kind, models in (
                    ("fold", "every fold model, for a subject none of them trained on"),
                    ("run", "every training run of the explaining fold (train --seeds)"),
                )
                for measure, label in (
                    ("spearman", "Spearman"),
                    ("roi_cosine", "ROI-vector cosine (with an atlas)"),
                )
            ),
            "robustness (Spearman and ROI-vector cosine of the maps of every fold model, and of "
            "every training run of the explaining fold)",
            "one map per fold model",
            citation="thibeausutre2020",
            predicted_only=True,
        ),
    )
}

SIDECAR_CONSTANTS = {"SanityThreshold": SANITY_THRESHOLD, "SanityDeadFraction": DEAD_FRACTION}


def evaluate_help():
    """The --evaluate help text, from the records."""
    choices = "; ".join(f"{e.description} (costs {e.cost})" for e in EVALUATIONS.values())
    return (
        f"participant --model: comma-separated evaluations of every heatmap: {choices}; "
        "localisation needs --derivatives masks=PATH; none for no evaluation"
    )


def columns():
    """Every column of every evaluation, in table order."""
    return [c for e in EVALUATIONS.values() for c in e.columns]


def column_of(name):
    """(the ``Column`` a TSV column belongs to, its mask label or None), or (None, None) for a
    column no evaluation writes (method, target)."""
    # The longest stem first: auroc_margin_<mask> is not auroc of mask "margin_<mask>".
    for column in sorted(columns(), key=lambda c: -len(c.name)):
        if column.per_mask and name.startswith(f"{column.name}_"):
            return column, name[len(column.name) + 1 :]
        if not column.per_mask and name == column.name:
            return column, None
    return None, None


def column_notes(names):
    """What the reports say of the evaluation columns among ``names`` (a table's columns): one
    {"name", "meaning", "direction", "chance"} per record column present, in record order, a
    per-mask column once as ``<stem>_<mask>``; ``direction`` is "higher is better", "lower is
    better" or None."""
    present = {column_of(n)[0] for n in names} | {
        c for c in columns() if c.absolute_as and c.absolute_as in names
    }
    notes = []
    for column in columns():
        if column not in present:
            continue
        direction = {True: "higher is better", False: "lower is better"}.get(
            column.higher_is_better
        )
        name = f"{column.name}_<mask>" if column.per_mask else column.name
        if column.absolute_as in names:
            name, direction = column.absolute_as, "lower is better"
        notes.append(
            {
                "name": name,
                "meaning": column.meaning,
                "direction": direction,
                "chance": column.chance,
            }
        )
    return notes


KEY_COLUMNS = {"method": "the explanation method", "target": "the class whose map it is"}


def write_table(path, rows):
    """``*_evaluation.tsv``: one row per map, its evaluations' columns in record order."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_table(path):
    """``*_evaluation.tsv`` as a DataFrame; a column no evaluation writes is refused with one
    line naming the file and the column (an older or foreign table)."""
    table = pd.read_csv(path, sep="\t")
    for name in table.columns:
        if name not in KEY_COLUMNS and column_of(name)[0] is None:
            raise NoInputError(f"{path}: column {name!r} is not one that --evaluate writes")
    missing = [k for k in KEY_COLUMNS if k not in table.columns]
    if missing:
        raise NoInputError(f"{path}: no {missing[0]!r} column")
    return table


def column_descriptions(names):
    """The TSV's columns described as BIDS describes tabular files in their JSON sidecar:
    {column: {"Description", and "HigherIsBetter" / "ChanceLevel" where the record has them}}."""
    described = {}
    for name in names:
        if name in KEY_COLUMNS:
            described[name] = {"Description": KEY_COLUMNS[name]}
            continue
        column, mask = column_of(name)
        entry = {"Description": column.meaning + (f" (mask {mask!r})" if mask else "")}
        if column.higher_is_better is not None:
            entry["HigherIsBetter"] = column.higher_is_better
        if column.chance is not None:
            entry["ChanceLevel"] = column.chance
        described[name] = entry
    return described
