"""``bidsxai BIDS_DIR OUTPUT_DIR {participant,train,group}``: the BIDS-App entry point.

Every expected failure becomes one line on stderr and a documented exit code (docs/usage.md);
unexpected ones leave their traceback in OUTPUT_DIR/logs/ and exit 1.
"""

import argparse
import logging
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from bidsxai import __version__
from bidsxai.errors import (
    EXIT_INTERNAL,
    BidsxaiError,
    CannotCreateOutputError,
    NoInputError,
    UsageError,
)

LEVELS = ("participant", "train", "group")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see bidsxai --help)")


class _ListArchitectures(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from bidsxai.models.registry import list_architectures

        for arch in list_architectures():
            print(f"{arch.name}\t{arch.source}")
        parser.exit(0)


def build_parser():
    p = _Parser(prog="bidsxai", description="Explain deep networks trained on brain MRI (BIDS-App).")
    p.add_argument("bids_dir", type=Path, help="the input BIDS dataset (read only)")
    p.add_argument("output_dir", type=Path, help="where the BIDS-Derivatives go")
    p.add_argument("analysis_level", choices=LEVELS)
    p.add_argument("--version", action="version", version=f"bidsxai {__version__}")
    p.add_argument("--list-architectures", action=_ListArchitectures,
                   help="print the model architectures (name and paper) and exit")
    sel = p.add_argument_group("selecting data")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                     metavar="LABEL", help="subjects to process ('sub-' prefix optional)")
    sel.add_argument("--session-label", "--session_label", nargs="+", default=[], metavar="LABEL")
    sel.add_argument("--bids-filter-file", type=Path, metavar="FILE",
                     help='JSON {"t1w": {...}, "t2w": {...}, "flair": {...}} of pybids entities')
    sel.add_argument("--derivatives", nargs="+", default=[], metavar="[NAME=]PATH",
                     help="derivatives datasets with already preprocessed images (same names)")
    sel.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true")
    run = p.add_argument_group("running")
    run.add_argument("-w", "--work-dir", type=Path, help="scratch folder (default: system temp)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    run.add_argument("--nprocs", "--n-cpus", type=int, default=os.cpu_count() or 1)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--reports-only", action="store_true",
                     help="only (re)write the reports from existing outputs")
    run.add_argument("-v", "--verbose", action="count", default=0)
    run.add_argument("-q", "--quiet", action="count", default=0)
    pre = p.add_argument_group("preprocessing")
    pre.add_argument("--resolution", type=float, default=2.0, help="model grid in mm (default 2)")
    pre.add_argument("--normalisation", choices=("percentile", "zscore"), default="percentile")
    pre.add_argument("--nonlinear", action="store_true", help="SyN instead of affine to the template")
    mod = p.add_argument_group("models and explanations")
    mod.add_argument("--model", metavar="NAME_OR_PATH",
                     help="participant: bundle to classify and explain with; train: bundle name")
    mod.add_argument("--target", default="group", help="participants.tsv column to predict / group by")
    mod.add_argument("--arch", default="cnn3d", help="architecture to train (--list-architectures)")
    mod.add_argument("--explain-layer", help="layer of the CAM family (default: the last convolutional block)")
    mod.add_argument("--methods", default="gradcam",
                     help="comma-separated: cam, gradcam, gradcampp, saliency, smoothgrad, ig, lrp, "
                          "perturbation (default gradcam)")
    mod.add_argument("--lrp-composite", default="paper001",
                     choices=("paper001", "epsilon", "alpha1beta0", "alpha2beta1", "gamma"),
                     help="LRP rules by layer (default paper001: z-beta input layers, alpha1-beta0 "
                          "convolutions, epsilon dense layers)")
    mod.add_argument("--lrp-start", default="logit", choices=("logit", "attention"),
                     help="start LRP from the class logit or, for gated-attention models, from the "
                          "attention weights (paper 001)")
    mod.add_argument("--lrp-map", default="sum", choices=("sum", "combined"),
                     help="LRP map: relevance summed over contrasts, or paper 001's combined map "
                          "sum of relevance x image (eq. 8)")
    mod.add_argument("--targets", default="all",
                     help="classes to explain: predicted, all, or comma-separated class names (default all)")
    mod.add_argument("--pretrained", type=Path, metavar="FILE",
                     help="2D models: ImageNet weights from a local torchvision state-dict file "
                          "(nothing is downloaded)")
    mod.add_argument("--slice-size", type=int, default=256,
                     help="2D models: axial slices are resized to SIZE x SIZE (default 256, paper 000)")
    mod.add_argument("--mc-samples", type=int, default=50,
                     help="participant: Monte Carlo dropout passes for models with MC dropout "
                          "(mean and SD of the class probabilities; 0: off; default 50)")
    trn = p.add_argument_group("training")
    trn.add_argument("--target-threshold", type=float, metavar="VALUE",
                     help="binarise a numeric --target at VALUE (e.g. --target edss --target-threshold 5)")
    trn.add_argument("--loss-weight", choices=("none", "closeness"), default="none",
                     help="closeness: weight each subject 2 - |value - threshold| / threshold (paper 001)")
    trn.add_argument("--cv-folds", type=int, default=5, help="subject-level stratified folds (default 5)")
    trn.add_argument("--cv-repeats", type=int, default=1,
                     help="repeat the cross-validation with new folds and seeds (default 1)")
    trn.add_argument("--test-fraction", type=float, default=0.2,
                     help="share of each class held out as the test set (default 0.2; 0: none)")
    trn.add_argument("--select-by", choices=("loss", "balanced_accuracy"), default="loss",
                     help="keep the epoch with the best validation loss or balanced accuracy (paper 004)")
    trn.add_argument("--epochs", type=int, default=30)
    trn.add_argument("--patience", type=int, default=8, help="early stopping on the validation loss")
    trn.add_argument("--batch-size", type=int, default=4)
    trn.add_argument("--optimiser", choices=("adam", "adamw"), help="default: the architecture's paper")
    trn.add_argument("--learning-rate", type=float, help="default: the architecture's paper")
    trn.add_argument("--weight-decay", type=float, help="default: the architecture's paper")
    trn.add_argument("--augment", choices=("auto", "none", "flip", "paper000", "paper001"), default="auto",
                     help="auto: the architecture's paper (2D: paper000; gamer_mril: paper001; cnn3d: flip)")
    trn.add_argument("--precision", choices=("auto", "fp32", "amp"), default="auto",
                     help="amp: mixed precision (float16 on GPU, bfloat16 on CPU); auto: amp on GPU")
    trn.add_argument("--loader-workers", type=int, metavar="N",
                     help="data loader processes (default 4 on GPU, 0 on CPU)")
    trn.add_argument("--arch-width", type=float, default=1.0,
                     help="channel multiplier of the 2D architectures, for quick trials (default 1)")
    grp = p.add_argument_group("group level")
    grp.add_argument("--groups", nargs=2, default=[], metavar="GROUP",
                     help="the pair of groups to compare (default: every pair)")
    grp.add_argument("--n-perm", type=int, default=1000,
                     help="permutations for family-wise error (max-T, and TFCE or cluster mass if "
                          "asked; 0: none; default 1000)")
    grp.add_argument("--tfce", action="store_true",
                     help="TFCE (E=0.5, H=2, 6-connectivity) with permutation FWE")
    grp.add_argument("--cluster-p", type=float, metavar="P",
                     help="cluster-forming uncorrected p for cluster-mass FWE (e.g. 0.001)")
    grp.add_argument("--covariates", nargs="+", default=[], metavar="COLUMN",
                     help="participants.tsv columns: group level, adjusted for (GLM, Freedman-Lane "
                          "permutation); train, the model's covariate inputs (gamer_mril: age, the default)")
    grp.add_argument("--threshold", default="p95",
                     help="per-subject threshold before voxel-wise tests: p<q> (own q-th brain "
                          "percentile, paper 000) or top<N> (top N %% of positive values, paper 001); "
                          "default p95")
    grp.add_argument("--atlas", default="auto",
                     help="aal, templateflow:NAME, a labelled NIfTI with a names TSV beside it, or "
                          "none (default: AAL when Debian's mricron-data is installed)")
    grp.add_argument("--correlate", metavar="COLUMN",
                     help="clinical score in participants.tsv to correlate with (e.g. edss)")
    grp.add_argument("--correlate-image", default="T1w",
                     help="preprocessed contrast averaged within each quantile mask (default T1w), or a path "
                          "pattern with {subject} and {session} to a map on the template grid")
    grp.add_argument("--correlate-mask", default="top40",
                     help="quantile mask for the correlation, as --threshold (default top40, paper 001)")
    grp.add_argument("--correlate-n-perm", type=int, default=20000,
                     help="permutations of the Spearman test (default 20000, paper 001)")
    return p


