"""The settings of one run: every option's name, default, type and help text, written once.

``Settings`` is the single source. The command-line parser is generated from its fields
(``bidsxai.cli.build_parser``), the parsed namespace becomes ``Settings(**vars(args))``, and the
TOML saved under OUTPUT_DIR/logs/ is the same object in the same sections, so it reads back with
``Settings.from_toml``.
"""

import argparse
import os
import secrets
import sys
import time
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path

import tomli_w

from bidsxai import __version__
from bidsxai.atomic import write_text
from bidsxai.errors import UsageError
from bidsxai.memory import MAX_BATCH_SESSIONS, SESSION_MEMORY_GB, slurm_memory_gb
from bidsxai.normalisations import METHODS as NORMALISATIONS
from bidsxai.outputs import crash_dir, settings_log_path
from bidsxai.template_files import DEFAULT_SPACE, check_space_name

# The stages whose options travel together (``Settings.stage``): each is a section of options.
STAGES = ("preprocessing", "training", "explanation", "group")
SECTIONS = {
    "data": "selecting data",
    "execution": "running",
    "preprocessing": "preprocessing",
    "explanation": "models and explanations",
    "training": "training",
    "group": "group level",
}


def new_run_id():
    """A run's id: its start time and a random part, so runs started in the same second differ."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def available_cpus():
    """CPUs this process may use: SLURM's allocation, else the affinity mask, else the count."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _words(text):
    """A comma-separated list: 'gradcam, lrp' -> ['gradcam', 'lrp']."""
    return [w.strip() for w in text.split(",") if w.strip()]


class _LabelsOrFiles(argparse.Action):
    """``--participant-label 01 sub-02 pending.txt``: a BIDS label (letters and digits, its
    prefix optional) is itself; anything else is a file of labels, one per line (blank lines and
    ``#`` comments skipped), such as the one ``--write-pending`` writes."""

    def __call__(self, parser, namespace, values, option_string=None):
        labels = []
        for value in values:
            if value.removeprefix("sub-").isalnum():
                labels.append(value)
                continue
            try:
                lines = Path(value).read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not text"
                parser.error(
                    f"{option_string} {value}: not a label, nor a file of labels ({reason})"
                )
            found = [line.split("#")[0].strip() for line in lines]
            bad = [f for f in found if f and not f.removeprefix("sub-").isalnum()]
            if bad:
                parser.error(f"{option_string} {value}: {bad[0]!r} is not a participant label")
            labels += [f for f in found if f]
        setattr(namespace, self.dest, labels)


def _at_least(minimum):
    def check(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    check.__name__ = "integer"
    return check


def _memory(text):
    """fMRIPrep's --mem: a number with an optional unit (K, M, G, T; MB when none), in GB."""
    scale = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    number = text.strip().upper().removesuffix("B")
    unit = number[-1] if number[-1:] in scale else "M"
    try:
        value = float(number.removesuffix(unit) if number[-1:] in scale else number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount of memory: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value * scale[unit]


def _bins(text):
    from bidsxai.training.targets import parse_bins

    try:
        return [list(b) for b in parse_bins(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _session_pair(text):
    """'baseline,followup' (or 'ses-baseline,ses-followup') -> ['baseline', 'followup']."""
    labels = [w.removeprefix("ses-") for w in _words(text)]
    if len(labels) != 2 or labels[0] == labels[1]:
        raise argparse.ArgumentTypeError(f"two different session labels, got {text!r}")
    return labels


def _positive(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _output_space(text):
    try:
        return check_space_name(text.strip())
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def option(default=None, *, help, section, flags=None, factory=None, stages=(), **parser):
    """A setting: its default (or ``factory``), help text (or a function that writes it from a
    record, such as the method table), parser section, the other stages that read it besides
    its section's (``stages``), and any further ``argparse.add_argument`` keywords (``type``,
    ``choices``, ``nargs``, ``action``, ...)."""
    meta = {"help": help, "section": section, "flags": flags, "parser": parser, "stages": stages}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _methods(text):
    from bidsxai.explain.methods import METHODS

    names = _words(text)
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}"
        )
    return names


def _model_inputs(text):
    from bidsxai.bids import CONTRAST_KEYS
    from bidsxai.outputs import TISSUE_INPUTS

    known = [*CONTRAST_KEYS.values(), *TISSUE_INPUTS]
    names = _words(text)
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) < len(names):
        problem = f"unknown {', '.join(unknown)}" if unknown else "each once, at least one"
        raise argparse.ArgumentTypeError(f"{problem}; choose from {', '.join(known)}")
    return names


def _evaluations(text):
    from bidsxai.evaluate.evaluations import EVALUATIONS

    names = [] if text.strip() == "none" else _words(text)
    unknown = [n for n in names if n not in EVALUATIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown)}; choose from {', '.join(EVALUATIONS)} or none"
        )
    return names


