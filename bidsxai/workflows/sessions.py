"""Run one function over many sessions in worker processes; a failure stops only its session.

Expected failures (``BidsxaiError``) keep their one-line message and exit code; a full disk is
exit 73; anything else is logged with its traceback in the run's crash folder and reported as one
line with exit code 1. A crash log that cannot be written is mentioned, not fatal.

Workers die with the main process (Linux: the kernel sends them SIGKILL when it exits, whatever
killed it). A worker that dies under a session (the out-of-memory killer's SIGKILL, say) breaks
the pool: the sessions it did not finish are run again in a new pool, each session that was in
flight alone, so a session that kills its worker again fails by itself (exit 75, EX_TEMPFAIL:
worth resubmitting with more memory) and the others complete.

Each worker is capped at its share of the threads (``--omp-nthreads``, by default the CPUs over
the workers). With ``stop`` (``--stop-on-first-crash``) the first failure ends the run: sessions
not yet started are reported as not run, with the failure's exit code.
"""

import ctypes
import errno
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bidsxai.atomic import write_text
from bidsxai.config import available_cpus
from bidsxai.errors import EXIT_CANNOT_CREATE_OUTPUT, EXIT_INTERNAL, EXIT_TEMPFAIL, BidsxaiError
from bidsxai.logs import event
from bidsxai.threads import limit_threads

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


@dataclass
class Outcome:
    key: str
    value: object = None
    message: str | None = None
    exit_code: int = 0

    @property
    def ok(self):
        return self.message is None


def _call(function, item, args, crash_dir):
    try:
        return Outcome(item.key, function(item, *args))
    except BidsxaiError as exc:
        return Outcome(item.key, message=str(exc), exit_code=exc.exit_code)
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            return _crashed(item, exc, crash_dir)
        where = f" writing {exc.filename}" if exc.filename else ""
        return Outcome(
            item.key,
            message=f"no space left on the device{where}",
            exit_code=EXIT_CANNOT_CREATE_OUTPUT,
        )
    except Exception as exc:  # unexpected: keep the traceback for the bug report
        return _crashed(item, exc, crash_dir)


def _crashed(item, exc, crash_dir):
    log = Path(crash_dir) / f"{item.key}.txt"
    try:
        write_text(log, traceback.format_exc())
        where = f"traceback in {log}"
    except OSError as write_error:
        where = f"no traceback written: {write_error.strerror}"
    return Outcome(
        item.key,
        message=f"{item.key}: internal error {type(exc).__name__}: {exc} ({where})",
        exit_code=EXIT_INTERNAL,
    )


def _start_worker(threads):
    """Pool initializer: cap the worker's threads, and end it when the main process ends."""
    limit_threads(threads)
    parent = os.getppid()
    try:  # Linux: PR_SET_PDEATHSIG (1) makes the kernel send SIGKILL when the parent exits
        if (
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0
            and os.getppid() == parent
        ):
            return
    except (OSError, AttributeError):
        pass

    def watch():  # elsewhere: notice being re-parented
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _tracked_call(function, item, args, crash_dir, in_flight):
    """``_call``, with a marker named for the session while it runs (read when a pool breaks)."""
    marker = Path(in_flight) / item.key
    marker.write_text(str(os.getpid()))
    try:
        return _call(function, item, args, crash_dir)
    finally:
        marker.unlink(missing_ok=True)


def _kill_workers(pool):
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


def _worker_died(item):
    return Outcome(
        item.key,
        exit_code=EXIT_TEMPFAIL,
        message=(
            f"{item.key}: its worker process was killed (twice; most likely by the out-of-memory "
            "killer: run fewer sessions at once with a lower --nprocs)"
        ),
    )


