"""``roiops crop`` through its entry point: crops on disk equal crop_and_resize, formats, resume."""
import json

import numpy as np
from PIL import Image

import roiops
from roiops.cli import shards, worker
from roiops.cli.main import main

SIZE = (12, 10)


def crop(dataset, *flags):
    """Run ``roiops crop`` on the COCO fixture (one worker unless flags say otherwise)."""
    return main(["crop", str(dataset / "coco.json"), "--images", str(dataset / "images"),
                 "--out", str(dataset / "out"), "--size", f"{SIZE[0]}x{SIZE[1]}",
                 "--workers", "1", *flags])


def pixel_box(x, y, w, h, height, width):
    """The documented convention: corner samples on the centres of pixels x .. x+w-1."""
    return [y / (height - 1), x / (width - 1), (y + h - 1) / (height - 1),
            (x + w - 1) / (width - 1)]


def expected_crop(image, box, size=SIZE, **options):
    crops = roiops.crop_and_resize(image[None], np.array([box], np.float32), np.zeros(1, int),
                                   size, **options)
    return crops[0]


def coco_annotations(dataset):
    data = json.loads((dataset / "coco.json").read_text())
    files = {image["id"]: image["file_name"] for image in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    return [(a["id"], files[a["image_id"]], a["bbox"], names[a["category_id"]])
            for a in data["annotations"]]


def test_png_crops_equal_crop_and_resize_on_the_same_pixels(dataset, rgb, capsys):
    assert crop(dataset) == 0
    out = capsys.readouterr().out
    assert "5 written, 0 skipped, 0 failed" in out
    assert "decode" in out and "crop" in out and "encode" in out and "crops/s" in out
    for ident, file_name, bbox, _ in coco_annotations(dataset):
        image = rgb(dataset / "images" / file_name)
        expected = expected_crop(image, pixel_box(*bbox, *image.shape[:2]))
        expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
        written = next((dataset / "out").glob(f"{file_name[:-4]}_{ident}_*.png"))
        np.testing.assert_array_equal(rgb(written), expected)


def load_shard(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_output_names_use_stem_id_and_sanitized_label(dataset):
    assert crop(dataset) == 0
    names = sorted(path.name for path in (dataset / "out").glob("*.png"))
    assert names == ["gray_11_dog_puppy.png", "gray_9_cat.png", "logo_12_traffic_light.png",
                     "street_7_cat.png", "street_8_traffic_light.png"]


def test_a_box_cropped_to_its_own_size_gives_its_pixels(dataset, rgb):
    """The box convention: a w x h pixel box at size h x w is exactly those pixels."""
    assert main(["crop", str(dataset / "boxes.csv"), "--images", str(dataset / "images"),
                 "--out", str(dataset / "out"), "--size", "8x10", "--workers", "1"]) == 0
    image = rgb(dataset / "images" / "street.png")
    np.testing.assert_array_equal(rgb(dataset / "out" / "street_1_cat.png"), image[3:11, 2:12])


def test_jpg_format_writes_jpeg_files(dataset):
    assert crop(dataset, "--format", "jpg") == 0
    files = sorted((dataset / "out").glob("*.jpg"))
    assert len(files) == 5
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and image.size == (SIZE[1], SIZE[0])


def test_npz_round_trips_crops_and_metadata(dataset, rgb):
    assert crop(dataset, "--format", "npz", "--method", "nearest", "--dtype", "float32",
                "--extrapolation-value", "7", "--margin", "0.25") == 0
    annotations = coco_annotations(dataset)
    assert sorted(p.name for p in (dataset / "out").iterdir()) == ["crops-00000.npz",
                                                                   "manifest.csv"]
    with np.load(dataset / "out" / "crops-00000.npz") as data:
        assert data["crops"].dtype == np.float32 and str(data["dtype"]) == "float32"
        assert data["crops"].shape == (5, *SIZE, 3)
        assert data["id"].tolist() == [a[0] for a in annotations]
        assert data["image"].tolist() == [a[1] for a in annotations]
        assert data["label"].tolist() == [a[3] for a in annotations]
        np.testing.assert_array_equal(
            data["box"], [[x, y, x + w, y + h] for _, _, (x, y, w, h), _ in annotations])
        assert data["size"].tolist() == list(SIZE) and str(data["method"]) == "nearest"
        assert float(data["extrapolation_value"]) == 7 and float(data["margin"]) == 0.25
        assert not data["square"] and not data["normalized"] and not data["antialias"]
        assert data["exif_orientation"]
        for row, (_, file_name, (x, y, w, h), _) in enumerate(annotations):
            image = rgb(dataset / "images" / file_name)
            assert data["image_size"][row].tolist() == list(image.shape[:2])
            grown = (x - w / 4, y - h / 4, w * 1.5, h * 1.5)
            box = pixel_box(*grown, *image.shape[:2])
            np.testing.assert_allclose(data["sampled_box"][row], box, rtol=1e-6)
            np.testing.assert_array_equal(
                data["crops"][row], expected_crop(image, data["sampled_box"][row],
                                                  method="nearest", extrapolation_value=7.0))


def test_npz_crops_are_uint8_by_default_rounded_as_png(dataset, rgb, tree_hashes):
    assert crop(dataset, "--format", "npz") == 0
    assert crop(dataset, "--out", str(dataset / "png")) == 0
    shard = load_shard(dataset / "out" / "crops-00000.npz")
    assert shard["crops"].dtype == np.uint8 and str(shard["dtype"]) == "uint8"
    for row, (ident, file_name, _, _) in enumerate(coco_annotations(dataset)):
        written = next((dataset / "png").glob(f"{file_name[:-4]}_{ident}_*.png"))
        np.testing.assert_array_equal(shard["crops"][row], rgb(written))


def test_square_grows_the_short_side_around_the_centre(dataset):
    assert crop(dataset, "--format", "npz", "--square") == 0
    with np.load(dataset / "out" / "crops-00000.npz") as data:
        # street.png is 30x40; annotation 7 is [2, 3, 10, 8]: 8 high grows to 10 around y=7.
        y1, x1, y2, x2 = data["sampled_box"][0]
        np.testing.assert_allclose([y1 * 29, x1 * 39, y2 * 29, x2 * 39], [2, 2, 11, 11],
                                   atol=1e-5)


def test_normalized_csv_boxes_pass_through_unchanged(dataset, rgb):
    (dataset / "norm.csv").write_text("image,x1,y1,x2,y2,label\n"
                                      "street.png,0.1,0.2,0.9,0.7,a\n"
                                      "street.png,0.8,0.9,0.3,0.1,flipped\n")
    assert main(["crop", str(dataset / "norm.csv"), "--normalized", "--images",
                 str(dataset / "images"), "--out", str(dataset / "out"), "--format", "npz",
                 "--dtype", "float32", "--workers", "1"]) == 0
    image = rgb(dataset / "images" / "street.png")
    with np.load(dataset / "out" / "crops-00000.npz") as data:
        np.testing.assert_array_equal(data["sampled_box"],
                                      np.float32([[0.2, 0.1, 0.7, 0.9], [0.9, 0.8, 0.1, 0.3]]))
        assert data["id"].tolist() == [1, 2]
        np.testing.assert_array_equal(data["crops"][1],
                                      expected_crop(image, [0.9, 0.8, 0.1, 0.3], (64, 64)))


def test_contact_sheet_has_the_grid_size(dataset, rgb):
    sheet = dataset / "sheet.png"
    assert crop(dataset, "--contact-sheet", str(sheet)) == 0
    # 5 crops of 12x10: 3 columns, 2 rows, 2-pixel padding around and between cells.
    with Image.open(sheet) as image:
        assert image.size == (3 * (10 + 2) + 2, 2 * (12 + 2) + 2)
    pixels = rgb(sheet)
    first = rgb(next((dataset / "out").glob("street_7_*.png")))
    np.testing.assert_array_equal(pixels[2:14, 2:12], first)


def test_second_run_skips_existing_files_and_overwrite_rewrites(dataset, capsys):
    assert crop(dataset) == 0
    capsys.readouterr()
    stamps = {p.name: p.stat().st_mtime_ns for p in (dataset / "out").iterdir()}
    (dataset / "out" / "street_7_cat.png").unlink()
    assert crop(dataset, "--contact-sheet", str(dataset / "sheet.png")) == 0
    assert "1 written, 4 skipped, 0 failed" in capsys.readouterr().out
    for name, stamp in stamps.items():
        if name != "street_7_cat.png":
            assert (dataset / "out" / name).stat().st_mtime_ns == stamp
    with Image.open(dataset / "sheet.png") as image:  # the sheet still shows all five
        assert image.size == (38, 30)
    assert crop(dataset, "--overwrite") == 0
    assert "5 written, 0 skipped" in capsys.readouterr().out


def test_npz_resume_redoes_only_the_shards_that_miss_crops(dataset, capsys, monkeypatch):
    """Shards hold consecutive boxes; a resume keeps the complete ones, rewrites the others,
    removes shards beyond the last, and gives the same files as a fresh run."""
    monkeypatch.setattr(shards, "SHARD_BYTES", 2 * 12 * 10 * 3)  # two 12x10 uint8 crops
    args = ["crop", str(dataset / "coco.json"), "--images", str(dataset / "images"), "--out",
            str(dataset / "out"), "--format", "npz", "--workers", "1", "--size", "12x10"]
    street = dataset / "images" / "street.png"
    pixels = street.read_bytes()
    street.unlink()  # boxes 1 and 2 (shard 0) fail
    assert main(args) == 1
    out = dataset / "out"
    assert sorted(p.name for p in out.glob("*.npz")) == [f"crops-0000{k}.npz" for k in range(3)]
    assert load_shard(out / "crops-00000.npz")["crops"].shape == (0, 12, 10, 3)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    street.write_bytes(pixels)
    capsys.readouterr()
    assert main(args) == 0
    assert "2 written, 3 skipped, 0 failed" in capsys.readouterr().out
    assert [p.name for p in out.glob("*.npz") if p.stat().st_mtime_ns != stamps[p.name]] == [
        "crops-00000.npz"]
    (out / "crops-00007.npz").write_bytes((out / "crops-00002.npz").read_bytes())  # stale
    assert main(args) == 0
    assert "0 written, 5 skipped" in capsys.readouterr().out
    resumed = {p.name: load_shard(p) for p in sorted(out.glob("*.npz"))}
    assert sorted(resumed) == [f"crops-0000{k}.npz" for k in range(3)]
    assert main([*args, "--overwrite"]) == 0
    for name, shard in resumed.items():
        fresh = load_shard(out / name)
        assert shard.keys() == fresh.keys()
        for key in fresh:
            np.testing.assert_array_equal(shard[key], fresh[key])
    assert main([*args, "--size", "8"]) == 2  # other settings: no silent mix
    assert "other settings" in capsys.readouterr().err


def test_a_stopped_npz_run_leaves_no_stale_manifest(dataset, monkeypatch):
    """Shards are rewritten in place: the manifest of the earlier run goes first, so that a
    stop cannot leave one naming rows that changed."""
    assert crop(dataset, "--format", "npz") == 0
    assert (dataset / "out" / "manifest.csv").is_file()

    def interrupted(path, arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards, "write", interrupted)
    assert crop(dataset, "--format", "npz", "--overwrite") == 130
    assert not (dataset / "out" / "manifest.csv").exists()
    assert (dataset / "out" / "crops-00000.npz").is_file()  # the earlier shard, whole


def test_a_resume_that_does_nothing_does_not_read_the_crops(dataset, monkeypatch, capsys):
    assert crop(dataset, "--format", "npz") == 0
    monkeypatch.setattr(shards, "read_crops", None)  # a call would fail
    assert crop(dataset, "--format", "npz") == 0
    assert "0 written, 5 skipped, 0 failed" in capsys.readouterr().out


def test_workers_give_the_same_outputs(dataset, tree_hashes):
    images = dataset / "images"
    lines = ["image,x1,y1,x2,y2,label"]
    for k in range(18):
        Image.fromarray(np.full((9, 11, 3), 10 * k, np.uint8)).save(images / f"flat{k}.png")
        lines += [f"flat{k}.png,1,1,8,6,a", f"flat{k}.png,0,2,11,9,b"]
    (dataset / "many.csv").write_text("\n".join(lines) + "\n")
    outputs = {}
    for workers in ("1", "2"):
        out = dataset / f"out{workers}"
        assert main(["crop", str(dataset / "many.csv"), "--images", str(images), "--out",
                     str(out), "--workers", workers, "--size", "5",
                     "--contact-sheet", str(out / "sheet.png")]) == 0
        outputs[workers] = {k.split("/")[-1]: v for k, v in tree_hashes(out).items()}
    assert len(outputs["1"]) == 38 and outputs["1"] == outputs["2"]  # crops, sheet, manifest


def test_no_progress_bar_when_not_a_terminal(dataset, capsys):
    assert crop(dataset) == 0
    assert "\r" not in capsys.readouterr().err


def test_input_files_are_never_written(dataset, tree_hashes):
    """An image read from --out (--allow-outside-images) that an output name would replace is
    refused, on a second (resuming) run too; an annotation file in --out named as a shard or
    the manifest is not replaced (usage error)."""
    out = dataset / "out"
    out.mkdir()
    (out / "street_1.png").write_bytes((dataset / "images" / "street.png").read_bytes())
    # row 1's output would be out/street_1.png, the image of row 2
    csv = ("image,x1,y1,x2,y2\nstreet.png,0,0,4,4\n../out/street_1.png,0,0,4,4\n")
    (out / "boxes.csv").write_text(csv)
    (out / "crops-00000.npz").write_text(csv)
    (out / "manifest.csv").write_text(csv)
    before = tree_hashes(out)
    for name, image_format, status in (("manifest.csv", "png", 2),
                                       ("crops-00000.npz", "npz", 2),
                                       ("boxes.csv", "png", 1), ("boxes.csv", "png", 1)):
        if name == "boxes.csv":  # these runs write their manifest, not an input of theirs
            before.pop(str(out / "manifest.csv"), None)
        assert main(["crop", str(out / name), "--images", str(dataset / "images"),
                     "--out", str(out), "--format", image_format, "--workers", "1",
                     "--allow-outside-images"]) == status
    assert {k: v for k, v in tree_hashes(out).items() if k in before} == before


def test_boxes_cropped_in_groups_give_the_same_bits(dataset, monkeypatch):
    """An image's boxes go to crop_and_resize in groups bounded in bytes (memory); one box per
    call gives the same crops as all boxes in one call."""
    crops = []
    for call_bytes in (worker.CALL_BYTES, 1):
        monkeypatch.setattr(worker, "CALL_BYTES", call_bytes)
        assert crop(dataset, "--format", "npz", "--dtype", "float32", "--overwrite") == 0
        crops.append(load_shard(dataset / "out" / "crops-00000.npz")["crops"])
    assert worker.boxes_per_call(SIZE) == 1
    np.testing.assert_array_equal(crops[0], crops[1])
