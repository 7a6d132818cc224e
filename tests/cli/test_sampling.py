"""--antialias: the mean of several samples per crop pixel when a box is reduced; the default
stays crop_and_resize's single sample (the example of docs/cli.md)."""
import numpy as np
import pytest
from PIL import Image

import roiops
from roiops.cli import boxes, sampling
from roiops.cli.main import main


def stripes(width=61, height=4):
    """One-pixel vertical stripes: black on even columns, white on odd ones."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, 1::2] = 255
    return image


def crop(image, box, size, antialias):
    sampled = boxes.sample_box(box, *image.shape[:2])[None]
    return sampling.crop_boxes(image, sampled, size, method="bilinear",
                               extrapolation_value=0.0, antialias=antialias)[0]


def test_the_documented_example_aliases_without_and_not_with():
    """61 columns to 16: a sample every 4 pixels, always on a black column."""
    image = stripes()
    exact = crop(image, (0, 0, 61, 4), (4, 16), antialias=False)
    assert (exact == 0).all()
    smooth = crop(image, (0, 0, 61, 4), (4, 16), antialias=True)
    np.testing.assert_allclose(smooth, 127.5, atol=1e-3)


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
def test_boxes_that_are_not_reduced_give_crop_and_resize_bit_for_bit(method):
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)
    sampled = np.array([boxes.sample_box(box, 30, 40) for box in
                        [(2, 3, 12, 11), (-5, -5, 5, 3), (10, 10, 11, 12)]], np.float32)
    expected = roiops.crop_and_resize(image[None], sampled, np.zeros(3, np.int64), (8, 10),
                                      method=method)
    antialiased = sampling.crop_boxes(image, sampled, (8, 10), method=method,
                                      extrapolation_value=0.0, antialias=True)
    np.testing.assert_array_equal(antialiased, expected)


def test_factor_and_the_split_of_large_sample_sets():
    assert sampling.factor(0, 1, 61, 16) == 4       # 60 pixels over 15 steps
    assert sampling.factor(0, 1, 10_000, 2) == sampling.MAX_FACTOR
    assert sampling.factor(0.2, 0.2, 50, 1) == 1    # a point
    image = stripes(width=121)
    box = (0, 0, 121, 4)
    whole = crop(image, box, (4, 16), antialias=True)
    sampled = boxes.sample_box(box, 4, 121)[None].repeat(3, axis=0)
    split = sampling.crop_boxes(image, sampled, (4, 16), method="bilinear",
                                extrapolation_value=0.0, antialias=True, call_bytes=1)
    for crop_ in split:
        np.testing.assert_array_equal(crop_, whole)


def test_antialias_flag(dataset, capsys):
    Image.fromarray(stripes()).save(dataset / "images" / "stripes.png")
    (dataset / "stripes.csv").write_text("image,x1,y1,x2,y2\nstripes.png,0,0,61,4\n")
    args = ["crop", str(dataset / "stripes.csv"), "--images", str(dataset / "images"),
            "--workers", "1", "--size", "4x16", "--format", "npz"]
    assert main([*args, "--out", str(dataset / "exact")]) == 0
    assert main([*args, "--out", str(dataset / "smooth"), "--antialias"]) == 0
    with np.load(dataset / "exact" / "crops-00000.npz") as exact, \
            np.load(dataset / "smooth" / "crops-00000.npz") as smooth:
        assert (exact["crops"] == 0).all() and not exact["antialias"]
        assert (smooth["crops"] == 128).all() and smooth["antialias"]  # 127.5 rounded to even