def _run_pool(
    function,
    items,
    args,
    crash_dir,
    workers,
    progress,
    threads=None,
    stop=False,
    desc="sessions",
    on_finished=None,
):
    """{index: Outcome} of the items a pool finished, and the indices in flight when it broke.

    A session is handed to the pool only when a worker is free, so that after a failure under
    ``stop`` only the sessions already running finish (the pool's own queue would start more).
    """
    done, in_flight_keys = {}, set()
    threads = threads or max(1, available_cpus() // workers)
    waiting = list(enumerate(items))[::-1]
    running, started = {}, {}
    with tempfile.TemporaryDirectory(prefix="bidsxai-in-flight-") as markers:
        pool = ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(threads,))
        try:
            stopping = False
            while running or (waiting and not stopping):
                while waiting and not stopping and len(running) < workers:
                    i, item = waiting.pop()
                    future = pool.submit(_tracked_call, function, item, args, crash_dir, markers)
                    running[future] = i
                    started[i] = _started(item, desc)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                try:
                    for future in finished:
                        i = running.pop(future)
                        done[i] = future.result()
                        _finished(done[i], desc, started[i], on_finished)
                        progress.update()
                        stopping |= stop and not done[i].ok
                except BrokenProcessPool:
                    in_flight_keys = {p.name for p in Path(markers).iterdir()}
                    break
        except BaseException:  # SIGTERM, Ctrl-C: stop the workers now, not after their session
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    in_flight = {i for i, item in enumerate(items) if item.key in in_flight_keys and i not in done}
    return done, in_flight


def run_sessions(
    function,
    items,
    args,
    crash_dir,
    nprocs=1,
    desc="sessions",
    threads=None,
    stop=False,
    on_finished=None,
):
    """[Outcome] in the order of ``items``; failures are printed as one line on stderr.
    ``on_finished(outcome)`` is called in this process as each session ends."""
    progress = tqdm(total=len(items), desc=desc, disable=not sys.stderr.isatty(), leave=False)
    outcomes = {}

    def failed():
        return any(not o.ok for o in outcomes.values())

    if nprocs > 1 and len(items) > 1:
        pending, suspects = list(range(len(items))), set()
        while pending and not (stop and failed()):
            alone = [i for i in pending if i in suspects]
            if alone:  # a session that was running when a worker died: once more, by itself
                i = alone[0]
                done, in_flight = _run_pool(
                    function,
                    [items[i]],
                    args,
                    crash_dir,
                    1,
                    progress,
                    threads,
                    desc=desc,
                    on_finished=on_finished,
                )
                outcomes[i] = done.get(0) or _worker_died(items[i])
                if not done:
                    progress.update()
                pending.remove(i)
                continue
            batch = [items[i] for i in pending]
            done, in_flight = _run_pool(
                function,
                batch,
                args,
                crash_dir,
                min(nprocs, len(batch)),
                progress,
                threads,
                stop,
                desc,
                on_finished,
            )
            outcomes.update({pending[j]: o for j, o in done.items()})
            suspects |= {pending[j] for j in in_flight}
            if not done and not in_flight:  # broke before any session started: give up on them
                outcomes.update({i: _worker_died(items[i]) for i in pending})
            pending = [i for i in pending if i not in outcomes]
    else:
        for i, item in enumerate(items):
            if stop and failed():
                break
            start = _started(item, desc)
            outcomes[i] = _call(function, item, args, crash_dir)
            _finished(outcomes[i], desc, start, on_finished)
            progress.update()
    progress.close()
    if len(outcomes) < len(items):  # --stop-on-first-crash
        first = next(o for o in outcomes.values() if not o.ok)
        for i, item in enumerate(items):
            outcomes.setdefault(i, _not_run(item, first))
    ordered = [outcomes[i] for i in range(len(items))]
    for outcome in ordered:
        if not outcome.ok:
            message = (
                outcome.message
                if outcome.message.startswith(outcome.key)
                else f"{outcome.key}: {outcome.message}"
            )
            print(f"bidsxai: {message}", file=sys.stderr)
    return ordered


def _started(item, stage):
    event("session_started", stage=stage, session=item.key)
    return time.monotonic()


def _finished(outcome, stage, start, on_finished=None):
    seconds = time.monotonic() - start
    if on_finished is not None:
        on_finished(outcome)
    if outcome.ok:
        event("session_finished", stage=stage, session=outcome.key, seconds=seconds)
    else:
        event(
            "session_failed",
            level=logging.WARNING,
            stage=stage,
            session=outcome.key,
            seconds=seconds,
            exit_code=outcome.exit_code,
            reason=outcome.message,
        )


def _not_run(item, failure):
    return Outcome(
        item.key,
        exit_code=failure.exit_code,
        message=f"{item.key}: not run: {failure.key} failed first (--stop-on-first-crash)",
    )


def worst_exit_code(outcomes):
    codes = [o.exit_code for o in outcomes if not o.ok]
    return codes[0] if codes else 0
