"""pytest plugin, ``-p numba_compiles`` (.ci/run uses it): which tests pay which Numba
compilations.

A fresh clone's suite compiles the CPU kernels as it meets them, and that is a large part of
its time. At the end of the run this prints how many kernel signatures were compiled, the
seconds spent compiling (outermost compilations only, so nested ones count once), and the
tests that paid the most. A warm cache compiles nothing.

The seconds are the compiling thread's CPU time, not wall time: on a machine shared with
other jobs they stay what the compilation cost. Under pytest-xdist (``-n``) each worker
records its own compilations and sends them to the controller, which prints the sum: a
signature two workers compiled at the same time counts twice, as it cost twice (a worker that
meets a signature another already compiled loads it from the shared on-disk cache).
"""
import time
from collections import Counter

import pytest
from numba.core import event

_TOP = 15


class _CompileListener(event.Listener):
    def __init__(self):
        self.test = "(collection)"
        self.seconds = Counter()
        self.signatures = Counter()
        self._starts = []

    def on_start(self, ev):
        self._starts.append(time.thread_time())

    def on_end(self, ev):
        start = self._starts.pop()
        dispatcher = ev.data["dispatcher"]
        if dispatcher.py_func.__module__.startswith("roiops"):
            self.signatures[dispatcher.py_func.__qualname__] += 1
        if not self._starts:  # outermost: includes the nested compilations
            self.seconds[self.test] += time.thread_time() - start


_listener = _CompileListener()


def pytest_configure(config):
    event.register("numba:compile", _listener)


def pytest_runtest_setup(item):
    _listener.test = item.nodeid


def pytest_sessionfinish(session):
    output = getattr(session.config, "workeroutput", None)  # set in an xdist worker only
    if output is not None:
        output["numba_compiles"] = {"seconds": dict(_listener.seconds),
                                    "signatures": dict(_listener.signatures)}


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent without pytest-xdist
def pytest_testnodedown(node, error):
    recorded = getattr(node, "workeroutput", {}).get("numba_compiles")
    if recorded:  # a crashed worker sends nothing
        _listener.seconds.update(recorded["seconds"])
        _listener.signatures.update(recorded["signatures"])


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    total = sum(_listener.seconds.values())
    terminalreporter.section("Numba compilations")
    write(f"{sum(_listener.signatures.values())} roiops kernel signatures "
          f"({len(_listener.signatures)} functions) compiled in {total:.1f} s of CPU time")
    for test, seconds in _listener.seconds.most_common(_TOP):
        write(f"{seconds:7.1f} s  {test}")
