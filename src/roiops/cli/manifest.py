"""``manifest.csv``: where each crop of ``roiops crop`` is and what it was cut from.

One row per crop in --out (written by this run or an earlier one), in annotation order:

``crop``          the crop's file, relative to --out (an npz shard for --format npz)
``index``         its row in the shard (npz), empty for image files
``image``, ``id``, ``label``  the annotation's image path, id and label (unsanitized)
``x1``..``y2``    the annotation's box, in its own units
``image_width``, ``image_height``  the image as decoded (after its EXIF orientation)
``sampled_y1``..``sampled_x2``  the box given to crop_and_resize (normalized)

The image size and sampled box are empty for a crop of an earlier run whose image cannot be
read any more.
"""
import csv
import io
from dataclasses import dataclass

import numpy as np

from . import files

NAME = "manifest.csv"
COLUMNS = ("crop", "index", "image", "id", "label", "x1", "y1", "x2", "y2", "image_width",
           "image_height", "sampled_y1", "sampled_x1", "sampled_y2", "sampled_x2")


@dataclass
class Row:
    crop: str
    index: object         # int, or None for image files
    annotation: object
    image_size: tuple     # (height, width), or None when unknown
    sampled_box: object   # float32 [y1, x1, y2, x2], or None when unknown


def write(path, rows):
    """Write the manifest atomically (:mod:`.files`), UTF-8; a manifest already there with
    the same bytes is left as it is (a resume that does nothing writes nothing)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_fields(row) for row in rows)
    data = text.getvalue().encode("utf-8")
    if files.is_written(path) and _read(path) == data:
        return
    files.write_atomically(path, lambda file: file.write(data))


def _read(path):
    try:
        return path.read_bytes()
    except OSError:
        return None


def _fields(row):
    annotation = row.annotation
    size = ("", "") if row.image_size is None else (row.image_size[1], row.image_size[0])
    sampled = (("",) * 4 if row.sampled_box is None else
               tuple(str(np.float32(v)) for v in row.sampled_box))
    return (row.crop, "" if row.index is None else row.index, annotation.image, annotation.id,
            annotation.label, *(_number(v) for v in annotation.box), *size, *sampled)


def _number(value):
    """A box coordinate as written: an integer without ``.0``, else the shortest repr."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)
