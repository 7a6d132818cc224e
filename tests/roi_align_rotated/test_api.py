"""roiops.roi_align_rotated and its gradients on NumPy arrays: the frameworks' published
numbers, the plain reference, the box gradient by finite differences, the validator."""
import math
import warnings

import numba
import numpy as np
import pytest
from exact import assert_same_bits

import roiops
from roiops.roi_align_rotated import reference

# mmcv's tests/test_ops/test_roi_align_rotated.py: (input, roi in radians) -> (output, input
# gradient of a sum) for output 2x2, scale 1, sampling_ratio 2, aligned.
MMCV_CASES = [
    ([[[[1., 2.], [3., 4.]]]], [[0., 0.5, 0.5, 1., 1., 0]],
     [[[[1.0, 1.25], [1.5, 1.75]]]], [[[[3.0625, 0.4375], [0.4375, 0.0625]]]]),
    ([[[[1., 2.], [3., 4.]]]], [[0., 0.5, 0.5, 1., 1., math.pi / 2]],
     [[[[1.5, 1], [1.75, 1.25]]]], [[[[3.0625, 0.4375], [0.4375, 0.0625]]]]),
    ([[[[1., 2.], [3., 4.]], [[4., 3.], [2., 1.]]]], [[0., 0.5, 0.5, 1., 1., 0]],
     [[[[1.0, 1.25], [1.5, 1.75]], [[4.0, 3.75], [3.5, 3.25]]]],
     [[[[3.0625, 0.4375], [0.4375, 0.0625]], [[3.0625, 0.4375], [0.4375, 0.0625]]]]),
    ([[[[1., 2., 5., 6.], [3., 4., 7., 8.], [9., 10., 13., 14.], [11., 12., 15., 16.]]]],
     [[0., 1.5, 1.5, 3., 3., 0]], [[[[1.9375, 4.75], [7.5625, 10.375]]]],
     [[[[0.47265625, 0.42968750, 0.42968750, 0.04296875],
        [0.42968750, 0.39062500, 0.39062500, 0.03906250],
        [0.42968750, 0.39062500, 0.39062500, 0.03906250],
        [0.04296875, 0.03906250, 0.03906250, 0.00390625]]]]),
    ([[[[1., 2., 5., 6.], [3., 4., 7., 8.], [9., 10., 13., 14.], [11., 12., 15., 16.]]]],
     [[0., 1.5, 1.5, 3., 3., math.pi / 2]], [[[[7.5625, 1.9375], [10.375, 4.75]]]],
     [[[[0.47265625, 0.42968750, 0.42968750, 0.04296875],
        [0.42968750, 0.39062500, 0.39062500, 0.03906250],
        [0.42968750, 0.39062500, 0.39062500, 0.03906250],
        [0.04296875, 0.03906250, 0.03906250, 0.00390625]]]]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(MMCV_CASES)))
def test_mmcv_published_numbers(case, dtype):
    x, rois, expected, expected_grad = (np.array(v, dtype) for v in MMCV_CASES[case])
    kw = dict(spatial_scale=1.0, sampling_ratio=2, convention="mmcv")
    out = roiops.roi_align_rotated(x, rois, (2, 2), **kw)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    grad = roiops.roi_align_rotated_grad_input(np.ones_like(out), rois, x.shape, 2, **kw)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)


def test_detectron2_published_numbers():
    # detectron2's test_forward_output_0_90_180_270: a 2x2 box at the centre of a 5x5 ramp,
    # 4x4 adaptive output; a box turned by 90 degrees counter-clockwise turns the result
    # clockwise.
    img = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    expected = np.array([[4.5, 5.0, 5.5, 6.0], [7.0, 7.5, 8.0, 8.5],
                         [9.5, 10.0, 10.5, 11.0], [12.0, 12.5, 13.0, 13.5]], np.float32)
    for quarter in range(4):
        rois = np.array([[0, 2, 2, 2, 2, 90 * quarter]], np.float32)
        out = roiops.roi_align_rotated(img, rois, (4, 4), sampling_ratio=0)[0, 0]
        np.testing.assert_allclose(out, np.rot90(expected, -quarter), atol=1e-5)
    # test_empty_box: a box of size 0 has no samples: zeros
    empty = roiops.roi_align_rotated(np.random.default_rng(0).random((1, 1, 5, 5)),
                                     np.array([[0, 2, 3, 0, 0, 0]], np.float64), 7)
    assert empty.shape == (1, 1, 7, 7) and not empty.any()


