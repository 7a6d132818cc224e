"""Writing output files of ``roiops crop`` atomically, without following links.

Every output (a crop, an npz shard, the manifest, the contact sheet) is written to a new
temporary file in its destination folder and renamed over the destination with
:func:`os.replace`. The rename
replaces a symbolic link that is already there instead of writing through it, and a run that
is killed leaves either the old file or the complete new one, never a partial file (at most a
``.roiops-*.tmp`` file, which no run takes for an output).
"""
import os
import secrets
import stat
import threading
from pathlib import Path

TEMPORARY_PREFIX = ".roiops-"
TEMPORARY_SUFFIX = ".tmp"

# Held while a temporary file exists, so that a worker that must stop (its parent died, see
# crop.py) can wait for the write in progress to be renamed or removed before it exits.
WRITING = threading.Lock()


def write_atomically(path, write):
    """Create ``path`` (or replace it, a link included) with what ``write(file)`` writes to a
    binary file object."""
    path = Path(path)
    with WRITING:
        temporary, descriptor = _create_temporary(path.parent)
        try:
            with os.fdopen(descriptor, "wb") as file:
                write(file)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _create_temporary(folder):
    """A new file in ``folder`` with a random name: ``(path, descriptor)``.

    ``O_EXCL`` never opens an existing file or follows a link of that name; mode 0o666 lets the
    umask give the file the permissions any new file gets (``tempfile.mkstemp`` gives 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
        try:
            return path, os.open(path, flags, 0o666)
        except FileExistsError:
            continue


def is_written(path):
    """Whether an output of an earlier run is at ``path``: a non-empty regular file. A link
    is not one (it is replaced, not followed), nor is an empty file."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size > 0
