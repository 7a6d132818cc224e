"""Decoding images: EXIF orientation (Pillow's exif_transpose), colour modes, header sizes; and
``roiops crop`` on EXIF-rotated photos against the annotation's image size."""
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from roiops.cli import imageio
from roiops.cli.main import main

ROTATED = 6  # EXIF: the stored pixels are shown turned 90 degrees clockwise


def save_with_orientation(path, pixels, orientation, **options):
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[imageio.ORIENTATION_TAG] = orientation
    image.save(path, exif=exif, **options)


def pillow_upright(path):
    """The reference: Pillow's exif_transpose of the decoded file, as RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.fixture
def stored():
    return np.random.default_rng(5).integers(0, 256, (30, 40, 3), np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_turns_every_orientation_as_exif_transpose(tmp_path, stored, orientation):
    path = tmp_path / "photo.png"
    save_with_orientation(path, stored, orientation)
    decoded = imageio.decode(path)
    assert decoded.orientation == orientation
    np.testing.assert_array_equal(decoded.pixels, pillow_upright(path))
    assert imageio.read_size(path) == decoded.pixels.shape[:2]
    np.testing.assert_array_equal(imageio.decode(path, orient=False).pixels, stored)
    assert imageio.read_size(path, orient=False) == (30, 40)


def test_rotated_jpeg(tmp_path, stored):
    path = tmp_path / "phone.jpg"
    save_with_orientation(path, stored, ROTATED, quality=95)
    pixels = imageio.read_rgb(path)
    assert pixels.shape == (40, 30, 3)
    np.testing.assert_array_equal(pixels, pillow_upright(path))


@pytest.mark.parametrize("mode", ["CMYK", "LA", "RGBA", "I;16"])
def test_colour_modes_become_rgb_and_deep_images_are_refused(tmp_path, stored, mode):
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    if mode == "I;16":
        Image.fromarray(np.full((6, 6), 40000, np.uint16)).save(path)
        with pytest.raises(imageio.ImageError, match="more than 8 bits"):
            imageio.read_rgb(path)
        return
    Image.fromarray(stored).convert(mode).save(path)
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(imageio.read_rgb(path), expected)


def test_palette_with_transparency_is_expanded(tmp_path):
    image = Image.new("P", (4, 3))
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "logo.png", transparency=0)
    pixels = imageio.read_rgb(tmp_path / "logo.png")
    assert pixels.shape == (3, 4, 3)
    assert pixels[1, 1].tolist() == [0, 255, 0] and pixels[0, 0].tolist() == [255, 0, 0]


def photo_dataset(tmp_path, stored, size):
    """images/phone.jpg stored 40x30 and shown 30x40 (EXIF 6), a COCO file giving ``size``
    and a box on the upright image; returns the command's arguments."""
    images = tmp_path / "images"
    images.mkdir()
    save_with_orientation(images / "phone.jpg", stored, ROTATED, quality=95)
    coco = {"images": [{"id": 1, "file_name": "phone.jpg", "width": size[0],
                        "height": size[1]}],
            "annotations": [{"id": 3, "image_id": 1, "bbox": [2, 10, 10, 12]},
                            {"id": 4, "image_id": 1, "bbox": [0, 0, 5, 5]}],
            "categories": []}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    return ["crop", str(tmp_path / "coco.json"), "--images", str(images), "--out",
            str(tmp_path / "out"), "--size", "12x10", "--workers", "1", "--format", "npz"]


def test_crops_of_a_rotated_photo_are_cut_from_the_upright_image(tmp_path, stored, rgb):
    """Issue 17 item 1: the boxes are on the image as shown (they were cut from the stored
    pixels, silently wrong, or 'outside' them)."""
    args = photo_dataset(tmp_path, stored, (30, 40))
    assert main(args) == 0
    upright = pillow_upright(tmp_path / "images" / "phone.jpg")
    with np.load(tmp_path / "out" / "crops-00000.npz") as shard:
        np.testing.assert_array_equal(shard["crops"][0], upright[10:22, 2:12])
        assert shard["image_size"][0].tolist() == [40, 30]


def test_a_size_other_than_the_annotations_is_an_error_naming_both(tmp_path, stored, capsys):
    args = photo_dataset(tmp_path, stored, (40, 30))  # the stored size, not the shown one
    assert main(args) == 1
    captured = capsys.readouterr()
    line, = captured.err.splitlines()
    assert line.startswith("error: ") and "phone.jpg" in line
    assert "the decoded image is 30x40" in line and "give 40x30" in line
    assert "pass --ignore-exif-orientation" in line and "(2 boxes not cropped)" in line
    assert "0 written, 0 skipped, 2 failed" in captured.out
    # Annotations of the stored pixels: --ignore-exif-orientation crops those (--overwrite:
    # the shard of the failed run has the other setting).
    assert main([*args, "--ignore-exif-orientation", "--overwrite"]) == 0
    with np.load(tmp_path / "out" / "crops-00000.npz") as shard:
        np.testing.assert_array_equal(shard["crops"][0], imageio.read_rgb(
            tmp_path / "images" / "phone.jpg", orient=False)[10:22, 2:12])
        assert not shard["exif_orientation"]


def test_ignoring_the_orientation_against_upright_sizes_says_so(tmp_path, stored, capsys):
    args = photo_dataset(tmp_path, stored, (30, 40))
    assert main([*args, "--ignore-exif-orientation"]) == 1
    assert "leave out --ignore-exif-orientation" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (64, 64, 3)])
def test_png_crops_hold_their_pixels(shape):
    """roiops' own PNG writer (OpenCV's default settings: Sub filter, zlib level 1, RLE): an
    8-bit RGB PNG that Pillow reads back as the same pixels."""
    rng = np.random.default_rng(shape[1])
    smooth = np.cumsum(rng.integers(-3, 4, shape), axis=1)
    crop = np.clip(smooth + 128, 0, 255).astype(np.uint8)
    data = imageio.png_bytes(crop)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB" and image.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(image), crop)
