"""The error that stops a command before any work: a usage error (exit status 2)."""


class UsageError(Exception):
    """A problem with the command itself: a bad option value, an unreadable annotation file,
    an output that would replace an input."""


class Terminated(BaseException):
    """SIGTERM arrived: the command stops as it does on Ctrl-C (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` swallows it)."""
