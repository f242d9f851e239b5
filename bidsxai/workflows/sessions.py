"""Run one function over many sessions in worker processes; a failure stops only its session.

Expected failures (``BidsxaiError``) keep their one-line message and exit code; a full disk is
exit 73; anything else is logged with its traceback in the run's crash folder and reported as one
line with exit code 1. A crash log that cannot be written is mentioned, not fatal.

Workers die with the main process (Linux: the kernel sends them SIGKILL when it exits, whatever
killed it). A worker that dies under a session (the out-of-memory killer's SIGKILL, say) breaks
the pool: the sessions it did not finish are run again in a new pool, each session that was in
flight alone, so a session that kills its worker again fails by itself and the others complete.
"""

import ctypes
import errno
import os
import signal
import sys
import tempfile
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bidsxai.atomic import write_text
from bidsxai.errors import EXIT_CANNOT_CREATE_OUTPUT, EXIT_INTERNAL, BidsxaiError

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


def _die_with_parent():
    """Pool initializer: end this worker when the main process ends, however it ends."""
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
        exit_code=EXIT_INTERNAL,
        message=(
            f"{item.key}: its worker process was killed (twice; most likely by the out-of-memory "
            "killer: run fewer sessions at once with a lower --nprocs)"
        ),
    )


def _run_pool(function, items, args, crash_dir, workers, progress):
    """{index: Outcome} of the items a pool finished, and the indices in flight when it broke."""
    done, in_flight_keys = {}, set()
    with tempfile.TemporaryDirectory(prefix="bidsxai-in-flight-") as markers:
        pool = ProcessPoolExecutor(workers, initializer=_die_with_parent)
        try:
            futures = {
                pool.submit(_tracked_call, function, item, args, crash_dir, markers): i
                for i, item in enumerate(items)
            }
            for future, i in futures.items():
                try:
                    done[i] = future.result()
                    progress.update()
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


def run_sessions(function, items, args, crash_dir, nprocs=1, desc="sessions"):
    """[Outcome] in the order of ``items``; failures are printed as one line on stderr."""
    progress = tqdm(total=len(items), desc=desc, disable=not sys.stderr.isatty(), leave=False)
    outcomes = {}
    if nprocs > 1 and len(items) > 1:
        pending, suspects = list(range(len(items))), set()
        while pending:
            alone = [i for i in pending if i in suspects]
            if alone:  # a session that was running when a worker died: once more, by itself
                i = alone[0]
                done, in_flight = _run_pool(function, [items[i]], args, crash_dir, 1, progress)
                outcomes[i] = done.get(0) or _worker_died(items[i])
                if not done:
                    progress.update()
                pending.remove(i)
                continue
            batch = [items[i] for i in pending]
            done, in_flight = _run_pool(
                function, batch, args, crash_dir, min(nprocs, len(batch)), progress
            )
            outcomes.update({pending[j]: o for j, o in done.items()})
            suspects |= {pending[j] for j in in_flight}
            if not done and not in_flight:  # broke before any session started: give up on them
                outcomes.update({i: _worker_died(items[i]) for i in pending})
            pending = [i for i in pending if i not in outcomes]
    else:
        for i, item in enumerate(items):
            outcomes[i] = _call(function, item, args, crash_dir)
            progress.update()
    progress.close()
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


def worst_exit_code(outcomes):
    codes = [o.exit_code for o in outcomes if not o.ok]
    return codes[0] if codes else 0
