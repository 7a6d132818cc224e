"""``roiops crop`` options beyond the crops themselves: the class layout, the manifest,
--dry-run, --limit, --quiet, --category, --min-size, and the first-run notice."""
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from roiops.cli import crop as crop_module
from roiops.cli.main import main


def crop(dataset, *flags, annotations="coco.json"):
    return main(["crop", str(dataset / annotations), "--images", str(dataset / "images"),
                 "--out", str(dataset / "out"), "--size", "6", "--workers", "1", *flags])


def read_manifest(path):
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_class_layout_is_an_image_folder(dataset):
    """One folder per label (torchvision's ImageFolder); no label: _unlabeled."""
    assert crop(dataset, "--layout", "class", annotations="boxes.csv") == 0
    out = dataset / "out"
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert found == ["_unlabeled/street_3.png", "cat/street_1_cat.png", "dog/gray_2_dog.png"]
    assert [row["crop"] for row in read_manifest(out / "manifest.csv")] == [
        "cat/street_1_cat.png", "dog/gray_2_dog.png", "_unlabeled/street_3.png"]


def test_class_layout_refuses_labels_sharing_a_folder_and_links(dataset, capsys):
    (dataset / "clash.csv").write_text("image,x1,y1,x2,y2,label\nstreet.png,0,0,4,4,a/b\n"
                                       "street.png,0,0,4,4,a b\n")
    assert crop(dataset, "--layout", "class", annotations="clash.csv") == 2
    assert "the labels 'a/b' and 'a b' would share the folder a_b" in capsys.readouterr().err
    (dataset / "out").mkdir()
    (dataset / "out" / "cat").symlink_to(dataset / "images")
    assert crop(dataset, "--layout", "class", annotations="boxes.csv") == 2
    assert "is a link or not a folder" in capsys.readouterr().err
    assert list((dataset / "images").glob("*_cat.png")) == []


@pytest.mark.parametrize("flags, message", [
    (["--layout", "class", "--format", "npz"], "--layout class applies to --format png"),
    (["--dtype", "float32"], "--dtype applies to --format npz, not png"),
])
def test_flags_for_other_formats_are_usage_errors(dataset, capsys, flags, message):
    assert crop(dataset, *flags) == 2
    assert message in capsys.readouterr().err


def test_manifest_lists_every_crop_with_its_geometry(dataset, rgb):
    assert crop(dataset, "--margin", "0.5") == 0
    rows = read_manifest(dataset / "out" / "manifest.csv")
    assert list(rows[0]) == ["crop", "index", "image", "id", "label", "x1", "y1", "x2", "y2",
                             "image_width", "image_height", "sampled_y1", "sampled_x1",
                             "sampled_y2", "sampled_x2"]
    assert [row["crop"] for row in rows] == ["street_7_cat.png", "street_8_traffic_light.png",
                                             "gray_9_cat.png", "gray_11_dog_puppy.png",
                                             "logo_12_traffic_light.png"]
    first = rows[0]
    assert (first["image"], first["id"], first["label"], first["index"]) == ("street.png", "7",
                                                                           "cat", "")
    assert [first[k] for k in ("x1", "y1", "x2", "y2", "image_width", "image_height")] == [
        "2", "3", "12", "11", "40", "30"]
    # [2, 3, 10, 8] grown by half its size: x -3 .. 17, y -1 .. 15; last pixel centres 16, 14
    sampled = [float(first[k]) for k in ("sampled_y1", "sampled_x1", "sampled_y2",
                                         "sampled_x2")]
    np.testing.assert_allclose(sampled, [-1 / 29, -3 / 39, 14 / 29, 16 / 39], rtol=1e-6)
    assert rows[1]["x1"] == "20.5"


def test_manifest_is_the_same_after_a_resume(dataset):
    """Crops of an earlier run get their geometry from the image header: same manifest."""
    assert crop(dataset) == 0
    manifest = dataset / "out" / "manifest.csv"
    first = manifest.read_bytes()
    for path in list((dataset / "out").glob("street_*.png")):
        path.unlink()
    manifest.unlink()
    assert crop(dataset) == 0
    assert manifest.read_bytes() == first


def test_manifest_of_npz_names_shard_and_row(dataset):
    assert crop(dataset, "--format", "npz") == 0
    rows = read_manifest(dataset / "out" / "manifest.csv")
    assert [(row["crop"], row["index"]) for row in rows] == [("crops-00000.npz", str(k))
                                                             for k in range(5)]


