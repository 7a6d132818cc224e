"""YOLO label folders for ``roiops crop``: one ``.txt`` per image, a box per line.

A line is ``class x_center y_center width height`` as fractions of the image width and height
(Ultralytics, Darknet); a sixth field (a detector's confidence) is ignored, and a longer line
is a segmentation polygon ``class x1 y1 x2 y2 ...`` cropped by its bounding box. The label file
``sub/a.txt`` belongs to the image ``sub/a.<ext>`` under --images (any extension Pillow
reads). Class names come from ``--names`` (a ``classes.txt`` with one name per line, or an
Ultralytics ``data.yaml``), else from ``classes.txt`` in the labels folder; without names the
label is the class number.
"""
import os
import posixpath
from pathlib import Path

from PIL import Image

from .annotations import Annotation, AnnotationFileError, Problem, number, reason
from .sources import RemoteFolder

NAMES_FILE = "classes.txt"


def load(folder, images, names_path=None):
    """``(annotations, problems)`` from the label files under ``folder``."""
    folder = Path(folder)
    default_names = folder / NAMES_FILE
    if names_path is None and default_names.is_file():
        names_path = default_names
    names = class_names(Path(names_path)) if names_path is not None else None
    image_files = _image_files(images) if images is not None and images.is_dir() else {}
    annotations, problems = [], []
    for label_file in sorted(folder.rglob("*.txt")):
        if names_path is not None and label_file == Path(names_path):
            continue
        stem = label_file.relative_to(folder).with_suffix("").as_posix()
        boxes, line_problems = _read_label_file(label_file, names)
        problems += line_problems
        found = image_files.get(stem, [])
        if len(found) == 1:
            annotations += [Annotation(found[0], line, label, box, where, "relative")
                            for line, label, box, where in boxes]
        elif boxes:
            what = (f"several images {', '.join(sorted(found))}" if found else
                    f"no image {stem}.* in --images")
            problems.append(Problem(f"{label_file}: {what} ({len(boxes)} "
                                    f"box{'es' * (len(boxes) != 1)} not cropped)", len(boxes)))
    return annotations, problems


def class_names(path):
    """The class names of a ``classes.txt`` (one per line) or a ``data.yaml`` (``names``)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_names(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationFileError(f"--names {path}: cannot read it: {reason(error)}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def _yaml_names(path):
    try:
        import yaml
    except ImportError:
        raise AnnotationFileError(f"--names {path}: reading a YAML file needs PyYAML (pip "
                                  "install pyyaml), or give a classes.txt with one name per "
                                  "line") from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise AnnotationFileError(f"--names {path}: cannot read it: {error}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and all(isinstance(key, int) for key in names):
        return [str(names.get(k, k)) for k in range(max(names, default=-1) + 1)]
    if isinstance(names, list):
        return [str(name) for name in names]
    raise AnnotationFileError(f"--names {path}: expected 'names:' with a list of class names "
                              "or a mapping from class number to name")


def _image_files(images):
    """``{relative path without extension: [relative image paths]}`` of the images under
    ``images`` (a folder, or a URI's :class:`.sources.RemoteFolder`; files whose extension
    Pillow reads)."""
    extensions = {extension.lower() for extension in Image.registered_extensions()}
    found = {}
    for relative in _relative_files(images):
        stem, extension = posixpath.splitext(relative)
        if extension.lower() in extensions:
            found.setdefault(stem, []).append(relative)
    return found


def _relative_files(images):
    if isinstance(images, RemoteFolder):
        return images.relative_files()
    return [Path(root, name).relative_to(images).as_posix()
            for root, _, files in os.walk(images) for name in files]


def _read_label_file(path, names):
    """``([(line, label, box, where)], problems)`` of one label file."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        return [], [Problem(f"{path}: cannot read it: {reason(error)}")]
    boxes, problems = [], []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {line_number}"
        try:
            label, box = _parse_line(fields, names)
        except ValueError as error:
            problems.append(Problem(f"{where}: {error}"))
            continue
        boxes.append((line_number, label, box, where))
    return boxes, problems


def _parse_line(fields, names):
    """``(label, (x1, y1, x2, y2))`` in fractions of the image size."""
    count = len(fields)
    if count not in (5, 6) and (count < 7 or count % 2 == 0):
        raise ValueError(f"expected 'class x_center y_center width height' (5 fields, or 6 "
                         f"with a confidence) or a polygon 'class x1 y1 x2 y2 ...', got "
                         f"{count} fields")
    value = number("class", fields[0])
    if not value.is_integer() or value < 0:
        raise ValueError(f"class must be a class number (0, 1, ...), got {fields[0]!r}")
    if names is not None and value >= len(names):
        raise ValueError(f"class {int(value)} is not in the class names (0 to {len(names) - 1})")
    label = names[int(value)] if names is not None else str(int(value))
    if count in (5, 6):
        x, y, w, h = (number(name, text) for name, text in
                      zip(("x_center", "y_center", "width", "height"), fields[1:5]))
        return label, (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    points = [number("polygon coordinate", text) for text in fields[1:]]
    xs, ys = points[0::2], points[1::2]
    return label, (min(xs), min(ys), max(xs), max(ys))
