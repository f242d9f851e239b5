"""``bidsxai BIDS_DIR OUTPUT_DIR {participant,train,group}``: the BIDS-App entry point.

Every expected failure becomes one line on stderr and a documented exit code (docs/usage.md);
unexpected ones leave their traceback in OUTPUT_DIR/logs/ and exit 1.
"""

import argparse
import errno
import os
import signal
import sys
import tempfile
import traceback
import warnings
from dataclasses import fields, replace
from pathlib import Path

from bidsxai import __version__, logs
from bidsxai.errors import (
    EXIT_CANNOT_CREATE_OUTPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    BidsxaiError,
    CannotCreateOutputError,
    NoInputError,
    UnknownLevelError,
    UsageError,
)


class _Parser(argparse.ArgumentParser):
    """The generated parser. An option left unset is absent from the parsed namespace, so
    ``Settings`` gives it its field's default; the options' help texts and shown defaults are
    filled in only for ``--help`` (``complete``). Some are written from records that import
    torch (the method table, the LRP defaults, the augmentation schemes), which a run that never
    prints its help, such as ``group --reports-only``, should not wait for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = []  # (action, field): the options whose help ``complete`` fills in

    def complete(self):
        """Fill in every deferred help text and default; returns the parser."""
        from bidsxai.config import default_of, help_of

        for action, f in self._deferred:
            action.default = default_of(f)
            action.help = _with_default(help_of(f), action.default)
        self._deferred = []
        return self

    def format_help(self):
        self.complete()
        return super().format_help()

    def error(self, message):
        if message.startswith("argument analysis_level:"):  # the BIDS-Apps code for it
            raise UnknownLevelError(f"{message} (see bidsxai --help)")
        raise UsageError(f"{message} (see bidsxai --help)")


class _ChoicesOf:
    """An option's choices read from a record when first checked or shown, not when the parser
    is built (argparse only tests membership and iterates)."""

    def __init__(self, read):
        self._read = read

    def __contains__(self, value):
        return value in self._read()

    def __iter__(self):
        return iter(self._read())


class _ListArchitectures(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from bidsxai.models.registry import list_architectures

        for arch in list_architectures():
            print(f"{arch.name}\t{arch.source}")
        parser.exit(0)


class _KeyValues(argparse.Action):
    """``--derivatives NAME=PATH PATH ...`` into {name: path} (a bare PATH is named by its
    folder)."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = (item.rpartition("=")[::2] for item in values)
        setattr(namespace, self.dest, {name or Path(path).name: Path(path) for name, path in pairs})


def _with_default(text, default):
    if default in (None, False, [], {}) or "(default" in text:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default {shown})"


def build_parser():
    """The parser generated from ``Settings``: every option's flags, type, default and help text
    come from its field."""
    from bidsxai.config import SECTIONS, Settings

    p = _Parser(
        prog="bidsxai", description="Explain deep networks trained on brain MRI (BIDS-App)."
    )
    groups = {name: p.add_argument_group(title) for name, title in SECTIONS.items()}
    for f in fields(Settings):
        if f.metadata["section"] == "run":
            continue
        meta = f.metadata
        kwargs = dict(meta["parser"])
        choices = kwargs.pop("choices", None)
        if meta["section"] == "positional":
            p.add_argument(f.name, help=meta["help"], choices=choices, **kwargs)
            continue
        flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
        if f.name == "derivatives":
            kwargs["action"] = _KeyValues
        elif f.default is False:
            kwargs["action"] = "store_true"
        action = groups[meta["section"]].add_argument(
            *flags, dest=f.name, default=argparse.SUPPRESS, **kwargs
        )
        # Set after add_argument, which would otherwise read them to check the metavar.
        action.choices = _ChoicesOf(choices) if callable(choices) else choices
        p._deferred.append((action, f))
    p.add_argument(
        "--config-file",
        type=Path,
        metavar="FILE",
        help="settings from a TOML that a run saved in OUTPUT_DIR/logs/; options given on the "
        "command line override it",
    )
    p.add_argument("--version", action="version", version=f"bidsxai {__version__}")
    p.add_argument(
        "--list-architectures",
        action=_ListArchitectures,
        default=argparse.SUPPRESS,
        help="print the model architectures (name and paper) and exit",
    )
    return p


