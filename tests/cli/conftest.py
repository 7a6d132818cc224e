"""Tiny image datasets for the CLI tests, made in tmp_path."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# (file name, Pillow mode, height, width)
IMAGES = [("street.png", "RGB", 30, 40), ("gray.png", "L", 24, 20), ("logo.png", "P", 16, 18)]

# COCO annotations: (id, image index, bbox [x, y, w, h], category id)
COCO_BOXES = [
    (7, 0, [2, 3, 10, 8], 1),
    (8, 0, [20.5, 10, 15.5, 18], 2),
    (9, 1, [0, 0, 20, 24], 1),
    (11, 1, [4, 6, 6, 5], 3),
    (12, 2, [1, 1, 9, 12], 2),
]
CATEGORIES = {1: "cat", 2: "traffic light", 3: "dog/puppy"}


def make_image(path, mode, height, width, seed):
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    elif mode == "L":
        Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).save(path)
    else:
        image = Image.fromarray(rng.integers(0, 8, (height, width), dtype=np.uint8), "P")
        image.putpalette(rng.integers(0, 256, 8 * 3, dtype=np.uint8).tolist())
        image.save(path)


@pytest.fixture(autouse=True)
def no_kernels_notice(monkeypatch):
    """In-process runs never print the first-run notice: whether the kernels compile (and
    take over its 2 s) depends on the test order and the cache, not on the test. The test of
    the notice sets its own delay; child processes (test_processes.py) filter the line."""
    from roiops.cli import crop
    monkeypatch.setattr(crop, "NOTICE_SECONDS", 3600.0)


@pytest.fixture
def dataset(tmp_path):
    """``images/`` with three small images, ``coco.json`` and ``boxes.csv`` naming them."""
    images = tmp_path / "images"
    images.mkdir()
    for seed, (name, mode, height, width) in enumerate(IMAGES):
        make_image(images / name, mode, height, width, seed)
    coco = {
        "images": [{"id": i + 1, "file_name": name, "width": w, "height": h}
                   for i, (name, _, h, w) in enumerate(IMAGES)],
        "annotations": [{"id": ident, "image_id": image + 1, "bbox": bbox, "category_id": cat}
                        for ident, image, bbox, cat in COCO_BOXES],
        "categories": [{"id": k, "name": v} for k, v in CATEGORIES.items()],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    (tmp_path / "boxes.csv").write_text(
        "image,x1,y1,x2,y2,label\n"
        "street.png,2,3,12,11,cat\n"
        "gray.png,4,6,10,11,dog\n"
        "street.png,0,0,40,30,\n")
    return tmp_path


def _many_boxes(folder, images, boxes_per_image):
    """``images`` random 40x40 PNGs in ``folder/images`` and ``folder/boxes.csv`` with
    ``boxes_per_image`` boxes on each: far more work than a test lets finish. Returns the
    CSV's path and the images' folder."""
    image_folder = folder / "images"
    image_folder.mkdir()
    lines = ["image,x1,y1,x2,y2"]
    rng = np.random.default_rng(0)
    for k in range(images):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(
            image_folder / f"{k}.png")
        lines += [f"{k}.png,1,1,39,39"] * boxes_per_image
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")
    return folder / "boxes.csv", image_folder


@pytest.fixture
def many_boxes(tmp_path):
    """``many_boxes(images, boxes_per_image)``: see ``_many_boxes`` (in ``tmp_path``)."""
    return lambda images, boxes_per_image: _many_boxes(tmp_path, images, boxes_per_image)


def _rgb(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _tree_hashes(*paths):
    hashes = {}
    for root in map(Path, paths):
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@pytest.fixture
def rgb():
    """``rgb(path)``: an image as the CLI decodes it, 8-bit RGB ``[H, W, 3]``."""
    return _rgb


@pytest.fixture
def tree_hashes():
    """``tree_hashes(*paths)``: SHA-256 of every file under the given files or folders."""
    return _tree_hashes
