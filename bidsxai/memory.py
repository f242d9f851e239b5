"""``--mem``: how many sessions run at once within the memory a run is given, and how many
sessions ``--batch-sessions`` explains together by default.

The first estimate is the measured peak resident memory of one session's worker (preprocessing
of one subject's T1w, T2w and FLAIR, or writing its report), rounded up; the second, the measured
growth of the peak per session added to a batch of explanations, per voxel of the model's input;
docs/hpc.md and docs/benchmarks.md give the measurements.
"""

import math
import os

SESSION_MEMORY_GB = 3.5
# Peak memory added by each session of an explanation batch, per voxel of the model's input box:
# 536 B for the 3D CNN with Grad-CAM and LRP at 2 mm (benchmarks/batch_sessions.py), with a margin
# of 2. At most 4 sessions: on 2 CPU cores 4 explained faster than 8 (docs/benchmarks.md).
EXPLANATION_BYTES_PER_VOXEL = 1100
MAX_BATCH_SESSIONS = 4


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


def available_memory_gb(device, mem_gb=None):
    """Memory free for explanations: on a GPU, its free memory; on the CPU, ``mem_gb`` (--mem)
    where given, else the memory the kernel reports available."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0] / 2**30
    if mem_gb is not None:
        return mem_gb
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def explanation_batch(input_voxels, memory_gb):
    """Sessions to explain together by default: as many as half of ``memory_gb`` holds at
    ``EXPLANATION_BYTES_PER_VOXEL`` per voxel of the model's input, between 1 and
    ``MAX_BATCH_SESSIONS``."""
    per_session_gb = input_voxels * EXPLANATION_BYTES_PER_VOXEL / 2**30
    return max(1, min(MAX_BATCH_SESSIONS, math.floor(memory_gb / 2 / per_session_gb)))
