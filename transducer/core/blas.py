"""How many BLAS threads the numpy engine runs with, read from the environment; numpy-free,
so the CLI can settle it before numpy (and OpenBLAS with it) loads.

The policy (the engine applies it, inference/numpy_engine.py says why one thread):
  TRANSDUCER_BLAS_THREADS=N                 BLAS gets N threads during the engine's calls
  OPENBLAS_NUM_THREADS, OMP_NUM_THREADS     set (and TRANSDUCER_BLAS_THREADS not): the
  or MKL_NUM_THREADS                        engine leaves BLAS as they configured it
  none of them                              one thread
"""

from __future__ import annotations

import os
import sys

from transducer.core.config import TransducerError

BLAS_THREADS = "TRANSDUCER_BLAS_THREADS"  # the user's BLAS thread count for the engine
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # BLAS's own settings


def blas_threads(env=os.environ) -> int | None:
    """The BLAS threads the engine runs with: TRANSDUCER_BLAS_THREADS, else None (leave
    BLAS alone) when the user configured BLAS through its own variables, else 1."""
    value = env.get(BLAS_THREADS, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise TransducerError(f"{BLAS_THREADS} must be a whole number of threads, at least 1; got {value!r}")
        return int(value)
    if any(env.get(name, "").strip() for name in BLAS_ENV):
        return None
    return 1


def start_with_one_blas_thread(env=os.environ) -> None:
    """For a process that has not imported numpy yet (the `transducer` command): when the
    user chose no BLAS threads, tell OpenBLAS to start one. OpenBLAS starts a thread per
    core when it loads, and those threads spin: ~0.1 s of CPU in every short process
    (a one-line predict), and a core taken from a busy machine, for threads the engine
    limits to one anyway. The engine then finds OPENBLAS_NUM_THREADS set and leaves BLAS
    at that one thread. A user's own setting (any of the variables above) is left as is,
    and so is a process where numpy is loaded already (OpenBLAS has its threads; the
    engine's own limit must stay in charge there, so the variable must not say "set")."""
    if "numpy" in sys.modules:
        return
    try:
        one = blas_threads(env) == 1
    except TransducerError:  # a bad TRANSDUCER_BLAS_THREADS: the command reports it, as its own error
        return
    if one:
        env["OPENBLAS_NUM_THREADS"] = "1"