def _inside(path, folder):
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_paths(args):
    """Refuse output or work folders that would write into the input dataset."""
    bids = args.bids_dir.resolve()
    if not bids.is_dir():
        raise NoInputError(f"BIDS_DIR {args.bids_dir} does not exist")
    out = args.output_dir.resolve()
    if out == bids:
        raise UsageError("OUTPUT_DIR must not be BIDS_DIR")
    if _inside(out, bids) and not _inside(out, bids / "derivatives"):
        raise UsageError("OUTPUT_DIR is inside BIDS_DIR; put it under BIDS_DIR/derivatives/ or elsewhere")
    if _inside(bids, out):
        raise UsageError("BIDS_DIR must not be inside OUTPUT_DIR")
    if args.work_dir is not None and _inside(args.work_dir.resolve(), bids):
        raise UsageError("the work directory must not be inside BIDS_DIR")
    derivatives = {}
    for item in args.derivatives:
        name, _, path = item.rpartition("=")
        path = Path(path)
        if not path.is_dir():
            raise NoInputError(f"--derivatives {item}: no such folder")
        derivatives[name or path.name] = path.resolve()
    return bids, out, derivatives


def check_options(args):
    """Refuse numbers, methods and architectures that cannot work, before any work starts."""
    for value, flag in ((args.nprocs, "--nprocs"), (args.epochs, "--epochs"),
                        (args.batch_size, "--batch-size"), (args.slice_size, "--slice-size"),
                        (args.cv_repeats, "--cv-repeats"), (args.patience, "--patience")):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if args.cv_folds < 2:
        raise UsageError("--cv-folds must be at least 2")
    if not 0 <= args.test_fraction < 1:
        raise UsageError("--test-fraction must lie in [0, 1)")
    for value, flag in ((args.mc_samples, "--mc-samples"), (args.loader_workers or 0, "--loader-workers")):
        if value < 0:
            raise UsageError(f"{flag} must be 0 or more")
    for value, flag in ((args.learning_rate, "--learning-rate"), (args.arch_width, "--arch-width")):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be positive")
    if args.target_threshold is not None and args.target_threshold <= 0 and args.loss_weight == "closeness":
        raise UsageError("--loss-weight closeness needs a positive --target-threshold")
    if args.n_perm < 0:
        raise UsageError("--n-perm must be 0 or more")
    if args.correlate_n_perm < 1:
        raise UsageError("--correlate-n-perm must be at least 1")
    if args.cluster_p is not None and not 0 < args.cluster_p < 1:
        raise UsageError("--cluster-p must lie between 0 and 1")
    from bidsxai.group.threshold import parse_threshold

    for flag, spec in (("--threshold", args.threshold), ("--correlate-mask", args.correlate_mask)):
        try:
            parse_threshold(spec)
        except ValueError as error:
            raise UsageError(f"{flag}: {error}") from None
    if args.resolution <= 0:
        raise UsageError("--resolution must be positive")
    from bidsxai.explain import METHODS
    from bidsxai.models.registry import list_architectures

    known = [a.name for a in list_architectures()]
    if args.arch not in known:
        raise UsageError(f"--arch {args.arch}: unknown architecture; known: {', '.join(known)}")
    unknown = [m for m in method_list(args.methods) if m not in METHODS]
    if unknown or not method_list(args.methods):
        raise UsageError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(METHODS)}")


