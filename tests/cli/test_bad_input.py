"""Bad input: one line per bad item, the run goes on, exit 1; usage errors exit 2."""
import json

import numpy as np
import pytest
from PIL import Image

from roiops.cli.main import main


def run(dataset, annotations, *flags):
    return main(["crop", str(annotations), "--images", str(dataset / "images"), "--out",
                 str(dataset / "out"), "--workers", "1", "--size", "6", *flags])


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("error: ")]


def test_bad_csv_items_each_get_one_line_and_the_rest_is_cropped(dataset, capsys, tree_hashes):
    (dataset / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (dataset / "images" / "truncated.png").write_bytes(
        (dataset / "images" / "street.png").read_bytes()[:200])
    annotations = dataset / "bad.csv"
    annotations.write_text(
        "image,x1,y1,x2,y2,label\n"
        "street.png,2,3,12,11,ok\n"            # row 1: fine
        "missing.png,0,0,5,5,a\n"              # row 2: no such image
        "corrupt.png,0,0,5,5,b\n"              # row 3: not an image
        "truncated.png,0,0,5,5,c\n"            # row 4: cut-off file
        "street.png,1,two,5,5,d\n"             # row 5: not a number
        "street.png,1,2,5\n"                   # row 6: too few fields
        "street.png,50,50,60,60,far\n"         # row 7: outside the 40x30 image
        "street.png,5,5,5,9,empty\n"           # row 8: zero width
        "street.png,1,1,nan,4,e\n"             # row 9: not finite
        "gray.png,-3,-3,4,4,edge\n")           # row 10: partly outside: fine (extrapolated)
    before = tree_hashes(dataset / "images", annotations)
    assert run(dataset, annotations) == 1
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 8, captured.err
    expected = [
        ("bad.csv row 5 (line 6)", "not a number"),
        ("bad.csv row 6 (line 7)", "expected 6 fields"),
        ("bad.csv row 9 (line 10)", "not finite"),
        # then image by image, in the order the images first appear
        ("bad.csv row 7 (line 8)", "outside the 40x30 image"),
        ("bad.csv row 8 (line 9)", "empty box"),
        ("missing.png", "no such file"),
        ("corrupt.png", "not an image"),
        ("truncated.png", "cannot decode"),
    ]
    for line, (where, problem) in zip(lines, expected):
        assert where in line and problem in line, line
    assert "2 written, 0 skipped, 8 failed" in captured.out
    assert sorted(p.name for p in (dataset / "out").iterdir()) == ["gray_10_edge.png",
                                                                   "street_1_ok.png"]
    assert tree_hashes(dataset / "images", annotations) == before


def test_bad_coco_items(dataset, capsys):
    data = json.loads((dataset / "coco.json").read_text())
    data["images"].append({"id": 99})
    data["annotations"] += [
        {"id": 20, "image_id": 42, "bbox": [0, 0, 4, 4], "category_id": 1},
        {"id": 21, "image_id": 1, "bbox": [0, 0, 4], "category_id": 1},
        {"id": 22, "image_id": 1, "bbox": [0, 0, 4, 4], "category_id": 77},
        {"id": 23, "image_id": 1, "bbox": [0, 0, "x", 4], "category_id": 1},
        "not an object",
    ]
    (dataset / "bad.json").write_text(json.dumps(data))
    assert run(dataset, dataset / "bad.json") == 1
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 6, captured.err
    for line, words in zip(lines, [("images[3]", "file_name"),
                                   ("annotation 20", "image_id 42"),
                                   ("annotation 21", "bbox must be"),
                                   ("annotation 22", "category_id 77"),
                                   ("annotation 23", "not a number"),
                                   ("annotations[9]", "not an object")]):
        assert all(word in line for word in words), line
    assert "5 written, 0 skipped, 6 failed" in captured.out


@pytest.mark.parametrize("content, message", [
    (None, "cannot read annotation file"),
    ("{not json", "not valid JSON"),
    ('{"images": []}', "not a COCO file"),
    ("file,left,top\na.png,1,2\n", "needs a header"),
    ("", "needs a header"),
])
def test_unreadable_annotation_file_is_a_usage_error(dataset, capsys, content, message):
    annotations = dataset / ("ann.json" if content and content.startswith("{") else "ann.csv")
    if content is not None:
        annotations.write_text(content)
    assert run(dataset, annotations) == 2
    err = capsys.readouterr().err
    assert err.startswith("roiops crop: error:") and message in err
    assert not (dataset / "out").exists() or not any((dataset / "out").iterdir())


@pytest.mark.parametrize("flags", [
    ["--size", "0"], ["--size", "3x"], ["--method", "bicubic"], ["--margin", "-1"],
    ["--workers", "0"], ["--format", "gif"], ["--extrapolation-value", "nan"], ["--bogus"],
])
def test_bad_flags_exit_2(dataset, capsys, flags):
    assert run(dataset, dataset / "coco.json", *flags) == 2
    assert "usage: roiops" in capsys.readouterr().err


def test_missing_required_flags_and_command_exit_2(dataset, capsys):
    assert main(["crop", str(dataset / "coco.json")]) == 2
    assert main([]) == 2
    assert main(["frobnicate"]) == 2


def test_contact_sheet_over_an_input_or_among_the_images_is_refused(dataset, capsys,
                                                                    tree_hashes):
    before = tree_hashes(dataset / "images", dataset / "coco.json")
    assert run(dataset, dataset / "coco.json", "--contact-sheet", str(dataset / "coco.json")) == 2
    assert "would overwrite an input file" in capsys.readouterr().err
    for sheet in (dataset / "images" / "street.png", dataset / "images" / "new" / "sheet.png"):
        assert run(dataset, dataset / "coco.json", "--contact-sheet", str(sheet)) == 2
        assert "is inside --images" in capsys.readouterr().err
    assert tree_hashes(dataset / "images", dataset / "coco.json") == before
    assert not (dataset / "out").exists()


def test_sixteen_bit_images_are_refused_not_clipped(dataset, capsys):
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(dataset / "images" / "deep.png")
    (dataset / "deep.csv").write_text("image,x1,y1,x2,y2\ndeep.png,0,0,4,4\n")
    assert run(dataset, dataset / "deep.csv") == 1
    assert "more than 8 bits per channel" in capsys.readouterr().err
