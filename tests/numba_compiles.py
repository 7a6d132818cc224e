"""pytest plugin, ``-p numba_compiles`` (.ci/run uses it): which tests pay which Numba
compilations.

A fresh clone's suite compiles the CPU kernels as it meets them, and that is a large part of
its time. At the end of the run this prints how many kernel signatures were compiled, the
seconds spent compiling (outermost compilations only, so nested ones count once), and the
tests that paid the most. A warm cache compiles nothing.
"""
import time
from collections import Counter

from numba.core import event

_TOP = 15


class _CompileListener(event.Listener):
    def __init__(self):
        self.test = "(collection)"
        self.seconds = Counter()
        self.signatures = Counter()
        self._starts = []

    def on_start(self, ev):
        self._starts.append(time.perf_counter())

    def on_end(self, ev):
        start = self._starts.pop()
        dispatcher = ev.data["dispatcher"]
        if dispatcher.py_func.__module__.startswith("roiops"):
            self.signatures[dispatcher.py_func.__qualname__] += 1
        if not self._starts:  # outermost: includes the nested compilations
            self.seconds[self.test] += time.perf_counter() - start


_listener = _CompileListener()


def pytest_configure(config):
    event.register("numba:compile", _listener)


def pytest_runtest_setup(item):
    _listener.test = item.nodeid


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    total = sum(_listener.seconds.values())
    terminalreporter.section("Numba compilations")
    write(f"{sum(_listener.signatures.values())} roiops kernel signatures "
          f"({len(_listener.signatures)} functions) compiled in {total:.1f} s")
    for test, seconds in _listener.seconds.most_common(_TOP):
        write(f"{seconds:7.1f} s  {test}")
