"""What a run tells its user while it works, and what it leaves for later.

- On a terminal, progress bars show progress and stderr carries only warnings and errors.
- When stderr is not a terminal (a batch job's log, a pipe), every event is one timestamped line of
  ``key=value`` fields: a session started, finished or failed and how long it took, each training
  epoch with its losses, each group analysis. ``-v`` adds debugging lines, ``-q`` keeps warnings
  and errors only.
- Every run also writes all its events to ``OUTPUT_DIR/logs/<level>-<run id>.log``, the id it
  shares with its settings file and crash folder.
"""

import logging
import sys
import time

LOGGER = logging.getLogger("bidsxai")
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + (
            f".{int(record.msecs):03d}Z"
        )


def _field(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return f'"{text}"' if " " in text or not text else text


def event(name, *, level=logging.INFO, **fields):
    """Log one event: ``event=<name>`` and its fields as ``key=value``."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(
            level, " ".join([f"event={name}"] + [f"{k}={_field(v)}" for k, v in fields.items()])
        )


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when it writes."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup(verbosity):
    """A new run's handlers: stderr for its ``-v``/``-q`` (``verbosity``); no run log yet."""
    for old in LOGGER.handlers:
        old.close()
    LOGGER.handlers = []
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False
    handler = _Stderr()
    if sys.stderr.isatty():  # progress bars show progress
        handler.setLevel(logging.WARNING if verbosity < 1 else logging.DEBUG)
    else:
        handler.setLevel(logging.WARNING if verbosity < 0 else logging.INFO - 10 * (verbosity > 0))
    handler.setFormatter(_UtcFormatter(FORMAT))
    LOGGER.addHandler(handler)


def add_run_log(path):
    """Also write every event (INFO and above) to ``path``, appending."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(_UtcFormatter(FORMAT))
    LOGGER.addHandler(handler)
    return path
