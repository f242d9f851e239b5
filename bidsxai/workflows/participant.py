"""participant level: preprocess every selected session, then (with --model) classify and explain,
then write one HTML report per subject."""

import shutil
import sys
from pathlib import Path

from bidsxai.atomic import atomic_path
from bidsxai.bids import init_derivatives, read_participants
from bidsxai.errors import EXIT_NO_INPUT, NoInputError
from bidsxai.logs import event
from bidsxai.memory import parallel_sessions
from bidsxai.models.bundle import read_meta, resolve_bundle
from bidsxai.nifti import read_image
from bidsxai.outputs import ANATOMY_DATASETS, MASK_DATASET, preproc_path, sidecar_path
from bidsxai.preprocess.pipeline import preprocess_session
from bidsxai.preprocess.quality import quality_gate
from bidsxai.preprocess.smriprep import session_anatomy
from bidsxai.reports.render import write_citation
from bidsxai.template import load_template
from bidsxai.workflows.pending import PendingList
from bidsxai.workflows.sessions import Outcome, run_sessions


def _preprocess(inputs, settings):
    """Preprocess (or import) one session and return its quality gate, recorded in the T1w's
    sidecar."""
    if not import_preprocessed(inputs, settings):
        _run_preprocessing(inputs, settings)
    t1w = preproc_path(
        settings.output_dir,
        inputs.subject,
        inputs.session,
        "T1w",
        settings.resolution,
        settings.output_space,
    )
    gate = quality_gate(
        read_image(t1w)[1], load_template(settings.resolution, settings.output_space)
    )
    gate.record_in(sidecar_path(t1w))
    return gate


def _run_preprocessing(inputs, settings):
    anatomy = session_anatomy(settings.derivatives, inputs, settings.output_space)
    preprocess_session(
        inputs,
        settings.output_dir,
        settings.bids_dir,
        settings.work_dir,
        settings.stage("preprocessing"),
        anatomy,
    )


def import_preprocessed(inputs, settings):
    """Copy already preprocessed images (same names) from a --derivatives dataset; True if done."""
    for name, folder in settings.derivatives.items():
        if name == MASK_DATASET or name in ANATOMY_DATASETS:  # not bidsxai's preprocessed images
            continue
        sources = {
            c: preproc_path(
                folder,
                inputs.subject,
                inputs.session,
                c,
                settings.resolution,
                settings.output_space,
            )
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
                    settings.output_space,
                )
                for s, d in ((src, dst), (sidecar_path(src), sidecar_path(dst))):
                    if s.is_file() and s.resolve() != d.resolve():
                        with atomic_path(d) as tmp:
                            shutil.copyfile(s, tmp)
            return True
    return False


def write_subject_reports(settings, sessions, errors=None):
    """One report per subject (all its sessions, with ``errors``: {session key: reason} of this
    run), written in parallel; returns the outcomes."""
    from bidsxai.reports.subject import SubjectSessions, write_subject_report

    by_subject = {}
    for session in sessions:
        by_subject.setdefault(session.subject, []).append(session)
    items = [SubjectSessions(sub, items) for sub, items in sorted(by_subject.items())]
    model_meta = (
        read_meta(resolve_bundle(settings.model, settings.output_dir)) if settings.model else None
    )
    shared = (settings, read_participants(settings.bids_dir), model_meta, errors or {})
    return run_sessions(
        write_subject_report,
        items,
        shared,
        settings.crash_dir,
        session_workers(settings),
        desc="reports",
        threads=settings.omp_nthreads,
    )


def session_workers(settings):
    """--nprocs, lowered where --mem cannot hold that many sessions at once."""
    workers = parallel_sessions(settings.nprocs, settings.mem)
    if workers < settings.nprocs:
        event("sessions_limited_by_memory", mem_gb=f"{settings.mem:g}", workers=workers)
    return workers


def quality_failures(outcomes):
    """An exit-66 ``Outcome`` for each preprocessed session that failed the quality gate."""
    failures = [
        Outcome(
            o.key,
            exit_code=EXIT_NO_INPUT,
            message=f"failed the quality gate ({'; '.join(o.value.reasons)}); not "
            "classified (--qc-override classifies it anyway)",
        )
        for o in outcomes
        if o.ok and not o.value.passed
    ]
    for failure in failures:
        print(f"bidsxai: {failure.key}: {failure.message}", file=sys.stderr)
    return failures


def run_participant(settings, sessions, report_sessions=None):
    """Every session's ``Outcome`` (preprocessing, explanation) and every subject's (report).

    ``report_sessions`` are every session of the selected subjects (a subject's report covers all
    its processed sessions, also those a --session-label left out of this run)."""
    from bidsxai.workflows.classify import classify_sessions

    out = Path(settings.output_dir)
    anatomy = {n: p for n, p in settings.derivatives.items() if n in ANATOMY_DATASETS}
    init_derivatives(out, settings.bids_dir, links=anatomy)
    write_citation(out, settings, contrasts={c for s in sessions for c in s.files})
    outcomes, gated = [], []
    if not settings.reports_only:
        pending = (
            PendingList(
                settings.write_pending,
                sessions,
                settings.run_id,
                "explaining" if settings.model else "preprocessing",
            )
            if settings.write_pending
            else None
        )

        def preprocessed(outcome):
            if pending:
                passed = settings.qc_override or (outcome.ok and outcome.value.passed)
                pending.finished("preprocessing", outcome, passed)

        outcomes = run_sessions(
            _preprocess,
            sessions,
            (settings,),
            settings.crash_dir,
            session_workers(settings),
            desc="preprocessing",
            threads=settings.omp_nthreads,
            stop=settings.stop_on_first_crash,
            on_finished=preprocessed,
        )
        gated = [] if settings.qc_override else quality_failures(outcomes)
        done = {o.key for o in outcomes if o.ok} - {o.key for o in gated}
        ready = [s for s in sessions if s.key in done]
        stopped = settings.stop_on_first_crash and len(done) < len(sessions)
        if settings.model and ready and not stopped:
            outcomes += classify_sessions(settings, ready, pending)
    outcomes += gated  # reported, with the gate's reasons, but not classified
    errors = {o.key: o.message for o in outcomes if not o.ok}
    # Every session named in the run is reported, a failed one with its error.
    reportable = [
        s
        for s in (report_sessions or sessions)
        if s.key in errors
        or preproc_path(
            out, s.subject, s.session, "T1w", settings.resolution, settings.output_space
        ).is_file()
    ]
    if settings.reports_only and not reportable:
        raise NoInputError(f"--reports-only: no preprocessed sessions in {out} to report on")
    outcomes += write_subject_reports(settings, reportable, errors)
    return outcomes