def test_dry_run_writes_nothing_and_counts(dataset, capsys):
    (dataset / "dry.csv").write_text("image,x1,y1,x2,y2,label\nstreet.png,0,0,4,4,a\n"
                                     "missing.png,0,0,4,4,b\nstreet.png,1,2,x,4,c\n")
    assert crop(dataset, "--dry-run", annotations="dry.csv") == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "dry run: 1 to crop, 0 skipped (already there), 2 failed; nothing was written"]
    assert "missing.png: no such file (1 box not cropped)" in captured.err
    assert not (dataset / "out").exists()
    assert crop(dataset, annotations="boxes.csv") == 0
    capsys.readouterr()
    assert crop(dataset, "--dry-run", annotations="coco.json") == 0
    assert "5 to crop, 0 skipped" in capsys.readouterr().out
    assert crop(dataset, "--dry-run", annotations="boxes.csv") == 0
    assert "0 to crop, 3 skipped" in capsys.readouterr().out


def test_limit_category_and_min_size(dataset, capsys):
    assert crop(dataset, "--limit", "2") == 0
    assert "2 written" in capsys.readouterr().out
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == [
        "street_7_cat.png", "street_8_traffic_light.png"]
    assert crop(dataset, "--category", "cat", "--category", "dog/puppy", "--overwrite") == 0
    out = capsys.readouterr().out
    assert "3 written, 0 skipped, 0 failed, 2 filtered out" in out
    rows = read_manifest(dataset / "out" / "manifest.csv")
    assert [row["id"] for row in rows] == ["7", "9", "11"]
    # COCO boxes: 10x8, 15.5x18, 20x24, 6x5, 9x12: --min-size 9 keeps three
    assert crop(dataset, "--min-size", "9", "--overwrite") == 0
    assert "3 written, 0 skipped, 0 failed, 2 filtered out" in capsys.readouterr().out
    assert crop(dataset, "--category", "ca", "--limit", "1") == 2
    err = capsys.readouterr().err
    assert "--category 'ca': no box has this label; the labels are 'cat', 'dog/puppy'" in err


def test_quiet_prints_only_errors(dataset, capsys):
    (dataset / "one.csv").write_text("image,x1,y1,x2,y2\nstreet.png,0,0,4,4\nnone.png,0,0,1,1\n")
    assert crop(dataset, "--quiet", annotations="one.csv") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and len(captured.err.splitlines()) == 1


def test_slow_kernels_are_announced_unless_quiet(dataset, monkeypatch):
    """Issue 17 item 2: a first run compiles the kernels for tens of seconds in silence."""
    monkeypatch.setattr(crop_module, "NOTICE_SECONDS", 0.01)
    monkeypatch.setattr(crop_module, "warm_up", lambda: time.sleep(0.5))
    for quiet, expected in ((False, [crop_module.KERNELS_NOTICE]), (True, [])):
        stderr = io.StringIO()
        options = crop_module.CropOptions(size=(6, 6), overwrite=True)
        job = crop_module.CropJob(dataset / "coco.json", dataset / "images", dataset / "out",
                                  options, workers=1, quiet=quiet, stderr=stderr)
        assert job.run().written == 5
        assert stderr.getvalue().splitlines() == expected


def test_engine_ray_without_ray_is_a_usage_error(dataset, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert crop(dataset, "--engine", "ray") == 2
    assert 'error: --engine ray needs Ray: pip install "roiops[ray]"' in capsys.readouterr().err
    assert not (dataset / "out").exists()


def test_images_from_a_file_uri_are_the_folder_images(dataset, capsys, tree_hashes):
    """--images as a pyarrow filesystem URI (file:// here): the same crops as the folder; an
    image path leaving it is refused, a link out of it too."""
    pytest.importorskip("pyarrow")
    images = (dataset / "images").resolve()
    assert crop(dataset) == 0
    folder = {Path(path).name: digest for path, digest in tree_hashes(dataset / "out").items()}
    (dataset / "outside.png").write_bytes((images / "street.png").read_bytes())
    (images / "link.png").symlink_to(dataset / "outside.png")
    (dataset / "more.csv").write_text("image,x1,y1,x2,y2\n../outside.png,0,0,4,4\n"
                                      "link.png,0,0,4,4\n")
    for annotations in ("coco.json", "more.csv"):
        capsys.readouterr()
        status = main(["crop", str(dataset / annotations), "--images", f"file://{images}",
                       "--out", str(dataset / "uri"), "--size", "6", "--workers", "1"])
        assert status == (0 if annotations == "coco.json" else 1)
    uri = {Path(path).name: digest for path, digest in tree_hashes(dataset / "uri").items()}
    assert {name: uri[name] for name in folder if name != "manifest.csv"} == {
        name: digest for name, digest in folder.items() if name != "manifest.csv"}
    errors = capsys.readouterr().err
    assert errors.count("outside --images") == 2
    assert main(["crop", str(dataset / "coco.json"), "--images", f"file://{images}/none",
                 "--out", str(dataset / "uri")]) == 2
    assert "no such folder" in capsys.readouterr().err
