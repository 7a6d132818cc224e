"""Ctrl-C and SIGTERM stop a command: once, with one message, whatever the main thread was
running when the signal came.

Python raises KeyboardInterrupt wherever the main thread is when its handler runs. Code that
runs as a finalizer (``__del__``, a weakref callback, a callback from C) cannot pass that
exception on: Python prints "Exception ignored" and goes on, and the job would run to its end
and exit 0. So the handlers here also remember the signal, and the command checks
:func:`check` between items and before it reports success.
"""
import contextlib
import signal
import threading

from .errors import Terminated

_received = []  # the stopping exception classes, in the order their signals arrived


@contextlib.contextmanager
def signals_stop():
    """While the command runs, SIGINT raises KeyboardInterrupt and SIGTERM raises
    :class:`Terminated`, and both are remembered for :func:`check`. (Only the main thread can
    set signal handlers; elsewhere the handlers stay as they are.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {number: signal.signal(number, _stop)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def check():
    """Raise the exception of the first stopping signal received (KeyboardInterrupt or
    :class:`Terminated`), in case the handler's own raise was swallowed; else do nothing."""
    if _received:
        raise _received[0]


def _stop(signum, frame):
    stopping = KeyboardInterrupt if signum == signal.SIGINT else Terminated
    _received.append(stopping)
    if signum == signal.SIGTERM:  # a second SIGTERM does not cut the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise stopping