def _lrp_composite(text):
    from bidsxai.explain.lrp import COMPOSITE_ALIASES

    return COMPOSITE_ALIASES.get(text, text)


def _augment(text):
    from bidsxai.training.augment import SCHEME_ALIASES

    return SCHEME_ALIASES.get(text, text)


def _methods_help():
    from bidsxai.explain.methods import methods_help

    return methods_help()


def _evaluate_help():
    from bidsxai.evaluate.evaluations import evaluate_help

    return evaluate_help()


def _lrp_choices():
    from bidsxai.explain.lrp import COMPOSITES

    return COMPOSITES


def _augment_choices():
    from bidsxai.training.augment import SCHEMES

    return ("auto", *SCHEMES)


def _lrp_help(text, parameter):
    """An LRP option's help: unset, it is the ``lrp`` function's own default, shown here."""

    def write():
        from bidsxai.explain.methods import METHODS

        return f"{text} (default {METHODS['lrp'].defaults[parameter]})"

    return write


@dataclass
class Settings:
    # The three positional arguments of every BIDS-App.
    bids_dir: Path = option(
        help="the input BIDS dataset (read only)", section="positional", type=Path
    )
    output_dir: Path = option(help="where the BIDS-Derivatives go", section="positional", type=Path)
    level: str = option(
        help="participant, train or group",
        section="positional",
        choices=("participant", "train", "group"),
        metavar="analysis_level",
    )

    participant_label: list = option(
        section="data",
        factory=list,
        flags=("--participant-label", "--participant_label"),
        nargs="+",
        metavar="LABEL",
        action=_LabelsOrFiles,
        help="subjects to process ('sub-' prefix optional), or files of labels, one per line",
    )
    session_label: list = option(
        section="data",
        factory=list,
        flags=("--session-label", "--session_label"),
        nargs="+",
        metavar="LABEL",
        help="sessions to process ('ses-' prefix optional)",
    )
    exclude_file: list = option(
        section="data",
        factory=list,
        nargs="+",
        type=Path,
        metavar="FILE",
        help="train, group: leave out the sessions whose latest rating in these qc-ratings.tsv "
        "files (downloaded from the subject reports) is fail, naming them in model.json and the "
        "reports",
    )
    bids_filter_file: Path | None = option(
        section="data",
        type=Path,
        metavar="FILE",
        help='JSON {"t1w": {...}, "t2w": {...}, "flair": {...}} of pybids entities',
    )
    derivatives: dict = option(
        section="data",
        factory=dict,
        nargs="+",
        metavar="[NAME=]PATH",
        help="derivatives datasets: already preprocessed images under bidsxai's names; "
        "masks=PATH, reference masks (lesion segmentations) for localisation and lesion load; "
        "smriprep=PATH or fmriprep=PATH, anatomical preprocessing to reuse (their T1w, brain "
        "mask and transform to the template)",
    )
    skip_bids_validation: bool = option(
        False,
        section="data",
        flags=("--skip-bids-validation", "--skip_bids_validation"),
        help="do not run the BIDS validator on the input",
    )

    work_dir: Path | None = option(
        section="execution",
        flags=("-w", "--work-dir"),
        type=Path,
        help="scratch folder (default: system temp)",
    )
    bids_database_dir: Path | None = option(
        section="execution",
        type=Path,
        metavar="DIR",
        help="a pybids index of BIDS_DIR to reuse: made in DIR on first use and read on later "
        "runs, so that the tasks of a job array do not each index the dataset",
    )
    write_pending: Path | None = option(
        section="execution",
        type=Path,
        metavar="FILE",
        help="participant level: keep FILE listing the subjects with a session not yet done "
        "(one label per line, a file --participant-label reads), written at the start and "
        "rewritten as each session finishes, so that a stopped or killed job array leaves what "
        "to resubmit",
    )
    boilerplate_only: bool = option(
        False,
        section="execution",
        help="write the methods text and its references (OUTPUT_DIR/logs/CITATION.md and "
        ".bib) and exit",
    )
    device: str = option("auto", section="execution", help="auto, cpu or cuda[:N]")
    nprocs: int = option(
        section="execution",
        factory=available_cpus,
        flags=("--nprocs", "--n-cpus"),
        type=_at_least(1),
        help="sessions processed in parallel (default: the CPUs this process may "
        "use, SLURM_CPUS_PER_TASK or the affinity mask)",
    )
    omp_nthreads: int | None = option(
        section="execution",
        type=_at_least(1),
        metavar="N",
        help="most threads per process, for torch, OpenMP, BLAS, numba and ITK (default: the "
        "CPUs this process may use, shared among the sessions that run at once)",
    )
    mem: float | None = option(
        section="execution",
        factory=slurm_memory_gb,
        flags=("--mem", "--mem-mb"),
        type=_memory,
        metavar="MEM",
        help="memory for the run, e.g. 16G or 16000 (MB without a unit): no more sessions run "
        f"at once than fit at {SESSION_MEMORY_GB:g} GB each (default: SLURM_MEM_PER_NODE where "
        "set, else no limit beyond --nprocs)",
    )
    batch_sessions: int | None = option(
        section="execution",
        type=_at_least(1),
        metavar="N",
        help="participant --model: sessions classified and explained together in one pass of "
        "the model (default: as many as half the memory available holds, at most "
        f"{MAX_BATCH_SESSIONS})",
    )
    stop_on_first_crash: bool = option(
        False,
        section="execution",
        help="stop at the first session that fails (the default runs every other session)",
    )
    seed: int = option(
        0, section="execution", stages=STAGES, type=int, help="random seed of every stage"
    )
    reports_only: bool = option(
        False, section="execution", help="only (re)write the reports from existing outputs"
    )
    verbose: int = option(
        0,
        section="execution",
        flags=("-v", "--verbose"),
        action="count",
        help="more messages (repeat for more)",
    )
    quiet: int = option(
        0, section="execution", flags=("-q", "--quiet"), action="count", help="fewer messages"
    )

    output_space: str = option(
        DEFAULT_SPACE,
        section="preprocessing",
        flags=("--output-spaces", "--output-space"),
        type=_output_space,
        metavar="TEMPLATE",
        help="the TemplateFlow template every output is written on, e.g. MNI152NLin2009cAsym "
        "(fMRIPrep's default); read from TEMPLATEFLOW_HOME, fetched where a network is "
        f"reachable. {DEFAULT_SPACE} is seeded from nilearn's copy and needs no network",
    )
    resolution: float = option(
        2.0, section="preprocessing", type=_positive, help="model grid in mm"
    )
    normalisation: str = option(
        "percentile",
        section="preprocessing",
        choices=NORMALISATIONS,
        help="intensity normalisation within the brain: percentile (1st-99th percentile to "
        "[0, 1]), zscore, minmax (minimum-maximum to [0, 1]) or none",
    )
    nonlinear: bool = option(
        False, section="preprocessing", help="SyN instead of affine to the template"
    )
    skull_strip: str = option(
        "auto",
        section="preprocessing",
        choices=("auto", "deepbet", "template"),
        help="the brain mask: deepbet's of the subject's T1w (Fisch et al. 2024), or the "
        "template's; auto: deepbet for T1w voxels up to 1.5 mm, the template's for coarser ones",
    )

    tissue_maps: bool = option(
        False,
        section="preprocessing",
        help="also GM, WM and CSF probability maps (Atropos with the template's priors, or "
        "sMRIPrep's), in T1w space and on the template grid, and GM modulated by the Jacobian "
        "determinant: model inputs for train --contrasts GM, WM, CSF, GMmod",
    )

    qc_override: bool = option(
        False,
        section="explanation",
        help="classify and explain sessions that fail the quality gate after preprocessing "
        "(brain coverage, correlation with the template, intensity spread; docs/usage.md)",
    )
    model: str | None = option(
        section="explanation",
        metavar="NAME_OR_PATH",
        help="participant: bundle to classify and explain with; train: bundle name",
    )
    target: str | None = option(
        section="explanation",
        help="participants.tsv column to predict (train) and to group by (default: the target "
        "of the --model bundle, else group)",
    )
    arch: str = option(
        "cnn3d", section="explanation", help="architecture to train (--list-architectures)"
    )
    explain_layer: str | None = option(
        section="explanation",
        help="layer of the CAM family (default: the last convolutional block)",
    )
    methods: list = option(
        section="explanation",
        factory=lambda: ["gradcam"],
        type=_methods,
        help=_methods_help,
    )
    targets: str = option(
        "all",
        section="explanation",
        help="classes to explain: predicted, all, or comma-separated class names",
    )
    # The LRP options left unset (None) take the lrp function's defaults (Method.parameters).
    lrp_composite: str | None = option(
        section="explanation",
        type=_lrp_composite,
        choices=_lrp_choices,
        help=_lrp_help(
            "LRP rules by layer: zbeta-alphabeta-epsilon (z-beta on input layers, alpha1-beta0 "
            "on convolutions, epsilon on dense layers; Lu et al. 2023), or one rule everywhere "
            "(epsilon, alpha1beta0, alpha2beta1; gamma with epsilon on dense layers)",
            "composite",
        ),
    )
    lrp_start: str | None = option(
        section="explanation",
        choices=("logit", "attention"),
        help=_lrp_help(
            "start LRP from the class logit or, for gated-attention models, from the attention "
            "weights (Lu et al. 2023)",
            "start",
        ),
    )
    lrp_map: str | None = option(
        section="explanation",
        choices=("sum", "combined"),
        help=_lrp_help(
            "LRP map: relevance summed over contrasts, or the combined map, the sum of "
            "relevance x image (Lu et al. 2023, eq. 8)",
            "channels",
        ),
    )
    evaluate: list = option(
        section="explanation",
        factory=lambda: ["localisation"],
        type=_evaluations,
        help=_evaluate_help,
    )
    faithfulness_baseline: str = option(
        "blur",
        section="explanation",
        choices=("blur", "road"),
        help="what deletion and insertion put in place of the voxels they remove: blur (a "
        "Gaussian-blurred copy, SD 3 voxels; cheap) or road (noisy linear imputation, Rong et "
        "al. 2022; hides the removal's shape, one sparse solve per fraction)",
    )
    tolerance_mm: float = option(
        6.0,
        section="explanation",
        type=_positive,
        help="pointing game: the peak counts as a hit within this distance of a mask, in mm",
    )
    evaluate_sign: str = option(
        "absolute",
        section="explanation",
        choices=("absolute", "signed"),
        help="--evaluate localisation and faithfulness read signed maps (integrated gradients, "
        "LRP) as their absolute values, so that every method is compared on the same footing as "
        "saliency's magnitudes and the CAMs' non-negative maps; signed keeps the sign",
    )
    pretrained: Path | None = option(
        section="explanation",
        type=Path,
        metavar="FILE",
        help="2D models: ImageNet weights from a local torchvision state-dict file (nothing is "
        "downloaded)",
    )
    slice_size: int = option(
        256,
        section="explanation",
        type=_at_least(1),
        help="2D models: axial slices are resized to SIZE x SIZE (Zhang et al. 2021)",
    )
    mc_samples: int = option(
        50,
        section="explanation",
        type=_at_least(0),
        help="participant: Monte Carlo dropout passes for models with MC dropout "
        "(mean and SD of the class probabilities; 0: off)",
    )

    contrasts: list | None = option(
        section="training",
        type=_model_inputs,
        metavar="LIST",
        help="train: the model's input channels in order, comma-separated: T1w, T2w, FLAIR "
        "(preprocessed images), GM, WM, CSF, GMmod (maps of participant --tissue-maps; GMmod: "
        "GM modulated by the Jacobian determinant); default: every contrast all sessions have",
    )
    target_threshold: float | None = option(
        section="training",
        type=float,
        metavar="VALUE",
        help="binarise a numeric --target at VALUE (e.g. --target edss --target-threshold 5)",
    )
    target_bins: list | None = option(
        section="training",
        type=_bins,
        metavar="BINS",
        help="ordered classes from a numeric --target: closed intervals LOW-HIGH, e.g. --target "
        "mrs --target-bins 0-2,3-6 (Avci 2021)",
    )
    loss_weight: str = option(
        "none",
        section="training",
        choices=("none", "closeness"),
        help="closeness: weight each subject 2 - |value - threshold| / threshold (Lu et al. 2023)",
    )
    cv_folds: int = option(
        3,
        section="training",
        type=_at_least(2),
        help="subject-level stratified folds (3 keeps a third of a small cohort for early "
        "stopping)",
    )
    cv_repeats: int = option(
        1,
        section="training",
        type=_at_least(1),
        help="repeat the cross-validation with new folds and seeds",
    )
    seeds: int = option(
        1,
        section="training",
        type=_at_least(1),
        metavar="N",
        help="train every fold model N times with different seeds on the same folds, for run "
        "robustness (Thibeau-Sutre et al. 2020); the metrics and the explaining model are run 1's",
    )
    test_fraction: float = option(
        0.2,
        section="training",
        type=float,
        help="share of each class held out as the test set (0: none)",
    )
    validation: str = option(
        "fold",
        section="training",
        choices=("fold", "inner"),
        help="what stops each fold model early and chooses its epoch: the fold it then predicts "
        "and explains (fold), or an inner split of its training folds (inner: the nested "
        "protocol, so out-of-fold metrics and explanations never took part in choosing the "
        "model; each model trains on a fold's share fewer subjects)",
    )
    final_model: str = option(
        "ensemble",
        section="training",
        choices=("ensemble", "best-fold"),
        help="the model that classifies and explains the test set and new subjects: the fold "
        "models' ensemble, which averages their class probabilities and maps, or the one fold "
        "model with the best --select-by score on its validation fold",
    )
    select_by: str = option(
        "loss",
        section="training",
        choices=("loss", "balanced_accuracy"),
        help="keep the epoch with the best validation loss or balanced accuracy "
        "(Thibeau-Sutre et al. 2020)",
    )
    epochs: int = option(20, section="training", type=_at_least(1), help="most epochs per model")
    patience: int = option(
        6, section="training", type=_at_least(1), help="early stopping on the validation loss"
    )
    batch_size: int = option(4, section="training", type=_at_least(1), help="samples per step")
    optimiser: str | None = option(
        section="training",
        choices=("adam", "adamw"),
        help="default: the architecture's published recipe",
    )
    learning_rate: float | None = option(
        section="training", type=_positive, help="default: the architecture's published recipe"
    )
    weight_decay: float | None = option(
        section="training", type=float, help="default: the architecture's published recipe"
    )
    augment: str = option(
        "auto",
        section="training",
        type=_augment,
        choices=_augment_choices,
        help="slice-affine (2D: rotation, shear, zoom, shift, flip; Zhang et al. 2021), "
        "volume-affine (3D: flips, quarter turns, affine, noise; Lu et al. 2023), "
        "flip (left-right), none; auto: the architecture's published scheme",
    )
    precision: str = option(
        "auto",
        section="training",
        choices=("auto", "fp32", "amp"),
        help="amp: mixed precision (float16 on GPU, bfloat16 on CPU); auto: amp on GPU",
    )
    loader_workers: int | None = option(
        section="training",
        type=_at_least(0),
        metavar="N",
        help="data loader processes (default 4 on GPU, 0 on CPU)",
    )
    arch_width: float = option(
        1.0,
        section="training",
        type=_positive,
        help="channel multiplier of the 2D architectures, for quick trials",
    )

    groups: list = option(
        section="group",
        factory=list,
        nargs=2,
        metavar="GROUP",
        help="the pair of groups to compare (default: every pair)",
    )
    sessions_compare: list | None = option(
        section="group",
        type=_session_pair,
        metavar="BEFORE,AFTER",
        help="also test each subject's change from one session to another (AFTER minus BEFORE): "
        "paired, voxel-wise with sign flips, and on the subject measures",
    )
    n_perm: int = option(
        1000,
        section="group",
        type=_at_least(0),
        help="permutations for family-wise error (max-T, and TFCE or cluster mass "
        "if asked; 0: none)",
    )
    tfce: bool = option(
        False, section="group", help="TFCE (E=0.5, H=2, 6-connectivity) with permutation FWE"
    )
    cluster_p: float | None = option(
        section="group",
        type=float,
        metavar="P",
        help="cluster-forming uncorrected p for cluster-mass FWE (e.g. 0.001)",
    )
    covariates: list = option(
        section="group",
        factory=list,
        nargs="+",
        metavar="COLUMN",
        help="participants.tsv columns (or a lesion load such as lesion_volume_mm3): group "
        "level, adjusted for (GLM, Freedman-Lane permutation); train, the model's covariate inputs "
        "(gamer_mril: age, the default)",
    )
    threshold: str = option(
        "p95",
        section="group",
        help="per-subject threshold before voxel-wise tests: p<q> (own q-th brain "
        "percentile, Zhang et al. 2021) or top<N> (top N %% of positive "
        "values, Lu et al. 2023)",
    )
    atlas: str = option(
        "auto",
        section="group",
        stages=("explanation",),
        help="aal, templateflow:NAME, a labelled NIfTI with a names TSV beside "
        "it, or none (auto: AAL when Debian's mricron-data is installed); also the regions of "
        "participant --evaluate robustness",
    )
    correlate: str | None = option(
        section="group",
        metavar="COLUMN",
        help="clinical score in participants.tsv to correlate with (e.g. edss)",
    )
    correlate_image: str = option(
        "T1w",
        section="group",
        help="preprocessed contrast averaged within each quantile mask, or a path pattern with "
        "{subject} and {session} to a map on the template grid",
    )
    correlate_mask: str = option(
        "top40",
        section="group",
        help="quantile mask for the correlation, as --threshold (Lu et al. 2023)",
    )
    correlate_n_perm: int = option(
        20000,
        section="group",
        type=_at_least(1),
        help="permutations of the Spearman test (Lu et al. 2023)",
    )

    # Not an option: names this run's settings file and crash logs.
    run_id: str = field(
        default_factory=new_run_id,
        compare=False,
        metadata={"help": "this run's id", "section": "run"},
    )

    @property
    def verbosity(self):
        return self.verbose - self.quiet

    def sections(self):
        """{section: {name: value}} in field order, Paths as strings, unset values left out."""
        grouped = {}
        for f in fields(self):
            value = plain(getattr(self, f.name))
            if value is not None:
                grouped.setdefault(f.metadata["section"], {})[f.name] = value
        return grouped

    def to_toml(self):
        header = {"version": __version__, "command": " ".join(sys.argv)}
        return tomli_w.dumps({"bidsxai": header, "settings": self.sections()})

    @classmethod
    def from_toml(cls, text):
        """The settings a saved TOML holds (the round trip of ``to_toml``)."""
        return cls(**cls.values_from_toml(text))

    @classmethod
    def values_from_toml(cls, text):
        """{field: value} of a saved TOML; ValueError for text that is not such a file or that
        names unknown settings."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        try:
            sections = tomllib.loads(text)["settings"]
            flat = {k: v for section in sections.values() for k, v in section.items()}
        except (tomllib.TOMLDecodeError, KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"not a bidsxai settings file ({type(exc).__name__}: {exc})") from None
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(flat) - set(known))
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        for name, value in flat.items():
            if known[name].type in (Path, Path | None):
                flat[name] = Path(value)
            elif name == "derivatives":
                flat[name] = {k: Path(v) for k, v in value.items()}
        return flat

    def save(self):
        path = settings_log_path(self.output_dir, self.level, self.run_id)
        write_text(path, self.to_toml())
        return path

    @property
    def crash_dir(self):
        return crash_dir(self.output_dir, self.run_id)

    def stage(self, name):
        """The options of one stage (``STAGES``), as one frozen object a stage's functions take
        whole: its section's fields and those other sections share with it (the seed)."""
        return STAGE_OPTIONS[name](**{f.name: getattr(self, f.name) for f in stage_fields(name)})


