"""The CPU kernels' threads: a serial Numba kernel run over chunks of its tasks at once.

Each kernel is compiled ``nogil=True`` and takes ``(task_begin, task_end)`` as its last two
arguments; ``run_tasks`` cuts ``[0, num_tasks)`` into one contiguous chunk per thread (the
static schedule a ``prange`` loop uses) and runs the chunks on a small pool of Python threads,
the calling thread taking the first. Tasks write disjoint outputs, so results do not depend on
the number of threads.

Why not ``parallel=True``: lowering a ``prange`` loop (Numba's parfors) and its gufunc wrapper
made a first call compile two to three times as long (BENCHMARKS.md#jit), for the same speed
of the loops themselves. The thread count is Numba's (``numba.set_num_threads``, per calling
thread), so existing settings keep working.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_pool = None
_pool_lock = threading.Lock()


def _forget_pool():
    """In a forked child: the parent's pool threads do not exist there, and tasks handed to
    its executor would wait forever; the child makes its own pool on first use."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _executor():
    """The process's pool, created on first use; it grows to the largest count asked for."""
    global _pool
    wanted = max(numba.config.NUMBA_NUM_THREADS - 1, 1)
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(wanted, thread_name_prefix="roiops")
        return _pool


def run_tasks(kernel, num_tasks, *args):
    """``kernel(*args, begin, end)`` over contiguous chunks of ``[0, num_tasks)``, one per
    thread, returning when all are done (re-raising the first error)."""
    threads = min(numba.get_num_threads(), num_tasks)
    if threads <= 1:
        kernel(*args, 0, num_tasks)
        return
    chunk = -(-num_tasks // threads)
    pool = _executor()
    others = [pool.submit(kernel, *args, begin, min(begin + chunk, num_tasks))
              for begin in range(chunk, num_tasks, chunk)]
    try:
        kernel(*args, 0, chunk)
    finally:
        for future in others:
            future.result()
