"""Annotation files: the CSV column mapping, image sizes in COCO and CSV, labels as file names."""
import json

import pytest

from roiops.cli import annotations
from roiops.cli.main import main

COMMON_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax"
MAPPING = "image=filename,x1=xmin,y1=ymin,x2=xmax,y2=ymax,label=class"


def run(dataset, annotation_file, *flags):
    return main(["crop", str(annotation_file), "--images", str(dataset / "images"), "--out",
                 str(dataset / "out"), "--workers", "1", "--size", "6", *flags])


def test_common_csv_columns_through_a_mapping(dataset, capsys):
    """The TensorFlow object detection CSV: a usage error naming the mapping to pass, then
    read with it (width and height checked against the image)."""
    table = dataset / "train_labels.csv"
    table.write_text(f"{COMMON_HEADER}\n"
                     "street.png,40,30,car,2,3,12,11\n"
                     "gray.png,20,24,person,4,6,10,11\n"
                     "gray.png,21,24,person,0,0,5,5\n")  # not gray.png's size
    assert run(dataset, table) == 2
    err = capsys.readouterr().err
    assert f"pass --columns {MAPPING}" in err and len(err.splitlines()) == 1
    assert run(dataset, table, "--columns", MAPPING) == 1
    captured = capsys.readouterr()
    line, = captured.err.splitlines()
    assert "gray.png" in line and "is 20x24" in line and "give 21x24" in line
    assert "(1 box not cropped)" in line  # the row giving that size
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == ["gray_2_person.png",
                                                                       "street_1_car.png"]


def test_common_csv_columns_of_one_image(dataset, capsys):
    table = dataset / "labels.csv"
    table.write_text(f"{COMMON_HEADER}\nstreet.png,40,30,car,2,3,12,11\n")
    assert run(dataset, table, "--columns", MAPPING) == 0
    assert (dataset / "out" / "street_1_car.png").is_file()


def test_a_mapping_to_a_missing_column_is_a_usage_error(dataset, capsys):
    assert run(dataset, dataset / "boxes.csv", "--columns", "image=file") == 2
    err = capsys.readouterr().err
    assert "--columns image=file: no such column" in err


@pytest.mark.parametrize("mapping", ["image", "picture=file", "image=a,image=b", "x1="])
def test_malformed_mappings_are_flag_errors(dataset, capsys, mapping):
    assert run(dataset, dataset / "boxes.csv", "--columns", mapping) == 2
    assert "--columns: expected NAME=COLUMN pairs" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--columns", "image=file_name"], ["--normalized"],
                                  ["--names", "classes.txt"]])
def test_flags_of_other_formats_are_usage_errors(dataset, capsys, flag):
    assert run(dataset, dataset / "coco.json", *flag) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]} applies to" in err and "read as COCO" in err


def test_bad_coco_image_sizes_are_reported_and_the_boxes_still_cropped(dataset, capsys):
    data = json.loads((dataset / "coco.json").read_text())
    data["images"][0]["width"] = "wide"
    (dataset / "sizes.json").write_text(json.dumps(data))
    assert run(dataset, dataset / "sizes.json") == 1
    captured = capsys.readouterr()
    line, = captured.err.splitlines()
    assert "images[0]: width and height must be positive integers, got 'wide' and 30" in line
    assert "5 written, 0 skipped, 1 failed" in captured.out


@pytest.mark.parametrize("label, name", [
    ("行人", "行人"),                 # CJK letters are kept (were dropped)
    ("cafe\u0301", "café"),           # NFD input becomes NFC
    ("हिन्दी", "हिन्दी"),               # combining marks are kept
    ("traffic light", "traffic_light"),
    ("dog/puppy\\..", "dog_puppy"),   # separators and trailing dots
    ("a__b", "a_b"),
    ("Ünïcødé-1.5", "Ünïcødé-1.5"),
    ("///", ""),
])
def test_sanitize_keeps_letters_of_any_script(label, name):
    assert annotations.sanitize(label) == name


def test_unicode_labels_in_file_names(dataset, capsys):
    (dataset / "unicode.csv").write_text(
        "image,x1,y1,x2,y2,label\nstreet.png,0,0,4,4,行人\nstreet.png,0,0,4,4,café\n",
        encoding="utf-8")
    assert run(dataset, dataset / "unicode.csv") == 0
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == [
        "street_1_行人.png", "street_2_café.png"]
