"""Every Numba kernel, compiled with bounds checking, on edge cases: no index out of bounds.

The kernels are compiled without bounds checks, where an index past an axis reads or writes
another array's memory silently. ``boundscheck_calls.py`` runs each kernel path on edge-case
inputs in a child process with ``NUMBA_BOUNDSCHECK=1``, where such an index raises IndexError.
The child gets its own Numba cache so that bounds-checked machine code never enters the shared
one (and the shared, unchecked code is never loaded). Compiling takes about a minute.
"""
import os
import subprocess
import sys
from pathlib import Path

CALLS = Path(__file__).with_name("boundscheck_calls.py")


def test_kernels_index_only_inside_their_arrays(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    child = subprocess.run([sys.executable, str(CALLS)], env=env, capture_output=True,
                           text=True, timeout=900)
    assert child.returncode == 0, child.stderr[-3000:]
