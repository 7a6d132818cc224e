"""Under pytest-xdist (``-n 2``, as .ci/run runs the suite): one worker compiles each kernel.

Numba compiles a kernel signature on first use and saves it to its on-disk cache, which the
workers share; a worker that meets a signature after another saved it loads it in
milliseconds. Two workers that meet it at the same time would both compile it (seconds each,
and most of a fresh clone's suite is compilation). So each worker takes a per-function file
lock around Numba's compile step for roiops's cached kernels: the second worker waits for the
first, then finds the signature in the cache. Locks nest as calls do (a kernel's compilation
compiles the functions it calls), so the order is the call graph's and two workers cannot
wait on each other. Numba's own compiler lock is taken first: within a worker only one thread
compiles at a time, as Numba does anyway. Outside xdist (or off POSIX) nothing is changed.
"""
import contextlib
import hashlib
import os
import tempfile

from numba.core import dispatcher
from numba.core.compiler_lock import global_compiler_lock

_LOCKS = os.path.join(tempfile.gettempdir(), "roiops-test-compile-locks")
_held = {}  # lock file path -> (file, depth): a worker's nested compilations of one function


@contextlib.contextmanager
def _function_lock(py_func):
    # The source file too: another checkout's workers have a cache of their own to fill.
    key = f"{py_func.__code__.co_filename}:{py_func.__qualname__}".encode()
    path = os.path.join(_LOCKS, hashlib.sha1(key).hexdigest())
    if path in _held:  # this worker holds it already (a signature compiling another one)
        lock, depth = _held[path]
        _held[path] = (lock, depth + 1)
    else:
        os.makedirs(_LOCKS, exist_ok=True)
        lock = open(path, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        _held[path] = (lock, 1)
    try:
        yield
    finally:
        lock, depth = _held.pop(path)
        if depth > 1:
            _held[path] = (lock, depth - 1)
        else:
            lock.close()  # releases the lock


def _compile_once(compile):
    def locked(self, sig):
        if not self.py_func.__module__.startswith("roiops"):
            return compile(self, sig)
        with global_compiler_lock, _function_lock(self.py_func):
            return compile(self, sig)
    return locked


if os.environ.get("PYTEST_XDIST_WORKER") and os.name == "posix":  # flock: POSIX only
    import fcntl

    dispatcher.Dispatcher.compile = _compile_once(dispatcher.Dispatcher.compile)
