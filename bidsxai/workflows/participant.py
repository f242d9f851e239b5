"""participant level: preprocess every selected session, then (with --model) classify and explain,
then write one HTML report per subject."""

import shutil
from pathlib import Path

from bidsxai.atomic import atomic_path
from bidsxai.bids import init_derivatives, read_participants
from bidsxai.errors import NoInputError
from bidsxai.models.bundle import read_meta, resolve_bundle
from bidsxai.outputs import preproc_path, sidecar_path
from bidsxai.preprocess.pipeline import preprocess_session
from bidsxai.reports.render import write_citation
from bidsxai.workflows.sessions import run_sessions, worst_exit_code


def _preprocess(inputs, settings):
    if import_preprocessed(inputs, settings):
        return "imported"
    preprocess_session(
        inputs,
        settings.output_dir,
        settings.bids_dir,
        settings.work_dir,
        settings.resolution,
        settings.normalisation,
        settings.nonlinear,
        settings.seed,
    )
    return "preprocessed"


def import_preprocessed(inputs, settings):
    """Copy already preprocessed images (same names) from a --derivatives dataset; True if done."""
    for folder in settings.derivatives.values():
        sources = {
            c: preproc_path(folder, inputs.subject, inputs.session, c, settings.resolution)
            for c in inputs.files
        }
        if sources and all(p.is_file() for p in sources.values()):
            for contrast, src in sources.items():
                dst = preproc_path(
                    settings.output_dir,
                    inputs.subject,
                    inputs.session,
                    contrast,
                    settings.resolution,
                )
                for s, d in ((src, dst), (sidecar_path(src), sidecar_path(dst))):
                    if s.is_file() and s.resolve() != d.resolve():
                        with atomic_path(d) as tmp:
                            shutil.copyfile(s, tmp)
            return True
    return False


def write_subject_reports(settings, sessions):
    """One report per subject (all its sessions), written in parallel; returns the outcomes."""
    from bidsxai.reports.subject import SubjectSessions, write_subject_report

    by_subject = {}
    for session in sessions:
        by_subject.setdefault(session.subject, []).append(session)
    items = [SubjectSessions(sub, items) for sub, items in sorted(by_subject.items())]
    model_meta = (
        read_meta(resolve_bundle(settings.model, settings.output_dir)) if settings.model else None
    )
    shared = (settings, read_participants(settings.bids_dir), model_meta)
    return run_sessions(
        write_subject_report,
        items,
        shared,
        Path(settings.output_dir) / "logs",
        settings.nprocs,
        desc="reports",
    )


def run_participant(settings, sessions, report_sessions=None):
    """Returns the exit code: 0, or the code of the first session that failed.

    ``report_sessions`` are every session of the selected subjects (a subject's report covers all
    its processed sessions, also those a --session-label left out of this run)."""
    from bidsxai.workflows.classify import classify_sessions

    out = Path(settings.output_dir)
    init_derivatives(out, settings.bids_dir)
    write_citation(out, settings)
    log_dir = out / "logs"
    outcomes = []
    if not settings.reports_only:
        outcomes = run_sessions(
            _preprocess, sessions, (settings,), log_dir, settings.nprocs, desc="preprocessing"
        )
        done = {o.key for o in outcomes if o.ok}
        ready = [s for s in sessions if s.key in done]
        if settings.model and ready:
            outcomes += classify_sessions(settings, ready)
    failed = {o.key for o in outcomes if not o.ok}
    reportable = [
        s
        for s in (report_sessions or sessions)
        if s.key not in failed
        and preproc_path(out, s.subject, s.session, "T1w", settings.resolution).is_file()
    ]
    if settings.reports_only and not reportable:
        raise NoInputError(f"--reports-only: no preprocessed sessions in {out} to report on")
    outcomes += write_subject_reports(settings, reportable)
    return worst_exit_code(outcomes)