def _random_case(rng, convention, dtype, count=6):
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    turn = 360.0 if convention == "detectron2" else 2 * math.pi
    rois = np.stack([rng.integers(0, 2, count) + 0.5, rng.uniform(-2, 11, count),
                     rng.uniform(-2, 9, count), rng.uniform(0, 9, count),
                     rng.uniform(0, 9, count), rng.uniform(-turn, turn, count)], 1)
    rois[0, 5] = turn / 4  # an exact right angle
    rois[1, 3] = 0.0       # an empty grid
    return x, rois.astype(dtype)


OPTIONS = [("detectron2", True, False, 0.7, 0), ("mmcv", True, True, 1.0, 2),
           ("mmcv", False, False, 0.5, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("convention,aligned,clockwise,scale,ratio", OPTIONS)
def test_kernels_equal_the_reference(convention, aligned, clockwise, scale, ratio, dtype):
    rng = np.random.default_rng(7)
    x, rois = _random_case(rng, convention, dtype)
    before = x.copy(), rois.copy()
    kw = dict(spatial_scale=scale, sampling_ratio=ratio, aligned=aligned, clockwise=clockwise,
              convention=convention)
    args = (scale, ratio, aligned, clockwise, convention)
    out = roiops.roi_align_rotated(x, rois, (3, 2), **kw)
    assert_same_bits(out, reference.roi_align_rotated(x, rois, (3, 2), *args, F=dtype))
    grads = rng.standard_normal(out.shape).astype(dtype)
    grad = roiops.roi_align_rotated_grad_input(grads, rois, x.shape, (3, 2), **kw)
    assert_same_bits(grad, reference.roi_align_rotated_grad_input(grads, rois, x.shape, (3, 2),
                                                                  *args, F=dtype))
    boxes = roiops.roi_align_rotated_grad_boxes(grads, x, rois, (3, 2), **kw)
    np.testing.assert_allclose(boxes, reference.roi_align_rotated_grad_boxes(
        grads, x, rois, (3, 2), *args, F=dtype), rtol=1e-4, atol=1e-4)
    assert_same_bits(x, before[0])
    assert_same_bits(rois, before[1])


def test_results_do_not_depend_on_threads():
    rng = np.random.default_rng(3)
    x, rois = _random_case(rng, "mmcv", np.float32, count=40)
    x = np.repeat(x, 12, axis=1)  # several channel blocks
    grads = rng.standard_normal((40, 36, 2, 2)).astype(np.float32)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append((roiops.roi_align_rotated(x, rois, 2, convention="mmcv"),
                            roiops.roi_align_rotated_grad_input(grads, rois, x.shape, 2,
                                                                convention="mmcv"),
                            roiops.roi_align_rotated_grad_boxes(grads, x, rois, 2,
                                                                convention="mmcv")))
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(*results):
        assert_same_bits(a, b)


def test_float16_is_float32_rounded_once():
    rng = np.random.default_rng(4)
    x, rois = _random_case(rng, "detectron2", np.float16)
    out = roiops.roi_align_rotated(x, rois, 2)
    assert out.dtype == np.float16
    assert_same_bits(out, roiops.roi_align_rotated(x.astype(np.float32),
                                                   rois.astype(np.float32), 2)
                     .astype(np.float16))


@pytest.mark.parametrize("convention,degrees", [("detectron2", True), ("mmcv", False)])
def test_box_gradient_matches_finite_differences(convention, degrees):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 9, 10))
    # boxes inside the map, off the pixel grid, so the forward is smooth around them
    rois = np.array([[0, 4.3, 4.1, 4.7, 3.9, 17.0 if degrees else 0.3],
                     [0, 5.2, 4.6, 3.3, 5.1, -41.0 if degrees else -0.7]])
    grads = rng.standard_normal((2, 2, 3, 3))
    kw = dict(sampling_ratio=2, convention=convention, spatial_scale=0.9)
    analytic = roiops.roi_align_rotated_grad_boxes(grads, x, rois, 3, **kw)
    eps = 1e-6
    for k in range(2):
        for j in range(1, 6):
            up, down = rois.copy(), rois.copy()
            up[k, j] += eps
            down[k, j] -= eps
            numeric = (np.sum(grads * roiops.roi_align_rotated(x, up, 3, **kw))
                       - np.sum(grads * roiops.roi_align_rotated(x, down, 3, **kw))) / (2 * eps)
            assert analytic[k, j] == pytest.approx(numeric, rel=1e-5, abs=1e-6), (k, j)
    assert not analytic[:, 0].any()


