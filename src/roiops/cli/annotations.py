"""Annotation files for ``roiops crop``: COCO JSON and CSV.

:func:`load` returns the well-formed annotations and one message per malformed item (the run
goes on without them); a file that cannot be read as either format raises
:class:`AnnotationFileError` (a usage error, exit status 2).
"""
import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2")
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


class AnnotationFileError(UsageError):
    """The annotation file is missing, unreadable, or in neither supported format."""


@dataclass(frozen=True)
class Annotation:
    """One box to crop.

    Attributes:
        image: the image's path relative to the images folder, as the file names it.
        id: the COCO annotation id, or the CSV data row number (1 = the first row after the
            header).
        label: the category name or CSV label ("" when there is none).
        box: ``(x1, y1, x2, y2)`` in pixels (edge coordinates) or normalized.
        where: where it came from, for messages (``"annotations.csv row 3"``).
    """

    image: str
    id: int
    label: str
    box: tuple
    where: str


def load(path):
    """``(annotations, problems)`` from a COCO JSON or CSV file.

    The format is COCO when the file name ends in ``.json`` or its first non-blank character is
    ``{``, CSV otherwise.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationFileError(f"cannot read annotation file {path}: {_reason(error)}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _load_coco(path, text)
    try:
        return _load_csv(path, text)
    except csv.Error as error:  # e.g. a field longer than the csv module's limit
        raise AnnotationFileError(f"{path}: cannot read it as CSV: {error}") from None


def _reason(error):
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _load_coco(path, text):
    try:
        data = json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer of over 4300 digits
        raise AnnotationFileError(f"{path}: not valid JSON: {error}") from None
    except RecursionError:
        raise AnnotationFileError(f"{path}: JSON nested too deeply to read (a COCO file nests "
                                  "a few levels)") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):
        raise AnnotationFileError(
            f"{path}: not a COCO file (expected an object with 'images' and 'annotations' lists)")
    problems = []
    images = {}
    for number, image in enumerate(data["images"]):
        if isinstance(image, dict) and "id" in image and isinstance(image.get("file_name"), str):
            images[_key(image["id"])] = image["file_name"]
        else:
            problems.append(f"{path}: images[{number}]: needs an 'id' and a 'file_name'")
    categories = {}
    for category in data.get("categories") or []:
        if isinstance(category, dict) and "id" in category:
            categories[_key(category["id"])] = str(category.get("name", category["id"]))
    annotations = []
    for number, item in enumerate(data["annotations"]):
        if not isinstance(item, dict):
            problems.append(f"{path}: annotations[{number}]: not an object")
            continue
        ident = item.get("id", number)
        where = f"{path} annotation {ident}"
        try:
            annotations.append(_coco_annotation(item, ident, where, images, categories))
        except ValueError as error:
            problems.append(f"{where}: {error}")
    return annotations, problems


def _coco_annotation(item, ident, where, images, categories):
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise ValueError(f"id must be an integer, got {ident!r}")
    if not INT64_MIN <= ident <= INT64_MAX:  # crops.npz stores ids as int64
        raise ValueError(f"id must be between -2**63 and 2**63 - 1, got {ident}")
    if _key(item.get("image_id")) not in images:
        raise ValueError(f"image_id {item.get('image_id')!r} names no image in 'images'")
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError(f"bbox must be [x, y, w, h], got {bbox!r}")
    x, y, w, h = (_number("bbox", v) for v in bbox)
    if not math.isfinite(x + w) or not math.isfinite(y + h):
        raise ValueError(f"bbox x + w or y + h is not finite: {bbox!r}")
    label = ""
    if "category_id" in item:
        category = _key(item["category_id"])
        if category not in categories:
            raise ValueError(f"category_id {item['category_id']!r} is not in 'categories'")
        label = categories[category]
    return Annotation(images[_key(item["image_id"])], ident, label, (x, y, x + w, y + h), where)


def _key(value):
    """Ids as dictionary keys: ``3`` and ``"3"`` are the same id."""
    return str(value)


def _load_csv(path, text):
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    columns = [name.strip().lower() for name in header or []]
    if not all(name in columns for name in CSV_COLUMNS):
        raise AnnotationFileError(
            f"{path}: not a COCO JSON file, and a CSV needs a header with the columns "
            f"{','.join(CSV_COLUMNS)}[,label]; got {','.join(header or []) or 'an empty file'}")
    index = {name: columns.index(name) for name in (*CSV_COLUMNS, "label") if name in columns}
    annotations, problems = [], []
    for row_number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} row {row_number} (line {row_number + 1})"
        try:
            annotations.append(_csv_annotation(row, row_number, index, where))
        except ValueError as error:
            problems.append(f"{where}: {error}")
    return annotations, problems


def _csv_annotation(row, row_number, index, where):
    needed = max(index.values()) + 1 if "label" in index else max(
        index[name] for name in CSV_COLUMNS) + 1
    if len(row) < needed:
        raise ValueError(f"expected {needed} fields, got {len(row)}")
    image = row[index["image"]].strip()
    if not image:
        raise ValueError("empty image name")
    box = tuple(_number(name, row[index[name]]) for name in CSV_COLUMNS[1:])
    label = row[index["label"]].strip() if "label" in index else ""
    return Annotation(image, row_number, label, box, where)


def _number(name, value):
    """A finite float from a JSON number or a CSV cell; ValueError naming the field."""
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number: {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    except OverflowError:  # an integer beyond float range, e.g. 10**400 in JSON
        raise ValueError(f"{name} is not finite: {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} is not finite: {value!r}")
    return number


def sanitize(text, limit=64):
    """``text`` as a safe file-name part: letters, digits, ``.``, ``-``; runs of anything else
    become ``_``; at most ``limit`` characters."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._")
    return cleaned[:limit]