def stage_fields(name):
    """The fields of ``Settings`` that stage ``name`` reads, in field order."""
    return [
        f
        for f in fields(Settings)
        if f.metadata["section"] == name or name in f.metadata.get("stages", ())
    ]


def _stage_options(name):
    """A frozen dataclass of the stage's options, generated from ``Settings`` so that a new option
    reaches its stage (and the preprocessing resume key) without another list to keep."""
    return make_dataclass(
        f"{name.capitalize()}Options",
        [(f.name, f.type) for f in stage_fields(name)],
        frozen=True,
        namespace={"__doc__": f"The {name} options of a run (from Settings)."},
    )


STAGE_OPTIONS = {name: _stage_options(name) for name in STAGES}


def plain(value):
    """A setting's value as TOML and JSON hold it: Paths as strings, in lists and dicts too."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def help_of(f):
    """A field's help text (written by its record's function where the help is one)."""
    text = f.metadata["help"]
    return text() if callable(text) else text


def default_of(f):
    """A field's default value (its factory called)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def described_settings(settings):
    """The settings a report describes: for --reports-only, those of the newest saved run of the
    same level that computed the outputs (its own options, such as --methods, may differ): one
    that finished, so not a run refused after its settings were saved (``train --model x`` with
    options that cannot work)."""
    from bidsxai.outputs import run_log_path

    if not settings.reports_only:
        return settings
    logs = Path(settings.output_dir) / "logs"
    for path in sorted(logs.glob(f"{settings.level}-*.toml"), reverse=True):
        try:
            saved = Settings.from_toml(path.read_text())
            log = run_log_path(settings.output_dir, saved.level, saved.run_id).read_text()
        except (OSError, ValueError):
            continue
        if not saved.reports_only and "event=run_finished" in log:
            return saved
    return settings
