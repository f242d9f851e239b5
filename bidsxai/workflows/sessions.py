"""Run one function over many sessions in worker processes; a failure stops only its session.

Expected failures (``BidsxaiError``) keep their one-line message and exit code; anything else is
logged with its traceback under OUTPUT_DIR/logs/ and reported as one line with exit code 1.
"""

import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from bidsxai.atomic import write_text
from bidsxai.errors import EXIT_INTERNAL, BidsxaiError


@dataclass
class Outcome:
    key: str
    value: object = None
    message: str | None = None
    exit_code: int = 0

    @property
    def ok(self):
        return self.message is None


def _call(function, item, args, log_dir):
    try:
        return Outcome(item.key, function(item, *args))
    except BidsxaiError as exc:
        return Outcome(item.key, message=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # unexpected: keep the traceback for the bug report
        log = log_dir / f"crash-{item.key}.txt"
        write_text(log, traceback.format_exc())
        return Outcome(
            item.key,
            message=f"{item.key}: internal error {type(exc).__name__}: {exc} (traceback in {log})",
            exit_code=EXIT_INTERNAL,
        )


def run_sessions(function, items, args, log_dir, nprocs=1, desc="sessions"):
    """[Outcome] in the order of ``items``; failures are printed as one line on stderr."""
    progress = dict(total=len(items), desc=desc, disable=not sys.stderr.isatty(), leave=False)
    if nprocs > 1 and len(items) > 1:
        with ProcessPoolExecutor(min(nprocs, len(items))) as pool:
            futures = [pool.submit(_call, function, item, args, log_dir) for item in items]
            outcomes = [f.result() for f in tqdm(futures, **progress)]
    else:
        outcomes = [_call(function, item, args, log_dir) for item in tqdm(items, **progress)]
    for outcome in outcomes:
        if not outcome.ok:
            message = (
                outcome.message
                if outcome.message.startswith(outcome.key)
                else f"{outcome.key}: {outcome.message}"
            )
            print(f"bidsxai: {message}", file=sys.stderr)
    return outcomes


def worst_exit_code(outcomes):
    codes = [o.exit_code for o in outcomes if not o.ok]
    return codes[0] if codes else 0
