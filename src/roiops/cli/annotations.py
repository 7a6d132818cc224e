"""Annotation files for ``roiops crop``: COCO JSON, CSV, YOLO txt folders, Pascal VOC XML.

:func:`load` returns the well-formed annotations and one :class:`Problem` per malformed item
(the run goes on without them); a file that cannot be read in the format it is taken for
raises :class:`AnnotationFileError` (a usage error, exit status 2). YOLO and VOC live in
:mod:`.yolo` and :mod:`.voc`.
"""
import csv
import json
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2")
CSV_OPTIONAL_COLUMNS = ("label", "width", "height")
# The columns of the CSV that TensorFlow's object detection tutorials (and labelImg's
# xml_to_csv) write, and the --columns mapping that reads them.
COMMON_CSV_MAPPING = {"image": "filename", "x1": "xmin", "y1": "ymin", "x2": "xmax",
                      "y2": "ymax", "label": "class"}
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
LABEL_LIMIT = 64


class AnnotationFileError(UsageError):
    """The annotation file is missing, unreadable, or in no supported format."""


@dataclass(frozen=True)
class Annotation:
    """One box to crop.

    Attributes:
        image: the image's path relative to the images folder, as the file names it.
        id: the COCO annotation id, the CSV data row number (1 = the first row after the
            header), the line of a YOLO label file or the object of a VOC file (from 1).
        label: the category name, CSV label or class name ("" when there is none).
        box: ``(x1, y1, x2, y2)`` in ``units``.
        where: where it came from, for messages (``"annotations.csv row 3"``).
        units: ``"pixels"`` (edge coordinates), ``"normalized"`` (crop_and_resize's
            coordinates) or ``"relative"`` (fractions of the image width and height, YOLO).
        image_size: ``(width, height)`` of the image as the annotation file gives it, or None.
    """

    image: str
    id: int
    label: str
    box: tuple
    where: str
    units: str = "pixels"
    image_size: tuple = None


@dataclass(frozen=True)
class Problem:
    """A malformed item: its message, and how many boxes it stands for (counted as failed)."""

    message: str
    boxes: int = 1


@dataclass(frozen=True)
class Reading:
    """How to read ANNOTATIONS (the flags that apply to some formats only)."""

    columns: dict = field(default_factory=dict)  # CSV: our column name -> the file's column
    normalized: bool = False                     # CSV: boxes in crop_and_resize's coordinates
    names: Path = None                           # YOLO: class names file
    images: Path = None                          # YOLO: where to look for each label's image


def detect_format(path):
    """``"coco"``, ``"csv"``, ``"yolo"`` or ``"voc"`` for the annotation file or folder."""
    path = Path(path)
    if path.is_dir():
        return "voc" if any(path.rglob("*.xml")) else "yolo"
    suffix = path.suffix.lower()
    if suffix in (".json", ".xml"):
        return {".json": "coco", ".xml": "voc"}[suffix]
    start = _read_text(path)[:4096].lstrip()
    return "coco" if start.startswith("{") else "voc" if start.startswith("<") else "csv"


def load(path, reading=Reading()):
    """``(annotations, problems)`` from ANNOTATIONS at ``path``: a COCO JSON file (name ending
    in ``.json`` or first character ``{``), a Pascal VOC XML file or folder of them, a folder of
    YOLO label files, or else a CSV."""
    from . import voc, yolo

    path = Path(path)
    kind = detect_format(path) if path.exists() else "csv"
    _check_reading(kind, reading)
    if kind == "yolo":
        return yolo.load(path, reading.images, reading.names)
    if kind == "voc":
        return voc.load(path)
    text = _read_text(path)
    if kind == "coco":
        return _load_coco(path, text)
    try:
        return _load_csv(path, text, reading)
    except csv.Error as error:  # e.g. a field longer than the csv module's limit
        raise AnnotationFileError(f"{path}: cannot read it as CSV: {error}") from None


def _check_reading(kind, reading):
    """Flags given for another format than the file's are usage errors, not ignored."""
    for flag, given, applies in (("--columns", reading.columns, "csv"),
                                 ("--normalized", reading.normalized, "csv"),
                                 ("--names", reading.names, "yolo")):
        if given and kind != applies:
            raise AnnotationFileError(f"{flag} applies to {applies.upper()} annotations; "
                                      f"ANNOTATIONS is read as {kind.upper()}")


def _read_text(path):
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationFileError(f"cannot read annotation file {path}: {reason(error)}") from None


def reason(error):
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
            size = None
            try:
                size = image_size(image.get("width"), image.get("height"))
            except ValueError as error:
                problems.append(Problem(f"{path}: images[{number}]: {error} (its boxes are "
                                        "cropped without checking the image size)"))
            images[_key(image["id"])] = (image["file_name"], size)
        else:
            problems.append(Problem(f"{path}: images[{number}]: needs an 'id' and a 'file_name'"))
    categories = {}
    for category in data.get("categories") or []:
        if isinstance(category, dict) and "id" in category:
            categories[_key(category["id"])] = str(category.get("name", category["id"]))
    annotations = []
    for number, item in enumerate(data["annotations"]):
        if not isinstance(item, dict):
            problems.append(Problem(f"{path}: annotations[{number}]: not an object"))
            continue
        ident = item.get("id", number)
        where = f"{path} annotation {ident}"
        try:
            annotations.append(_coco_annotation(item, ident, where, images, categories))
        except ValueError as error:
            problems.append(Problem(f"{where}: {error}"))
    return annotations, problems


