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
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == ["gray_10_edge.png",
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
    ('{"images": ' + "[" * 200_000, "nested too deeply"),  # was a RecursionError traceback
    ('{"images": [], "annotations": [' + "9" * 5000 + "]}", "not valid JSON"),  # int digits
    ("image,x1,y1,x2,y2\n" + "a" * 200_000 + ".png,0,0,4,4\n", "cannot read it as CSV"),
])
def test_unreadable_annotation_file_is_a_usage_error(dataset, capsys, content, message):
    annotations = dataset / ("ann.json" if content and content.startswith("{") else "ann.csv")
    if content is not None:
        annotations.write_text(content)
    assert run(dataset, annotations) == 2
    err = capsys.readouterr().err
    assert err.startswith("roiops crop: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not (dataset / "out").exists() or not any((dataset / "out").iterdir())


@pytest.mark.parametrize("flags", [
    ["--size", "0"], ["--size", "3x"], ["--method", "bicubic"], ["--margin", "-1"],
    ["--workers", "0"], ["--format", "gif"], ["--extrapolation-value", "nan"], ["--bogus"],
    ["--extrapolation-value", "1e39"],  # finite, but inf in float32: was a library traceback
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


def test_image_paths_leaving_images_are_refused_per_image(dataset, capsys, tree_hashes):
    """``..``, an absolute path and a link to a file elsewhere: one line per image, the run
    goes on; --allow-outside-images reads them."""
    secret = dataset / "secret.png"
    secret.write_bytes((dataset / "images" / "street.png").read_bytes())
    (dataset / "images" / "link.png").symlink_to(secret)
    annotations = dataset / "paths.csv"
    annotations.write_text(
        "image,x1,y1,x2,y2,label\n"
        "../secret.png,0,0,4,4,a\n"
        f"{secret},0,0,4,4,b\n"
        "link.png,0,0,4,4,c\n"
        "street.png,0,0,4,4,d\n"
        "../images/gray.png,0,0,4,4,e\n"   # leaves and comes back: inside
        "../secret.png,1,1,5,5,f\n")
    before = tree_hashes(dataset / "images", secret)
    assert run(dataset, annotations) == 1
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 3, captured.err
    for line, (name, boxes) in zip(lines, [("../secret.png", 2), (str(secret), 1),
                                           ("link.png", 1)]):
        assert name in line and "outside --images" in line, line
        assert f"({boxes} box{'es' * (boxes > 1)} not cropped)" in line, line
    assert "2 written, 0 skipped, 4 failed" in captured.out
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == ["gray_5_e.png",
                                                                   "street_4_d.png"]
    assert run(dataset, annotations, "--allow-outside-images") == 0
    assert "4 written, 2 skipped, 0 failed" in capsys.readouterr().out
    assert tree_hashes(dataset / "images", secret) == before


def test_nul_and_newline_in_image_names_are_item_errors_on_one_line(dataset, capsys):
    data = json.loads((dataset / "coco.json").read_text())
    data["images"] += [{"id": 50, "file_name": "street\x00.png"},
                       {"id": 51, "file_name": "two\nlines.png"}]
    data["annotations"] += [{"id": 60, "image_id": 50, "bbox": [0, 0, 4, 4]},
                            {"id": 61, "image_id": 51, "bbox": [0, 0, 4, 4]}]
    (dataset / "names.json").write_text(json.dumps(data))
    assert run(dataset, dataset / "names.json") == 1  # was a traceback
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 2 and len(captured.err.splitlines()) == 2, captured.err
    assert "street\\x00.png" in lines[0] and "NUL byte" in lines[0]
    assert "two\\nlines.png" in lines[1] and "no such file" in lines[1]
    assert "5 written, 0 skipped, 2 failed" in captured.out


def test_out_may_not_be_images_or_inside_it(dataset, capsys, tree_hashes):
    images = dataset / "images"
    (dataset / "images_link").symlink_to(images)
    before = tree_hashes(images)
    for out, words in [(images, "is the --images folder"),
                       (dataset / "images_link", "is the --images folder"),
                       (images / "crops", "is inside --images")]:
        assert main(["crop", str(dataset / "coco.json"), "--images", str(images), "--out",
                     str(out), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"roiops crop: error: --out {out} {words}"), err
    assert tree_hashes(images) == before and not (images / "crops").exists()
    # A folder that contains --images is fine: the crops go next to it, not into it.
    assert main(["crop", str(dataset / "coco.json"), "--images", str(images), "--out",
                 str(dataset), "--workers", "1", "--size", "4"]) == 0
    assert tree_hashes(images) == before and len(list(dataset.glob("*.png"))) == 5


@pytest.mark.parametrize("make, problem", [(None, "no such folder"),
                                           ("file", "is not a folder")])
def test_missing_images_folder_is_one_usage_error(dataset, capsys, make, problem):
    images = dataset / "imgs"
    if make == "file":
        images.write_text("")
    assert main(["crop", str(dataset / "coco.json"), "--images", str(images), "--out",
                 str(dataset / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"roiops crop: error: --images {images}: {problem}"]
    assert not (dataset / "out").exists()


def test_extreme_values_are_item_errors(dataset, capsys):
    """Values JSON holds but the crops cannot (each was a traceback): one line each."""
    data = json.loads((dataset / "coco.json").read_text())
    data["images"].append({"id": 70, "file_name": "\ud800.png"})  # a lone surrogate
    data["annotations"] += [
        {"id": 2 ** 63, "image_id": 1, "bbox": [0, 0, 4, 4]},     # beyond crops.npz's int64
        {"id": 31, "image_id": 1, "bbox": [0, 0, 10 ** 400, 4]},  # beyond float
        {"id": 32, "image_id": 1, "bbox": [1e308, 0, 1e308, 4]},  # x + w overflows
        {"id": 33, "image_id": 1, "bbox": [0, 0, 1e300, 4]},      # beyond float32
        {"id": 34, "image_id": 70, "bbox": [0, 0, 4, 4]},
    ]
    (dataset / "extreme.json").write_text(json.dumps(data))
    assert run(dataset, dataset / "extreme.json", "--format", "npz") == 1
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 5 and len(captured.err.splitlines()) == 5, captured.err
    for line, words in zip(lines, [("annotation 9223372036854775808", "id must be between"),
                                   ("annotation 31", "bbox is not finite"),
                                   ("annotation 32", "x + w or y + h is not finite"),
                                   ("\\ud800.png", "not valid Unicode"),
                                   ("annotation 33", "box too large to crop")]):
        assert all(word in line for word in words), line
    assert "5 written, 0 skipped, 5 failed" in captured.out


@pytest.mark.parametrize("flags, limit", [
    (["--size", "1x65501", "--format", "jpg"], "a JPG crop can be at most 65500"),
    (["--size", f"{2 ** 24 + 1}x1"], "a PNG crop can be at most 16777216"),
    (["--size", f"1x{2 ** 24 + 1}", "--format", "npz", "--contact-sheet", "s.png"],
     "a crop shown on the contact sheet can be at most 16777216"),
])
def test_sizes_the_encoders_cannot_take_are_usage_errors(dataset, capsys, flags, limit):
    """Was a MemoryError or OSError traceback from Pillow."""
    assert run(dataset, dataset / "coco.json", *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("roiops crop: error: --size ") and limit in err
    assert not (dataset / "out").exists()


@pytest.mark.parametrize("name, flags", [("crops-00000.npz", ["--format", "npz"]),
                                         ("manifest.csv", []),
                                         ("street_7_cat.png", [])])
def test_contact_sheet_named_as_an_output_is_refused(dataset, capsys, name, flags):
    """It would replace that output (and a resume would take the sheet for a crop)."""
    sheet = dataset / "out" / name
    assert main(["crop", str(dataset / "coco.json"), "--images", str(dataset / "images"),
                 "--out", str(dataset / "out"), "--contact-sheet", str(sheet), *flags]) == 2
    assert "is also the name of an output" in capsys.readouterr().err
    assert not (dataset / "out").exists()