def method_list(text):
    return [m.strip() for m in text.split(",") if m.strip()]


def make_output_dir(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise CannotCreateOutputError(f"cannot write to OUTPUT_DIR {path}: {exc.strerror}") from None


def settings_from(args, bids, out, derivatives):
    from bidsxai.config import Settings

    return Settings(
        bids_dir=bids, output_dir=out, level=args.analysis_level,
        participant_label=args.participant_label, session_label=args.session_label,
        bids_filter_file=args.bids_filter_file, derivatives=derivatives,
        work_dir=args.work_dir.resolve() if args.work_dir else None, model=args.model,
        target=args.target, arch=args.arch, device=args.device, nprocs=args.nprocs, seed=args.seed,
        skip_bids_validation=args.skip_bids_validation, reports_only=args.reports_only,
        resolution=args.resolution, normalisation=args.normalisation, nonlinear=args.nonlinear,
        explain_layer=args.explain_layer, methods=method_list(args.methods), targets=args.targets,
        slice_size=args.slice_size, pretrained=args.pretrained, lrp_composite=args.lrp_composite, lrp_start=args.lrp_start, lrp_map=args.lrp_map,
        epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
        learning_rate=args.learning_rate, optimiser=args.optimiser, weight_decay=args.weight_decay,
        target_threshold=args.target_threshold, loss_weight=args.loss_weight, cv_folds=args.cv_folds,
        cv_repeats=args.cv_repeats, test_fraction=args.test_fraction, select_by=args.select_by,
        augment=args.augment, precision=args.precision, loader_workers=args.loader_workers,
        arch_width=args.arch_width, mc_samples=args.mc_samples, groups=args.groups,
        n_perm=args.n_perm, tfce=args.tfce, cluster_p=args.cluster_p, covariates=args.covariates,
        threshold=args.threshold, atlas=None if args.atlas == "none" else args.atlas,
        correlate=args.correlate, correlate_image=args.correlate_image,
        correlate_mask=args.correlate_mask, correlate_n_perm=args.correlate_n_perm,
        verbosity=args.verbose - args.quiet)


def run(args):
    from bidsxai.bids import check_is_bids, load_filters, open_layout, select_inputs
    from bidsxai.workflows.device import pick_device

    bids, out, derivatives = check_paths(args)
    check_options(args)
    pick_device(args.device)  # refuse a bad --device before any work
    check_is_bids(bids)
    filters = load_filters(args.bids_filter_file)
    if not args.skip_bids_validation and not args.reports_only:
        from bidsxai.validator import require_valid

        require_valid(bids)
    if args.analysis_level == "participant" and args.model:
        from bidsxai.models.bundle import resolve_bundle

        resolve_bundle(args.model, out)  # fail before any work when the bundle is not there
    layout = open_layout(bids)
    sessions = select_inputs(layout, args.participant_label, args.session_label, filters)
    make_output_dir(out)
    settings = settings_from(args, bids, out, derivatives)
    if settings.work_dir:
        make_output_dir(settings.work_dir)
    settings.save()
    if args.analysis_level == "participant":
        from bidsxai.workflows.participant import run_participant

        every_session = select_inputs(layout, args.participant_label, None, filters) \
            if args.session_label else sessions
        code = run_participant(settings, sessions, every_session)
        _say(settings, f"participant level done: reports in {out}/sub-*.html")
        return code
    if args.analysis_level == "train":
        from bidsxai.workflows.train import run_train

        folder, meta = run_train(settings, sessions)
        if meta is not None:  # rank 0 (the only rank outside torchrun)
            cv = meta["metrics"]["cross_validation"]
            summary = (f"cross-validation (n={cv['n']}): balanced accuracy {cv['balanced_accuracy']:.3f}, "
                       f"AUC {cv['auc']:.3f}")
            test = meta["metrics"].get("test")
            if test:
                summary += f"; test (n={test['n']}): balanced accuracy {test['balanced_accuracy']:.3f}"
            _say(settings, f"trained {meta['name']}: {summary}; report {folder / 'report.html'}")
        return 0
    from bidsxai.workflows.group import run_group

    run_group(settings, {s.subject for s in sessions} if args.participant_label else None)
    _say(settings, f"group level done: report {out / 'group.html'}")
    return 0


def _say(settings, message):
    if settings.verbosity >= 0:
        print(f"bidsxai: {message}")


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING - 10 * (args.verbose - args.quiet),
                            format="bidsxai: %(message)s")
        if args.verbose <= 0:
            warnings.filterwarnings("ignore")
        return run(args)
    except BidsxaiError as exc:
        print(f"bidsxai: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bidsxai: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line here, the traceback in a file
        log = Path(tempfile.gettempdir()) / f"bidsxai-crash-{os.getpid()}.txt"
        log.write_text(traceback.format_exc())
        print(f"bidsxai: internal error {type(exc).__name__}: {exc} (traceback in {log})",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
