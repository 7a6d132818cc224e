"""``--images`` as a pyarrow filesystem URI: ``s3://bucket/images``, ``gs://bucket/images``,
``hdfs://...``, ``file:///data/images`` (pyarrow's ``FileSystem.from_uri``; credentials as
pyarrow finds them, e.g. the usual AWS or Google environment variables and files).

An image name from the annotations is joined to the URI's path with ``/``; a name that leaves
it (``../x.jpg``, an absolute path) is refused unless --allow-outside-images, as with a
folder. :class:`RemoteImage` is what a worker reads: small and picklable, so that a Ray task
on any node opens it (each process connects to the filesystem once).
"""
import functools
import io
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: not a drive (C:\)


def is_uri(text):
    return bool(URI.match(str(text)))


@functools.lru_cache(maxsize=8)
def _filesystem(uri):
    """``(pyarrow filesystem, path)`` of a URI, made once per process."""
    try:
        from pyarrow import fs
    except ImportError:
        raise UsageError(f'--images {uri}: reading images from a URI needs pyarrow: pip install '
                         '"roiops[ray]" (or pyarrow)') from None
    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise UsageError(f"--images {uri}: {error}") from None


@dataclass(frozen=True)
class RemoteImage:
    """An image file in the filesystem of the URI ``uri``, at ``path`` in it."""

    uri: str
    path: str

    def open(self):
        """The file's bytes as a binary file object (read at once: one request)."""
        filesystem, _ = _filesystem(self.uri)
        with filesystem.open_input_file(self.path) as file:
            return io.BytesIO(file.read())

    def is_file(self):
        from pyarrow import fs

        filesystem, _ = _filesystem(self.uri)
        return filesystem.get_file_info(self.path).type == fs.FileType.File


class RemoteFolder:
    """``--images`` given as a URI."""

    def __init__(self, uri):
        self.uri = str(uri)
        self.filesystem, root = _filesystem(self.uri)
        self.root = root.rstrip("/") or "/"

    def __str__(self):
        return self.uri

    def __truediv__(self, name):
        """How an image is named in messages: the URI and the name."""
        return f"{self.uri.rstrip('/')}/{name}"

    @property
    def local_path(self):
        """The folder, for a ``file://`` URI (pyarrow's local filesystem); else None."""
        from pyarrow import fs

        return Path(self.root) if isinstance(self.filesystem, fs.LocalFileSystem) else None

    def check(self):
        from pyarrow import fs

        try:
            kind = self.filesystem.get_file_info(self.root).type
        except OSError as error:
            raise UsageError(f"--images {self.uri}: {error}") from None
        if kind != fs.FileType.Directory:
            problem = "no such folder" if kind == fs.FileType.NotFound else "is not a folder"
            raise UsageError(f"--images {self.uri}: {problem}")

    def image(self, name, allow_outside):
        """The :class:`RemoteImage` of an image name; ValueError saying why it is not read.
        (On the local filesystem links are resolved first, as for a folder.)"""
        path = posixpath.normpath(posixpath.join(self.root, name))
        root = self.root
        if self.local_path is not None:
            path, root = os.path.realpath(path), os.path.realpath(root)
        if not allow_outside and not (path + "/").startswith(root.rstrip("/") + "/"):
            raise ValueError(f"outside --images (the file is {path}); paths in the annotations "
                             "stay inside --images unless --allow-outside-images is given")
        return RemoteImage(self.uri, path)

    def is_dir(self):
        from pyarrow import fs

        return self.filesystem.get_file_info(self.root).type == fs.FileType.Directory

    def relative_files(self):
        """The paths of the files under the folder, relative to it (POSIX)."""
        from pyarrow import fs

        selector = fs.FileSelector(self.root, recursive=True)
        start = len(self.root.rstrip("/")) + 1
        return [info.path[start:] for info in self.filesystem.get_file_info(selector)
                if info.type == fs.FileType.File]