def _inside(path, folder):
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_paths(settings):
    """Refuse output or work folders that would write into the input dataset; returns the
    settings with every path absolute."""
    bids = settings.bids_dir.resolve()
    if not bids.is_dir():
        raise NoInputError(f"BIDS_DIR {settings.bids_dir} does not exist")
    out = settings.output_dir.resolve()
    if out == bids:
        raise UsageError("OUTPUT_DIR must not be BIDS_DIR")
    if out == bids / "derivatives":
        raise UsageError(
            "OUTPUT_DIR is BIDS_DIR/derivatives itself; give bidsxai a folder of its "
            "own there, e.g. BIDS_DIR/derivatives/bidsxai"
        )
    if _inside(out, bids) and not _inside(out, bids / "derivatives"):
        raise UsageError(
            "OUTPUT_DIR is inside BIDS_DIR; put it under BIDS_DIR/derivatives/ or elsewhere"
        )
    if _inside(bids, out):
        raise UsageError("BIDS_DIR must not be inside OUTPUT_DIR")
    work = settings.work_dir.resolve() if settings.work_dir else None
    if work is not None and _inside(work, bids):
        raise UsageError("the work directory must not be inside BIDS_DIR")
    database = settings.bids_database_dir
    database = database.resolve() if database else None
    if database is not None and _inside(database, bids):
        raise UsageError("--bids-database-dir must not be inside BIDS_DIR")
    pending = settings.write_pending.resolve() if settings.write_pending else None
    if pending is not None and _inside(pending, bids):
        raise UsageError("--write-pending must not be inside BIDS_DIR")
    for name, path in settings.derivatives.items():
        if not path.is_dir():
            raise NoInputError(f"--derivatives {name}={path}: no such folder")
    derivatives = {name: path.resolve() for name, path in settings.derivatives.items()}
    return replace(
        settings,
        bids_dir=bids,
        output_dir=out,
        work_dir=work,
        derivatives=derivatives,
        bids_database_dir=database,
        write_pending=pending,
    )


def check_options(settings):
    """Refuse combinations and values the parser's types cannot see, before any work starts."""
    if not 0 <= settings.test_fraction < 1:
        raise UsageError("--test-fraction must lie in [0, 1)")
    if (
        settings.target_threshold is not None
        and settings.target_threshold <= 0
        and settings.loss_weight == "closeness"
    ):
        raise UsageError("--loss-weight closeness needs a positive --target-threshold")
    if settings.target_threshold is not None and settings.target_bins:
        raise UsageError("--target-threshold and --target-bins: give one of them")
    from bidsxai.outputs import ANATOMY_DATASETS

    anatomy = [name for name in settings.derivatives if name in ANATOMY_DATASETS]
    if len(anatomy) > 1:
        raise UsageError(f"--derivatives {' and '.join(anatomy)}: give one anatomical dataset")
    for name in anatomy:
        if not (Path(settings.derivatives[name]) / "dataset_description.json").is_file():
            raise NoInputError(
                f"--derivatives {name}={settings.derivatives[name]}: not a BIDS derivatives "
                "dataset (no dataset_description.json)"
            )
    if settings.write_pending and settings.level != "participant":
        raise UsageError("--write-pending lists the sessions of the participant level")
    if settings.cluster_p is not None and not 0 < settings.cluster_p < 1:
        raise UsageError("--cluster-p must lie between 0 and 1")
    from bidsxai.group.threshold import parse_threshold

    for flag, spec in (
        ("--threshold", settings.threshold),
        ("--correlate-mask", settings.correlate_mask),
    ):
        try:
            parse_threshold(spec)
        except ValueError as error:
            raise UsageError(f"{flag}: {error}") from None
    if settings.reports_only:  # no model is built; the registry's modules import torch
        return
    from bidsxai.models.registry import list_architectures

    known = [a.name for a in list_architectures()]
    if settings.arch not in known:
        raise UsageError(f"--arch {settings.arch}: unknown architecture; known: {', '.join(known)}")


