"""``--mem``: how many sessions run at once within the memory a run is given.

The estimate is the measured peak resident memory of one session's worker (preprocessing of one
subject's T1w, T2w and FLAIR, or writing its report), rounded up; docs/usage.md gives the
measurements. Classification and explanation run one session at a time and are not limited here.
"""

import math
import os

SESSION_MEMORY_GB = 3.5


def slurm_memory_gb():
    """The memory SLURM gave the job (``SLURM_MEM_PER_NODE``, in MB) in GB, or None."""
    mb = os.environ.get("SLURM_MEM_PER_NODE", "")
    return int(mb) / 1024 if mb.isdigit() and int(mb) > 0 else None


def parallel_sessions(nprocs, mem_gb):
    """Sessions to run at once: ``nprocs``, fewer when ``mem_gb`` cannot hold that many (at least
    one, which may then need more than it was given)."""
    if mem_gb is None:
        return nprocs
    return max(1, min(nprocs, math.floor(mem_gb / SESSION_MEMORY_GB)))