def _coco_annotation(item, ident, where, images, categories):
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise ValueError(f"id must be an integer, got {ident!r}")
    check_id(ident)
    if _key(item.get("image_id")) not in images:
        raise ValueError(f"image_id {item.get('image_id')!r} names no image in 'images'")
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError(f"bbox must be [x, y, w, h], got {bbox!r}")
    x, y, w, h = (number("bbox", v) for v in bbox)
    if not math.isfinite(x + w) or not math.isfinite(y + h):
        raise ValueError(f"bbox x + w or y + h is not finite: {bbox!r}")
    label = ""
    if "category_id" in item:
        category = _key(item["category_id"])
        if category not in categories:
            raise ValueError(f"category_id {item['category_id']!r} is not in 'categories'")
        label = categories[category]
    file_name, size = images[_key(item["image_id"])]
    return Annotation(file_name, ident, label, (x, y, x + w, y + h), where, image_size=size)


def check_id(ident):
    """ValueError unless ``ident`` fits the int64 the crops' ids are stored in."""
    if not INT64_MIN <= ident <= INT64_MAX:
        raise ValueError(f"id must be between -2**63 and 2**63 - 1, got {ident}")


def _key(value):
    """Ids as dictionary keys: ``3`` and ``"3"`` are the same id."""
    return str(value)


def image_size(width, height):
    """``(width, height)`` from an annotation's image size (JSON numbers or text), None when
    it gives none; ValueError when they are not positive integers."""
    if (width is None or width == "") and (height is None or height == ""):
        return None
    try:
        return tuple(_positive_integer(value) for value in (width, height))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"width and height must be positive integers, got {width!r} and "
                         f"{height!r}") from None


def _positive_integer(value):
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    number = float(value.strip() if isinstance(value, str) else value)
    if not number.is_integer() or number < 1:
        raise ValueError(value)
    return int(number)


def _load_csv(path, text, reading):
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    columns = [name.strip().lower() for name in header or []]
    index = _csv_index(path, header, columns, reading.columns)
    units = "normalized" if reading.normalized else "pixels"
    annotations, problems = [], []
    for row_number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} row {row_number} (line {row_number + 1})"
        try:
            annotations.append(_csv_annotation(row, row_number, index, where, units))
        except ValueError as error:
            problems.append(Problem(f"{where}: {error}"))
    return annotations, problems


def _csv_index(path, header, columns, mapping):
    """``{our column: position}`` from the header, our names mapped by ``--columns``."""
    names = {ours: mapping.get(ours, ours).strip().lower()
             for ours in (*CSV_COLUMNS, *CSV_OPTIONAL_COLUMNS)}
    missing = [ours for ours in CSV_COLUMNS if names[ours] not in columns]
    mapped_missing = [f"{ours}={mapping[ours]}" for ours in mapping if names[ours] not in columns]
    if mapped_missing:
        raise AnnotationFileError(f"{path}: --columns {','.join(mapped_missing)}: no such column "
                                  f"in the header {','.join(header or [])}")
    if missing:
        common = set(COMMON_CSV_MAPPING.values()) <= set(columns)
        hint = (" (for these columns pass --columns "
                + ",".join(f"{k}={v}" for k, v in COMMON_CSV_MAPPING.items()) + ")"
                if common else " (or name yours with --columns, e.g. --columns image=filename)")
        raise AnnotationFileError(
            f"{path}: not a COCO JSON file, and a CSV needs a header with the columns "
            f"{','.join(CSV_COLUMNS)}[,label,width,height]; got "
            f"{','.join(header or []) or 'an empty file'}{hint}")
    return {ours: columns.index(name) for ours, name in names.items() if name in columns}


def _csv_annotation(row, row_number, index, where, units):
    needed = max(index.values()) + 1
    if len(row) < needed:
        raise ValueError(f"expected {needed} fields, got {len(row)}")
    image = row[index["image"]].strip()
    if not image:
        raise ValueError("empty image name")
    box = tuple(number(name, row[index[name]]) for name in CSV_COLUMNS[1:])
    label = row[index["label"]].strip() if "label" in index else ""
    size = image_size(*(row[index[name]] if name in index else None
                        for name in ("width", "height")))
    return Annotation(image, row_number, label, box, where, units, size)


def number(name, value):
    """A finite float from a JSON number or a text field; ValueError naming the field."""
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number: {value!r}")
    try:
        result = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    except OverflowError:  # an integer beyond float range, e.g. 10**400 in JSON
        raise ValueError(f"{name} is not finite: {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} is not finite: {value!r}")
    return result


def sanitize(text, limit=LABEL_LIMIT):
    """``text`` as a safe file-name part: letters, marks and digits of any script (NFC), ``.``
    and ``-``; every run of anything else (separators, spaces, punctuation, ``_``) becomes one
    ``_``; leading and trailing ``.`` and ``_`` dropped; at most ``limit`` characters."""
    kept = []
    for character in unicodedata.normalize("NFC", text):
        if unicodedata.category(character)[0] in "LMN" or character in ".-":
            kept.append(character)
        elif not kept or kept[-1] != "_":
            kept.append("_")
    return "".join(kept).strip("._")[:limit]
