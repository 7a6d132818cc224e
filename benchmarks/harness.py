"""Side-by-side timing: contenders run alternately in one process; medians and ratios.

Never imported by roiops or its tests. Run the benchmark scripts with a peer's Python, into
which roiops is installed (``.peers/tf/bin/pip install -e .``).
"""
import argparse
import os
import platform

import numpy as np

from roiops._timing import median_seconds  # the one alternating timer, shared with `roiops bench`

__all__ = ["fill_floor", "fresh_floor", "machine", "median_seconds", "parse_args", "report",
           "set_threads"]


def set_threads(count):
    """Pin every library that is importable to ``count`` threads."""
    import numba

    numba.set_num_threads(count)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except (ImportError, RuntimeError):
        pass
    try:
        import torch

        torch.set_num_threads(count)
    except ImportError:
        pass


def parse_args(doc, switches=()):
    """``--threads``, ``--repeats`` and the script's ``(flag, help)`` switches; every library
    gets the threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    for flag, text in switches:
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args()
    set_threads(args.threads)
    return args


def fill_floor(shape, dtype=np.float32):
    """The write floor: a fill of a preallocated array of the output's size."""
    target = np.empty(shape, dtype)
    target.fill(1.0)
    return lambda: target.fill(0.0)


def fresh_floor(shape, dtype=np.float32):
    """The floor of any call returning a new array of ``shape``: a fresh one, written once.
    Its pages are new to the process (arrays over glibc's 32 MB mmap threshold are mapped
    anew for every call), so the OS zeroes each on first touch; more threads do not help."""
    return lambda: np.empty(shape, dtype).fill(0.0)


def machine():
    """The CPU (model name, and family/model/MHz where /proc/cpuinfo gives them: VMs that
    all call themselves "Intel(R) Xeon(R) Processor" differ, and the peers' speed with them),
    the core count and the Python version."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            fields = {}
            for line in info:
                if not line.strip():
                    break  # the first processor's fields
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        cpu = fields.get("model name", cpu)
        detail = ", ".join(f"{key} {fields[key]}" for key in ("cpu family", "model", "cpu MHz")
                           if key in fields)
        if detail:
            cpu = f"{cpu} ({detail})"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(title, medians, baseline_names, notes=()):
    """Print a Markdown table: each contender's median and its speedup over the baselines."""
    print(f"\n### {title}\n")
    header = "| contender | median ms |" + "".join(f" vs {b} |" for b in baseline_names)
    print(header)
    print("|" + "---|" * (2 + len(baseline_names)))
    for name, seconds in medians.items():
        ratios = "".join(f" {medians[b] / seconds:.2f}x |" for b in baseline_names)
        print(f"| {name} | {seconds * 1e3:.2f} |{ratios}")
    for note in notes:
        print(f"\n{note}")
