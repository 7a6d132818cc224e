"""Pascal VOC XML annotations for ``roiops crop``: one ``.xml`` per image.

Each file names its image (``<filename>``, relative to --images), optionally its ``<size>``
(``<width>``, ``<height>``: checked against the decoded image), and its ``<object>`` elements
(``<name>``, ``<bndbox>`` with ``<xmin>``, ``<ymin>``, ``<xmax>``, ``<ymax>``). VOC numbers
pixels from 1 and includes both ends, so ``xmin..xmax`` covers the edge-coordinate box
``x1 = xmin - 1``, ``x2 = xmax`` (as the VOC devkit and Detectron2 read it).
"""
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from .annotations import Annotation, Problem, image_size, number, reason


def load(path):
    """``(annotations, problems)`` from one VOC file or every ``.xml`` under a folder."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.xml"))
    annotations, problems = [], []
    for file in files:
        file_annotations, file_problems = _load_file(file)
        annotations += file_annotations
        problems += file_problems
    return annotations, problems


def _load_file(file):
    try:
        root = ElementTree.parse(file).getroot()
    except OSError as error:
        return [], [Problem(f"{file}: cannot read it: {reason(error)}")]
    except ElementTree.ParseError as error:
        return [], [Problem(f"{file}: not valid XML: {error}")]
    if root.tag != "annotation":
        return [], [Problem(f"{file}: not a Pascal VOC file (its root element is <{root.tag}>, "
                            "expected <annotation>)")]
    image = (root.findtext("filename") or "").strip()
    if not image:
        return [], [Problem(f"{file}: no <filename> naming the image")]
    problems, size = [], None
    element = root.find("size")
    if element is not None:
        try:
            size = image_size(element.findtext("width"), element.findtext("height"))
        except ValueError as error:
            problems.append(Problem(f"{file}: <size>: {error} (its boxes are cropped without "
                                    "checking the image size)"))
    annotations = []
    for ident, element in enumerate(root.findall("object"), start=1):
        where = f"{file} object {ident}"
        try:
            box = _box(element)
        except ValueError as error:
            problems.append(Problem(f"{where}: {error}"))
            continue
        label = (element.findtext("name") or "").strip()
        annotations.append(Annotation(image, ident, label, box, where, image_size=size))
    return annotations, problems


def _box(element):
    """The edge-coordinate box of an ``<object>``'s ``<bndbox>``."""
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise ValueError("no <bndbox>")
    values = {}
    for name in ("xmin", "ymin", "xmax", "ymax"):
        text = bndbox.findtext(name)
        if text is None:
            raise ValueError(f"<bndbox> has no <{name}>")
        values[name] = number(name, text)
    return (values["xmin"] - 1, values["ymin"] - 1, values["xmax"], values["ymax"])
