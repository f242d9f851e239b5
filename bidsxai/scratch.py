"""Names of bidsxai's temporary files and scratch folders, and the removal of those that a killed
run left behind.

Every temporary name carries the id of the process that made it, so a later run can tell a
leftover (its process is gone) from a file that a concurrent run is still writing.
"""

import os
import shutil
import tempfile
from pathlib import Path

TEMP_FILE_PREFIX = ".bidsxai-tmp-"  # atomic writes: beside their destination, hidden
WORK_PREFIX = "bidsxai-work-"  # a session's scratch folder in the work directory


def temp_file_prefix(name):
    return f"{TEMP_FILE_PREFIX}{os.getpid()}-{name}."


def work_folder(key, work_dir=None):
    """A new scratch folder for one session."""
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-{key}-", dir=work_dir))


def _owner_gone(name, prefix):
    """Whether the process named in ``name`` has ended: it no longer exists, or it is a zombie
    (a killed run's worker that its new parent has not reaped yet: it can write nothing more)."""
    pid = name[len(prefix) :].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:  # Linux: the state follows the parenthesised command name in /proc/PID/stat
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def remove_leftovers(out_dir, work_dir=None):
    """Remove temporary files under OUTPUT_DIR and scratch folders in the work directory whose
    process no longer runs; returns how many were removed."""
    removed = 0
    for path in Path(out_dir).rglob(f"{TEMP_FILE_PREFIX}*"):
        if path.is_file() and _owner_gone(path.name, TEMP_FILE_PREFIX):
            path.unlink(missing_ok=True)
            removed += 1
    scratch = Path(work_dir or tempfile.gettempdir())
    for path in scratch.glob(f"{WORK_PREFIX}*"):
        if path.is_dir() and _owner_gone(path.name, WORK_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
