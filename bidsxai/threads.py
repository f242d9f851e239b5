"""How many threads one process may use, for every pool it can have: torch (intra- and inter-op),
OpenMP and BLAS (through threadpoolctl, also for libraries already loaded), numba and ITK (through
their environment variables, read when they start, so processes started later inherit them).

Without a cap each of ``--nprocs`` session workers would start one thread per CPU, and a node's
CPUs would be oversubscribed many times over.
"""

import contextlib
import os
import sys

VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def limit_threads(n, torch_pools=True):
    """Cap this process, and the processes it starts, at ``n`` threads per pool. With
    ``torch_pools=False`` torch is not imported to cap its pools (a run that never uses it, such
    as a report's rewrite, does not wait for it); if it is loaded already, they are capped."""
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    for name in VARIABLES:
        os.environ[name] = str(n)
    threadpool_limits(n)
    if torch_pools or "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # settable once per process, before inter-op work
            torch.set_num_interop_threads(n)
    if "numba" in sys.modules:  # loaded already: at most the pool it started with
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
