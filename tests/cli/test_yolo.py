"""YOLO label folders: boxes in fractions of the image size, class names, images by stem."""
import json
import sys
import types

import numpy as np
import pytest

from roiops.cli import yolo
from roiops.cli.main import main


@pytest.fixture
def labels(dataset):
    """labels/street.txt and labels/sub/gray.txt for images/street.png (40x30) and
    images/sub/gray.png (20x24)."""
    sub = dataset / "images" / "sub"
    sub.mkdir()
    (dataset / "images" / "gray.png").rename(sub / "gray.png")
    folder = dataset / "labels"
    (folder / "sub").mkdir(parents=True)
    (folder / "street.txt").write_text(
        "0 0.25 0.5 0.25 0.4\n"               # line 1: pixels x 5..15, y 9..21
        "\n"
        "1 0.5 0.5 0.5 0.5 0.87\n"            # line 3: with a confidence
        "2 0.1 0.1 0.3 0.1 0.3 0.4\n"         # line 4: a polygon: x 0.1..0.3, y 0.1..0.4
        "7 0.5 0.5 0.1 0.1\n"                 # line 5: no class 7
        "0 0.5 0.5 0.1\n")                    # line 6: four fields
    (folder / "sub" / "gray.txt").write_text("1 0.5 0.5 1 1\n")
    (folder / "missing.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    (folder / "classes.txt").write_text("person\ncar\ntraffic light\n")
    return folder


def run(dataset, folder, *flags):
    return main(["crop", str(folder), "--images", str(dataset / "images"), "--out",
                 str(dataset / "out"), "--workers", "1", "--size", "12x10", "--format", "npz",
                 *flags])


def test_yolo_boxes_are_fractions_of_the_image(dataset, labels, rgb, capsys):
    assert run(dataset, labels) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 3, captured.err
    assert "missing.txt: no image missing.* in --images (2 boxes not cropped)" in lines[0]
    assert "street.txt line 5: class 7 is not in the class names (0 to 2)" in lines[1]
    assert "street.txt line 6: expected 'class x_center y_center width height'" in lines[2]
    assert "4 written, 0 skipped, 4 failed" in captured.out
    image = rgb(dataset / "images" / "street.png")
    with np.load(dataset / "out" / "crops-00000.npz") as shard:
        assert shard["image"].tolist() == ["street.png"] * 3 + ["sub/gray.png"]
        assert shard["id"].tolist() == [1, 3, 4, 1]
        assert shard["label"].tolist() == ["person", "car", "traffic light", "car"]
        np.testing.assert_allclose(shard["box"][2], [0.1, 0.1, 0.3, 0.4])
        # A box of 10 x 12 pixels cropped to 12x10 gives exactly its pixels.
        np.testing.assert_array_equal(shard["crops"][0], image[9:21, 5:15])


def test_without_class_names_labels_are_class_numbers(dataset, labels):
    (labels / "classes.txt").unlink()
    (labels / "street.txt").write_text("0 0.25 0.5 0.25 0.4\n7 0.5 0.5 0.1 0.1\n")
    assert run(dataset, labels) == 1  # missing.txt still has no image
    with np.load(dataset / "out" / "crops-00000.npz") as shard:
        assert shard["label"].tolist() == ["0", "7", "1"]


def yaml_stand_in(text):
    """JSON read as YAML reads it: keys that are numbers are integers."""
    return json.loads(text, object_pairs_hook=lambda pairs: {
        int(key) if key.isdigit() else key: value for key, value in pairs})


def test_names_from_a_data_yaml(dataset, labels, monkeypatch):
    """Ultralytics' data.yaml, names as a mapping whose keys are numbers (without PyYAML
    installed a stand-in reads the same mapping written as JSON, whose keys are strings)."""
    try:
        import yaml  # noqa: F401
        text = "path: .\nnames:\n  0: a\n  1: b\n  2: c\n"
    except ImportError:
        monkeypatch.setitem(sys.modules, "yaml", types.SimpleNamespace(
            safe_load=yaml_stand_in, YAMLError=ValueError))
        text = json.dumps({"path": ".", "names": {0: "a", 1: "b", 2: "c"}})
    data = dataset / "data.yaml"
    data.write_text(text)
    assert yolo.class_names(data) == ["a", "b", "c"]
    assert run(dataset, labels, "--names", str(data)) == 1
    with np.load(dataset / "out" / "crops-00000.npz") as shard:
        assert shard["label"].tolist() == ["a", "b", "c", "b"]


def test_a_data_yaml_without_pyyaml_is_a_usage_error(dataset, labels, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "yaml", None)
    (dataset / "data.yaml").write_text("names: [a, b]\n")
    assert run(dataset, labels, "--names", str(dataset / "data.yaml")) == 2
    assert "needs PyYAML" in capsys.readouterr().err


def test_min_size_reads_the_image_size_for_fractions(dataset, labels, capsys):
    """--min-size 12: street.png's 10x12-pixel box and its 8-pixel-wide polygon are left
    out, the 20x15 box is kept; boxes of images that cannot be read are kept (and fail)."""
    assert run(dataset, labels, "--min-size", "12") == 1
    out = capsys.readouterr().out
    assert "2 written, 0 skipped, 4 failed, 2 filtered out" in out
    with np.load(dataset / "out" / "crops-00000.npz") as shard:
        assert shard["id"].tolist() == [3, 1]
