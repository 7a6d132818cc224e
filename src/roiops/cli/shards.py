"""npz shards of ``roiops crop --format npz``: ``crops-00000.npz``, ``crops-00001.npz``, ...

Shard ``k`` holds the crops of the boxes ``k * n`` to ``k * n + n - 1`` in annotation order
(``n`` from :func:`crops_per_shard`: about ``SHARD_BYTES`` of crops), so that the main process
holds one shard's crops at a time, and a resume rewrites only the shards whose boxes are not
all in them. Each shard has the crops and their metadata; the small arrays are read without
the crops (``numpy.load`` reads an array when it is asked for).
"""
import os
import re
import stat

import numpy as np

from . import files

SHARD_BYTES = 64 * 2 ** 20
NAME = re.compile(r"crops-(\d{5})\.npz")
METADATA = ("image", "id", "label", "box", "sampled_box", "image_size")


def name(number):
    return f"crops-{number:05d}.npz"


def crops_per_shard(size, dtype):
    """How many crops of ``size`` and ``dtype`` make about ``SHARD_BYTES`` (at least one)."""
    return max(1, SHARD_BYTES // (size[0] * size[1] * 3 * np.dtype(dtype).itemsize))


def existing(out):
    """``{shard number: path}`` of the shards in ``out`` (regular files; links are not
    shards: a shard written there replaces them)."""
    found = {}
    try:
        entries = list(os.scandir(out))
    except OSError:
        return found
    for entry in entries:
        match = NAME.fullmatch(entry.name)
        if match and stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
            found[int(match.group(1))] = out / entry.name
    return found


def read_metadata(path, setting_names):
    """The metadata arrays and the settings of a shard (not its crops); OSError or ValueError
    if it cannot be read, KeyError if it lacks one."""
    with np.load(path) as data:
        return {key: data[key] for key in (*METADATA, *setting_names)}


def keys(metadata):
    """``[(image, id, label, box)]`` of a shard's crops, to compare with the boxes it
    should hold."""
    return [(str(image), int(ident), str(label), tuple(float(v) for v in box))
            for image, ident, label, box in zip(metadata["image"], metadata["id"],
                                                metadata["label"], metadata["box"])]


def read_crops(path):
    with np.load(path) as data:
        return data["crops"]


def write(path, arrays):
    """Write a shard atomically (:mod:`.files`)."""
    files.write_atomically(path, lambda file: np.savez(file, **arrays))