def test_angle_zero_equals_roi_align():
    # With angle 0 (cos 1, sin 0) a rotated box samples the points of the axis-aligned box
    # (cx - w/2, cy - h/2, cx + w/2, cy + h/2); the sums associate differently (the centre is
    # added last), so the bits agree where the arithmetic is exact: dyadic centres, sizes
    # and bins (powers of two for the output, the grid and the sizes of the adaptive grid).
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 12, 13)).astype(np.float32)
    count = 20
    cx, cy = rng.integers(-8, 56, count) / 4, rng.integers(-8, 52, count) / 4
    w, h = rng.choice([0, 1, 2, 4, 8, 16], count), rng.choice([0, 1, 2, 4, 8, 16], count)
    batch = rng.integers(0, 2, count)
    rotated = np.stack([batch, cx, cy, w, h, np.zeros(count)], 1).astype(np.float32)
    boxes = np.stack([batch, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(
        np.float32)
    big = (w >= 1) & (h >= 1)
    for ratio in (0, 1, 2, 4):
        # detectron2 is torchvision's aligned RoI Align
        assert_same_bits(roiops.roi_align_rotated(x, rotated, (4, 2), sampling_ratio=ratio),
                         roiops.roi_align(x, boxes, (4, 2), sampling_ratio=ratio,
                                          aligned=True))
        # mmcv's legacy mode is torchvision's unaligned one where no size is held at 1
        # (mmcv holds the size about the centre, torchvision from the first corner)
        assert_same_bits(
            roiops.roi_align_rotated(x, rotated[big], (4, 2), sampling_ratio=ratio,
                                     aligned=False, convention="mmcv"),
            roiops.roi_align(x, boxes[big], (4, 2), sampling_ratio=ratio))


@pytest.mark.parametrize("call,error,match", [
    (lambda x, r: roiops.roi_align_rotated(x, r[:, :5], 2), ValueError, "rois must have shape"),
    (lambda x, r: roiops.roi_align_rotated(x, r, 2, convention="caffe"), ValueError,
     "convention must be one of"),
    (lambda x, r: roiops.roi_align_rotated(x, r, 2, aligned=False), ValueError,
     "aligned=False is an mmcv option"),
    (lambda x, r: roiops.roi_align_rotated(x, r, 2, clockwise=True), ValueError,
     "clockwise=True is an mmcv option"),
    (lambda x, r: roiops.roi_align_rotated(x, r, 2, clockwise=1, convention="mmcv"),
     TypeError, "clockwise must be a bool"),
    (lambda x, r: roiops.roi_align_rotated(x, r.astype(np.int32), 2), TypeError, "rois"),
    (lambda x, r: roiops.roi_align_rotated(x, r * [1, 1, 1, -1, 1, 1], 2), ValueError,
     "rois width and height times spatial_scale must be >= 0"),
    (lambda x, r: roiops.roi_align_rotated(x, r + [2, 0, 0, 0, 0, 0], 2), ValueError,
     "rois batch index"),
    (lambda x, r: roiops.roi_align_rotated(x, r * [1, 1, 1, 1, 1, np.inf], 2), ValueError,
     "rois must be finite"),
    (lambda x, r: roiops.roi_align_rotated(x, r * [1, 1, 1, 1e12, 1e12, 1], 2), ValueError,
     "samples per channel"),
    (lambda x, r: roiops.roi_align_rotated_grad_input(np.zeros((1, 1, 2, 3)), r, (1, 1, 4, 4),
                                                      2), ValueError, "grads must have shape"),
])
def test_errors_name_the_argument(call, error, match):
    x = np.zeros((1, 1, 4, 4), np.float32)
    rois = np.array([[0, 1, 1, 2, 2, 10]], np.float32)
    with pytest.raises(error, match=match):
        call(x, rois)


@pytest.mark.parametrize("convention", ["detectron2", "mmcv"])
def test_an_overflowing_scale_is_refused_without_a_warning(convention):
    # 1e39 is inf in float32: a zero size times it is NaN in the roi checks, which run
    # before the scale's; that multiplication used to warn ("invalid value").
    x = np.zeros((1, 1, 2, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="spatial_scale must stay finite"):
            roiops.roi_align_rotated(x, np.zeros((1, 6), np.float32), 1, spatial_scale=1e39,
                                     convention=convention)


def test_negative_sizes_are_held_at_one_in_mmcv_legacy_mode():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    negative = roiops.roi_align_rotated(x, np.array([[0, 2, 2, -3, -1, 0]], np.float64), 1,
                                        aligned=False, convention="mmcv")
    one = roiops.roi_align_rotated(x, np.array([[0, 2, 2, 1, 1, 0]], np.float64), 1, aligned=False,
                                   convention="mmcv")
    assert_same_bits(negative, one)


@pytest.mark.parametrize("rois_count,height", [(2, 40), (30, 6)])  # in place; channels last
def test_both_cpu_paths_equal_the_reference(rois_count, height):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 70, height, 9)).astype(np.float32)  # a vector chunk + a tail
    rois = np.stack([np.zeros(rois_count), rng.uniform(0, 9, rois_count),
                     rng.uniform(0, height, rois_count), rng.uniform(1, 4, rois_count),
                     rng.uniform(1, 4, rois_count), rng.uniform(-180, 180, rois_count)],
                    1).astype(np.float32)
    out = roiops.roi_align_rotated(x, rois, 2, sampling_ratio=2)
    assert_same_bits(out, reference.roi_align_rotated(x, rois, 2, 1.0, 2, F=np.float32))
    grads = rng.standard_normal(out.shape).astype(np.float32)
    assert_same_bits(roiops.roi_align_rotated_grad_input(grads, rois, x.shape, 2,
                                                         sampling_ratio=2),
                     reference.roi_align_rotated_grad_input(grads, rois, x.shape, 2, 1.0, 2,
                                                            F=np.float32))


def test_a_wide_adaptive_grid_on_the_dense_path():
    # 5000 sample columns in one bin, gathered from the channels-last copy
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    rois = np.array([[0, 2.5, 2.0, 5000.0, 0.5, 0.001], [0, 2.0, 1.5, 3.0, 2.0, 0.5]],
                    np.float32)
    kw = dict(aligned=True, clockwise=False, convention="mmcv")
    out = roiops.roi_align_rotated(x, rois, 1, **kw)
    assert_same_bits(out, reference.roi_align_rotated(x, rois, 1, 1.0, 0, F=np.float32, **kw))
    grads = rng.standard_normal(out.shape).astype(np.float32)
    assert_same_bits(roiops.roi_align_rotated_grad_input(grads, rois, x.shape, 1, **kw),
                     reference.roi_align_rotated_grad_input(grads, rois, x.shape, 1, 1.0, 0,
                                                            F=np.float32, **kw))