def make_output_dir(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CannotCreateOutputError(
            f"cannot write to OUTPUT_DIR {path}: {exc.strerror}"
        ) from None


def _boilerplate(settings, contrasts):
    from bidsxai.models.bundle import read_meta, resolve_bundle
    from bidsxai.reports.render import write_citation

    meta = None
    if settings.model:
        meta = read_meta(resolve_bundle(settings.model, settings.output_dir))
    markdown, _ = write_citation(settings.output_dir, settings, meta, contrasts)
    _say(settings, f"methods text and references written: {markdown} (and .bib)")
    return 0


def run(settings, given=frozenset()):
    """Run one level; ``given``: the Settings fields the user set (``given_options``)."""
    from bidsxai.bids import check_is_bids, load_filters, open_layout, select_inputs
    from bidsxai.config import available_cpus
    from bidsxai.outputs import run_log_path
    from bidsxai.threads import limit_threads

    settings = check_paths(settings)
    check_options(settings)
    limit_threads(settings.omp_nthreads or available_cpus(), torch_pools=not settings.reports_only)
    if not settings.reports_only:  # a report is written without torch, on no device
        from bidsxai.workflows.device import pick_device

        pick_device(settings.device)  # refuse a bad --device before any work
    from bidsxai.template_files import template_files

    template_files(settings.output_space)  # the space is there (seeded, fetched) or one line
    bids, out = settings.bids_dir, settings.output_dir
    check_is_bids(bids)
    filters = load_filters(settings.bids_filter_file)
    if not (settings.skip_bids_validation or settings.reports_only or settings.boilerplate_only):
        from bidsxai.validator import require_valid

        require_valid(bids)
    meta = None
    if settings.level != "train" and settings.model:
        from bidsxai.models.bundle import check_class_labels, read_meta, resolve_bundle

        meta = read_meta(resolve_bundle(settings.model, out))
    from bidsxai.workflows.grid import run_grid

    settings = run_grid(settings, given, meta)
    template_files(settings.output_space)  # the bundle's or the outputs' space, as above
    if meta is not None:
        from bidsxai.models.bundle import check_space
        from bidsxai.template import load_template

        # Fail before any work when the bundle reads another grid than its own record says, or
        # has classes whose files would overwrite each other.
        check_space(meta, load_template(settings.resolution, settings.output_space))
        check_class_labels(meta)
    settings = replace(settings, target=settings.target or (meta or {}).get("target") or "group")
    if settings.reports_only and settings.level != "participant":
        layout, sessions = None, []  # rebuilt from OUTPUT_DIR alone: no BIDS query to wait for
    else:
        layout = open_layout(bids, database=settings.bids_database_dir)
        sessions = select_inputs(
            layout, settings.participant_label, settings.session_label, filters
        )
    make_output_dir(out)
    if settings.boilerplate_only:
        return _boilerplate(settings, {c for s in sessions for c in s.files})
    if settings.work_dir:
        make_output_dir(settings.work_dir)
    from bidsxai.scratch import remove_leftovers

    remove_leftovers(out, settings.work_dir)  # what killed runs left behind
    settings.save()
    logs.add_run_log(run_log_path(out, settings.level, settings.run_id))
    logs.event(
        "run_started",
        stage=settings.level,
        run_id=settings.run_id,
        version=__version__,
        sessions=len(sessions),
        **{
            name.lower(): os.environ[name]
            for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
            if name in os.environ
        },
    )
    code = _run_level(settings, layout, sessions, filters)
    # A run that ends here is one whose settings describe its outputs (``described_settings``);
    # a refused or crashed run never logs this.
    logs.event("run_finished", stage=settings.level, run_id=settings.run_id, exit_code=code)
    return code


def _run_level(settings, layout, sessions, filters):
    """The level's work once the run has started; returns the exit code."""
    from bidsxai.bids import select_inputs

    out = settings.output_dir
    if settings.level == "participant":
        from bidsxai.workflows.participant import run_participant

        every_session = (
            select_inputs(layout, settings.participant_label, None, filters)
            if settings.session_label
            else sessions
        )
        outcomes = run_participant(settings, sessions, every_session)
        failed = sorted({o.key for o in outcomes if not o.ok})
        if not failed:
            _say(settings, f"participant level done: reports in {out}/sub-*.html")
            return 0
        from bidsxai.workflows.sessions import worst_exit_code

        _say(
            settings,
            f"participant level: failed for {', '.join(failed)} (reasons above); "
            f"every other session's outputs and report are in {out}",
        )
        return worst_exit_code(outcomes)
    if settings.level == "train" and settings.reports_only:
        from bidsxai.workflows.train import report_training

        folder = report_training(settings)
        _say(settings, f"training report rewritten: {folder / 'report.html'}")
        return 0
    if settings.level == "train":
        from bidsxai.workflows.train import run_train

        folder, meta = run_train(settings, sessions)
        if meta is not None:  # rank 0 (the only rank outside torchrun)
            _say(
                settings,
                f"trained {meta['name']}: {training_summary(meta['metrics'])}; "
                f"report {folder / 'report.html'}",
            )
        return 0
    if settings.reports_only:
        from bidsxai.workflows.group_report import report_group

        report_group(settings)
        _say(settings, f"group report rewritten: {out / 'group.html'}")
        return 0
    from bidsxai.workflows.group import run_group

    run_group(
        settings,
        {s.subject for s in sessions} if settings.participant_label else None,
        {s.session for s in sessions} if settings.session_label else None,
    )
    _say(settings, f"group level done: report {out / 'group.html'}")
    return 0


def training_summary(metrics):
    cv = metrics["cross_validation"]
    summary = (
        f"cross-validation (n={cv['n']}): balanced accuracy {cv['balanced_accuracy']:.3f}, "
        f"AUC {cv['auc']:.3f}"
    )
    test = metrics.get("test")
    if test:
        summary += f"; test (n={test['n']}): balanced accuracy {test['balanced_accuracy']:.3f}"
    return summary


def _say(settings, message):
    if settings.verbosity >= 0:
        print(f"bidsxai: {message}")


class Terminated(BaseException):
    """SIGTERM (a scheduler's stop): unwinds like Ctrl-C, so every atomic write is either done
    or not, and the workers are stopped."""


def _terminate(signum, frame):
    raise Terminated


def parse_settings(argv=None):
    """The run's settings: the command line over ``--config-file`` over the defaults."""
    from bidsxai.config import Settings

    parser = build_parser()
    args = vars(parser.parse_args(argv))
    config = args.pop("config_file")
    if config is not None:
        try:
            saved = Settings.values_from_toml(Path(config).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config-file {config}: cannot read it ({exc})") from None
        except ValueError as exc:
            raise UsageError(f"--config-file {config}: {exc}") from None
        positional = {"bids_dir", "output_dir", "level", "run_id"}
        parser.set_defaults(**{k: v for k, v in saved.items() if k not in positional})
        args = vars(parser.parse_args(argv))
        args.pop("config_file")
    return Settings(**args)


_UNSET = object()


def given_options(argv=None):
    """The Settings fields the user set, on the command line or in ``--config-file``: a run that
    takes its grid from a bundle refuses a given grid that contradicts it (and only such)."""
    parser = build_parser()
    # A counting flag (-v, -q) adds 1 to its default, so its "unset" is None, which it starts from.
    unset = {
        a.dest: None if isinstance(a, argparse._CountAction) else _UNSET
        for a in parser._actions
        if a.option_strings
    }
    parser.set_defaults(**unset)
    args = vars(parser.parse_args(argv))
    given = {name for name, value in args.items() if name not in unset or value is not unset[name]}
    if args.get("config_file") not in (None, _UNSET):
        from bidsxai.config import Settings

        given |= set(Settings.values_from_toml(Path(args["config_file"]).read_text()))
    return frozenset(given - {"config_file"})


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = parse_settings(argv)
        logs.setup(settings.verbosity)
        if settings.verbose <= 0:
            warnings.filterwarnings("ignore")
        return run(settings, given_options(argv))
    except BidsxaiError as exc:
        print(f"bidsxai: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bidsxai: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("bidsxai: stopped by SIGTERM; run the same command again to resume", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal_error(exc)
        print(
            f"bidsxai: error: no space left on the device writing {exc.filename or 'outputs'}",
            file=sys.stderr,
        )
        return EXIT_CANNOT_CREATE_OUTPUT
    except Exception as exc:  # a bug: one line here, the traceback in a file
        return _internal_error(exc)


def _internal_error(exc):
    log = Path(tempfile.gettempdir()) / f"bidsxai-crash-{os.getpid()}.txt"
    try:
        log.write_text(traceback.format_exc())
        where = f"traceback in {log}"
    except OSError as write_error:
        where = f"no traceback written: {write_error.strerror}"
    print(f"bidsxai: internal error {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
