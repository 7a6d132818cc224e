"""Writing output files of ``roiops crop`` atomically, without following links.

Every output (a crop, an npz shard, the manifest, the contact sheet) is written to a new
temporary file in its destination folder and renamed over the destination with
:func:`os.replace`. The rename
replaces a symbolic link that is already there instead of writing through it, and a run that
is killed leaves either the old file or the complete new one, never a partial file (at most a
``.roiops-*.tmp`` file, which no run takes for an output).

:func:`write_bytes` (the crops) first tries a file without a name (Linux's ``O_TMPFILE``) that
is given its name once written (``linkat``): one directory change instead of two, and a kill
leaves nothing. Giving a name never replaces what is there (a link, an empty file); then, and
where the system or file system has no such files, it falls back to the rename.
"""
import errno
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


def write_bytes(path, data):
    """Create ``path`` (or replace it, a link included) with the bytes ``data``."""
    with WRITING:
        if _link_unnamed(path, data):
            return
    write_atomically(path, lambda file: file.write(data))


def _link_unnamed(path, data):
    """Write ``data`` to an unnamed file in ``path``'s folder and name it ``path``; False
    (nothing written) when something is at ``path`` already or unnamed files are not
    available here."""
    unnamed = getattr(os, "O_TMPFILE", None)
    if unnamed is None:
        return False
    try:
        descriptor = os.open(os.path.dirname(path) or ".", unnamed | os.O_WRONLY, 0o666)
    except OSError:  # not Linux 3.11+, or a file system without them (the fallback says why)
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        # linkat() through /proc with AT_SYMLINK_FOLLOW: os.link uses linkat, not link(), only
        # when given a directory descriptor (ignored for the absolute source path).
        os.link(f"/proc/self/fd/{descriptor}", path, src_dir_fd=descriptor)
        return True
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOENT, errno.EXDEV, errno.EPERM,
                           errno.EACCES, errno.EOPNOTSUPP):
            return False  # a name to replace, or no /proc: the rename does it
        raise
    finally:
        os.close(descriptor)


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
