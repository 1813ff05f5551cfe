"""Running the compiled kernels on a number of numba threads, and starting numba's threads
without changing anyone else's.

numba starts its thread pool at the first parallel call of a process. Its OpenMP layer (the
one used where TBB is absent) then calls ``omp_set_num_threads(NUMBA_NUM_THREADS)``, which the
dynamic linker may resolve to another library's OpenMP runtime: torch loads its libgomp into
the process's global scope, and faiss imported after torch (as after ``import sortedhash``)
sends its own OpenMP calls there too. The first search would then reset a user's
``faiss.omp_set_num_threads`` to numba's thread count (torch applies its own setting again at
each call; faiss does not). :func:`start_numba_threads` starts the pool and sets every OpenMP
runtime whose thread count changed back to what it was (through threadpoolctl, which reaches
each runtime by its own handle).
"""

import threading

import numba
from threadpoolctl import ThreadpoolController

__all__ = ["numba_threads", "run_on_threads", "start_numba_threads"]

_lock = threading.Lock()
_started = False


def start_numba_threads():
    """Start numba's thread pool (once a process), leaving other OpenMP runtimes' thread
    counts as they were."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        # OpenMP settings are per thread: these are read, and set back, on the thread that
        # starts the pool, the one numba changes them on.
        runtimes = ThreadpoolController().select(user_api="openmp").lib_controllers
        before = [(runtime, runtime.get_num_threads()) for runtime in runtimes]
        numba.get_num_threads()  # starts the pool
        for runtime, n_threads in before:
            if runtime.get_num_threads() != n_threads:
                runtime.set_num_threads(n_threads)
        _started = True


def numba_threads():
    """numba's current number of threads (its pool started as :func:`start_numba_threads` does)."""
    start_numba_threads()
    return numba.get_num_threads()


def run_on_threads(n_threads, kernel, *args):
    """Run ``kernel(*args)`` on ``n_threads`` numba threads (None: numba's current setting)."""
    previous = numba_threads()
    if n_threads is not None:
        numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(previous)
