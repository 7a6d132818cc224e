"""The native multi-scale RoI Align: the fused kernels against roi_align's plain reference,
level by level (forward, every level's gradient, the box gradient), the level mapper, the
validator's rules."""
from fractions import Fraction

import numba
import numpy as np
import pytest

import roiops
from roiops.multi_scale_roi_align import api, reference
from roiops.multi_scale_roi_align.levels import NUMPY, fpn_levels, infer_scale, level_range

RNG = np.random.default_rng(16)
SCALES = [1 / 4, 1 / 8, 1 / 16]


def pyramid(dtype=np.float32, channels=3, batch=2):
    return [RNG.standard_normal((batch, channels, 24 // s, 32 // s)).astype(dtype)
            for s in (1, 2, 4)]


def rois(count, dtype=np.float32):
    corner = RNG.uniform(-8, 100, (count, 2))
    size = RNG.uniform(-4, 90, (count, 2))
    batch = RNG.integers(0, 2, (count, 1))
    return np.concatenate([batch, corner, corner + size], axis=1).astype(dtype)


LEVELS = np.array([0, 2, 1, -1, 0, 1, 2, 2, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampling_ratio, aligned", [(2, False), (-1, True)])
def test_forward_is_roi_align_of_each_level(dtype, sampling_ratio, aligned):
    features, boxes = pyramid(dtype), rois(len(LEVELS), dtype)
    out = roiops.multi_scale_roi_align(features, boxes, (2, 3), SCALES, levels=LEVELS,
                                       sampling_ratio=sampling_ratio, aligned=aligned)
    expected = reference.multi_scale_roi_align(features, boxes, LEVELS, SCALES, (2, 3),
                                               sampling_ratio, aligned, F=dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    assert not out[3].any()  # level -1: zeros


def test_dense_rois_take_the_channels_last_path_with_the_same_bits():
    features = pyramid(channels=64, batch=1)
    boxes = rois(300)
    boxes[:, 0] = 0
    levels = RNG.integers(0, 3, 300)
    out = roiops.multi_scale_roi_align(features, boxes, 2, SCALES, levels=levels,
                                       sampling_ratio=2)
    for k in (0, 77, 299):
        level = levels[k]
        np.testing.assert_array_equal(
            out[k], roiops.roi_align(features[level], boxes[k:k + 1], 2,
                                     spatial_scale=SCALES[level], sampling_ratio=2)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_gradient_is_each_levels_sequential_sum(dtype):
    features, boxes = pyramid(dtype), rois(len(LEVELS), dtype)
    grads = RNG.standard_normal((len(LEVELS), 3, 2, 2)).astype(dtype)
    shapes = [f.shape for f in features]
    result = roiops.multi_scale_roi_align_grad_input(grads, boxes, LEVELS, shapes, 2, SCALES,
                                                     sampling_ratio=2)
    expected = reference.multi_scale_roi_align_grad_input(grads, boxes, LEVELS, shapes,
                                                          SCALES, 2, 2, F=dtype)
    for got, want, shape in zip(result, expected, shapes):
        assert got.shape == shape and got.dtype == dtype
        np.testing.assert_array_equal(got, want)


def test_input_gradient_does_not_depend_on_the_thread_count():
    features, boxes = pyramid(channels=70, batch=1), rois(200)
    boxes[:, 0] = 0
    levels = RNG.integers(-1, 3, 200)
    grads = RNG.standard_normal((200, 70, 2, 2)).astype(np.float32)
    shapes = [f.shape for f in features]

    def run():
        return roiops.multi_scale_roi_align_grad_input(grads, boxes, levels, shapes, 2,
                                                       SCALES, sampling_ratio=2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(single, run()):
        np.testing.assert_array_equal(a, b)


def test_box_gradient_matches_the_reference_and_finite_differences():
    features = pyramid(np.float64)
    boxes = np.array([[0, 3.3, 4.1, 60.7, 70.2], [1, 10.2, 2.5, 30.9, 20.4],
                      [1, 1.4, 1.9, 120.3, 90.8]])
    levels = np.array([1, 0, 2])
    grads = RNG.standard_normal((3, 3, 2, 2))
    got = roiops.multi_scale_roi_align_grad_boxes(grads, features, boxes, levels, 2, SCALES,
                                                  sampling_ratio=2)
    want = reference.multi_scale_roi_align_grad_boxes(grads, features, boxes, levels, SCALES,
                                                      2, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    step = 1e-6
    for k in range(3):
        for j in range(1, 5):
            up, down = boxes.copy(), boxes.copy()
            up[k, j] += step
            down[k, j] -= step
            loss = [(grads * roiops.multi_scale_roi_align(features, b, 2, SCALES, levels=levels,
                                                          sampling_ratio=2)).sum()
                    for b in (up, down)]
            assert got[k, j] == pytest.approx((loss[0] - loss[1]) / (2 * step), abs=1e-6)
    assert not got[:, 0].any()


def test_without_levels_the_level_mapper_chooses():
    features = pyramid()
    boxes = np.array([[0, 0, 0, 20, 20], [0, 0, 0, 224, 224], [1, 5, 5, 4, 9]], np.float32)
    expected_levels = api.numpy_levels(boxes, SCALES, 224, 4)
    np.testing.assert_array_equal(expected_levels, [0, 2, -1])  # 2 + [0, 2]; NaN area: none
    np.testing.assert_array_equal(
        roiops.multi_scale_roi_align(features, boxes, 2, SCALES, sampling_ratio=2),
        roiops.multi_scale_roi_align(features, boxes, 2, SCALES, sampling_ratio=2,
                                     levels=expected_levels))
    # one level: every box reads it, none is mapped (as torchvision)
    one = roiops.multi_scale_roi_align(features[:1], boxes, 2, SCALES[:1], sampling_ratio=2)
    np.testing.assert_array_equal(one, roiops.roi_align(features[0], boxes, 2,
                                                        spatial_scale=SCALES[0],
                                                        sampling_ratio=2))


def test_a_roi_mapped_to_a_level_without_a_map_gives_zeros():
    # as torchvision, which pools each level's rois and leaves the others zero (found by
    # tests/test_fuzz.py: the call raised an error about `levels`, an argument not given)
    features = pyramid()
    boxes = np.array([[0, 0, 0, 20, 20], [0, 0, 0, 150, 150], [1, 0, 0, 300, 300]],
                     np.float32)
    # scales 1/4 and 1/16: the mapper numbers levels 2..4, so its level 3 is the second map
    # and its level 4 none
    missing = [features[0], features[2]]
    np.testing.assert_array_equal(fpn_levels(NUMPY, boxes[:, 1:], 2, 4, 2), [0, 1, -1])
    out = roiops.multi_scale_roi_align(missing, boxes, 2, [1 / 4, 1 / 16], sampling_ratio=2)
    np.testing.assert_array_equal(out, reference.multi_scale_roi_align(
        missing, boxes, [0, 1, -1], [1 / 4, 1 / 16], 2, 2))
    assert out[0].any() and out[1].any() and not out[2].any()
    coarse_first = roiops.multi_scale_roi_align(features[::-1], boxes, 2, SCALES[::-1],
                                                sampling_ratio=2)
    assert not coarse_first.any()  # levels 4..2: the clamp gives 2, below the first level


@pytest.mark.parametrize("layouts", ["read-only", "fortran and strided"])
def test_levels_of_different_layouts_give_the_bits_of_contiguous_ones(layouts):
    # the kernels index the levels as one Numba type (found by tests/test_fuzz.py: a crash)
    features, boxes = pyramid(np.float64), rois(len(LEVELS), np.float64)
    if layouts == "read-only":
        mixed = [f.copy() for f in features]
        mixed[1].flags.writeable = False
    else:
        mixed = [np.asfortranarray(features[0])] + [np.repeat(f, 2, axis=3)[..., ::2]
                                                     for f in features[1:]]
    out = roiops.multi_scale_roi_align(mixed, boxes, 2, SCALES, levels=LEVELS,
                                       sampling_ratio=2)
    np.testing.assert_array_equal(out, roiops.multi_scale_roi_align(
        features, boxes, 2, SCALES, levels=LEVELS, sampling_ratio=2))
    grads = RNG.standard_normal(out.shape)
    np.testing.assert_array_equal(
        roiops.multi_scale_roi_align_grad_boxes(grads, mixed, boxes, LEVELS, 2, SCALES,
                                                sampling_ratio=2),
        roiops.multi_scale_roi_align_grad_boxes(grads, features, boxes, LEVELS, 2, SCALES,
                                                sampling_ratio=2))


def test_level_constants_are_taken_as_numbers():
    features, boxes = pyramid(), rois(6)
    plain = roiops.multi_scale_roi_align(features, boxes, 2, SCALES, canonical_scale=224.0)
    for scale in (224, Fraction(224), np.float32(224)):
        np.testing.assert_array_equal(roiops.multi_scale_roi_align(
            features, boxes, 2, SCALES, canonical_scale=scale), plain)
    np.testing.assert_array_equal(roiops.multi_scale_roi_align(
        features, boxes, 2, SCALES, canonical_level=np.uint64(4)), plain)


def test_level_mapper_boundaries_and_constants():
    side = np.float32(224)
    below = np.nextafter(side, np.float32(0))
    boxes = np.array([[0, 0, side, side], [0, 0, below, below],
                      [0, 0, side * np.float32(2 ** -2e-6), side * np.float32(2 ** -2e-6)]],
                     np.float32)
    # the +1e-6 keeps a box one ulp below 224 on level 4; 2e-6 in log2 below drops it to 3
    np.testing.assert_array_equal(fpn_levels(NUMPY, boxes, 2, 5, 4), [2, 2, 1])
    np.testing.assert_array_equal(fpn_levels(NUMPY, boxes, 2, 5, 4, 112, 4), [3, 3, 2])
    np.testing.assert_array_equal(fpn_levels(NUMPY, boxes.astype(np.float16), 2, 5, 4)[:1],
                                  [2])
    assert level_range([0.25, 0.125, 0.0625, 0.03125]) == (2, 5)
    assert infer_scale(63, 256) == 0.25 and infer_scale(50, 800) == 0.0625


@pytest.mark.parametrize("call, error, text", [
    (lambda f, r: roiops.multi_scale_roi_align(f[0], r, 2, SCALES), TypeError, "features"),
    (lambda f, r: roiops.multi_scale_roi_align([], r, 2, []), ValueError, "at least one"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES[:2]), ValueError, "scales"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, [0.25, 0, 0.1]), ValueError,
     r"scales\[1\]"),
    (lambda f, r: roiops.multi_scale_roi_align([f[0], f[1][:, :2]], r, 2, SCALES[:2]),
     ValueError, r"features\[1\]"),
    (lambda f, r: roiops.multi_scale_roi_align([f[0], f[1].astype(np.float64)], r, 2,
                                               SCALES[:2]), TypeError, r"features\[1\]"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES, levels=np.full(len(r), 3)),
     ValueError, "levels must be in"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES, levels=np.zeros(2, int)),
     ValueError, "levels"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES, levels=np.zeros(len(r))),
     TypeError, "levels"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES, canonical_scale=-1),
     ValueError, "canonical_scale"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, SCALES, canonical_level=2**70),
     ValueError, "canonical_level must be within int64's range"),
    (lambda f, r: roiops.multi_scale_roi_align(f, r, 2, [2.0**1000, 0.125, 0.0625]),
     ValueError, r"scales\[0\] must stay finite when rounded to float32"),
    (lambda f, r: roiops.multi_scale_roi_align_grad_input(
        np.ones((len(r), 3, 2, 2), np.float32), r, np.zeros(len(r), int),
        [(2, 3, 2**40, 4)], 2, [0.25]), ValueError, r"level_shapes \(\(2, 3, 1099511627776"),
])
def test_malformed_arguments_name_the_argument(call, error, text):
    features, boxes = pyramid(), rois(4)
    before = [f.copy() for f in features]
    with pytest.raises(error, match=text):
        call(features, boxes)
    for f, copy in zip(features, before):
        np.testing.assert_array_equal(f, copy)
