"""Direct tests of the Numba crop_and_resize kernels (roiops.crop_and_resize.cpu).

Hand-checkable values, the peers' documented corner cases, layout and thread-count invariance,
and the gradients against the plain reference (``roiops.crop_and_resize.reference``): the order
of the ``+=`` is part of the contract, so the scatter is compared bit for bit with the
reference's loop in that order.
"""
import numba
import numpy as np
import pytest
from exact import assert_same_bits

from roiops.crop_and_resize import reference
from roiops.crop_and_resize.cpu import _can_stream, forward, grad_boxes, grad_image

F32 = np.float32
BILINEAR, NEAREST, BILINEAR_V2 = 0, 1, 2  # the kernels' method codes
METHODS = [BILINEAR, NEAREST, BILINEAR_V2]
METHOD_NAMES = {BILINEAR: "bilinear", NEAREST: "nearest", BILINEAR_V2: "bilinear_v2"}


def run_forward(image, boxes, crop, method=BILINEAR, extrapolation=0.0, box_indices=None,
                F=F32, out_half=False):
    boxes = np.asarray(boxes, F)
    if box_indices is None:
        box_indices = np.zeros(len(boxes), np.int64)
    out = np.empty((len(boxes), *crop, image.shape[3]), np.uint16 if out_half else F)
    forward(image, boxes, np.asarray(box_indices, np.int64), method, F(extrapolation), out,
            out_half, F)
    return out


def run_grad_image(grads, boxes, box_indices, image_shape, method=BILINEAR, accumulate=F32,
                   half=False, F=F32):
    out = np.zeros(image_shape, accumulate)
    grad_image(grads, np.asarray(boxes, F), np.asarray(box_indices, np.int64), method, out,
               half, F)
    return out


def run_grad_boxes(grads, image, boxes, box_indices, crop1_in_double=True, F=F32):
    out = np.zeros((len(boxes), 4), F)
    grad_boxes(grads, image, np.asarray(boxes, F), np.asarray(box_indices, np.int64),
               crop1_in_double, out, F)
    return out


def ramp(height, width, depth=1, batch=1, dtype=F32):
    """image[b, y, x, d] = 100*b + 10*y + x + d/2 (exact in every float type)."""
    b, y, x, d = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width),
                             np.arange(depth), indexing="ij")
    return (100 * b + 10 * y + x + d / 2).astype(dtype)


def random_case(rng, batch=2, height=9, width=11, depth=3, num_boxes=5, crop=(4, 6)):
    image = rng.standard_normal((batch, height, width, depth)).astype(F32)
    boxes = rng.uniform(-0.3, 1.3, (num_boxes, 4)).astype(F32)
    box_indices = rng.integers(0, batch, num_boxes)
    grads = rng.standard_normal((num_boxes, *crop, depth)).astype(F32)
    return image, boxes, box_indices, grads


# ---------------------------------------------------------------------------------------------
# Forward: hand-checkable values and the peers' corner cases
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", [BILINEAR, NEAREST])
def test_identity_box_reproduces_the_image(method):
    image = ramp(4, 5, depth=2)
    out = run_forward(image, [[0, 0, 1, 1]], (4, 5), method)
    np.testing.assert_array_equal(out[0], image[0])


def test_bilinear_midpoints_on_a_ramp():
    image = ramp(3, 3)
    # Rows 0, 0.5, ..., 2 and columns 0, 0.5, ..., 2: the ramp is linear, so 10*y + x.
    out = run_forward(image, [[0, 0, 1, 1]], (5, 5))
    y, x = np.meshgrid(np.arange(5) / 2, np.arange(5) / 2, indexing="ij")
    np.testing.assert_array_equal(out[0, :, :, 0], (10 * y + x).astype(F32))


def test_flipped_box_mirrors_the_crop():
    image = ramp(5, 6, depth=2)
    straight = run_forward(image, [[0.1, 0.2, 0.9, 0.7]], (5, 4))
    flipped = run_forward(image, [[0.9, 0.7, 0.1, 0.2]], (5, 4))
    # Mirrored sample positions are the same floats only up to rounding; compare closely and
    # check the exact mirror on a box whose coordinates are exact.
    np.testing.assert_allclose(flipped[0], straight[0, ::-1, ::-1], rtol=0, atol=1e-4)
    exact = run_forward(image, [[1, 1, 0, 0]], (5, 6))
    np.testing.assert_array_equal(exact[0], image[0, ::-1, ::-1])


def test_crop_size_one_samples_the_box_centre():
    image = ramp(5, 5)
    out = run_forward(image, [[0.25, 0.0, 0.75, 1.0]], (1, 1))
    assert out[0, 0, 0, 0] == 10 * 2 + 2  # centre (0.5*(0.25+0.75)*4, 0.5*1*4) = (2, 2)


def test_nearest_ties_round_away_from_zero_and_just_below_half_rounds_down():
    image = ramp(2, 1)  # row values 0 and 10
    # Crop size 1: coordinate 0.5*(y1+y2)*(H-1) = 0.5 exactly -> row 1.
    assert run_forward(image, [[0.5, 0, 0.5, 0]], (1, 1), NEAREST)[0, 0, 0, 0] == 10
    # 0.49999997 (the float below 0.5): floor(c + 0.5) would give row 1; roundf gives row 0.
    below = np.nextafter(F32(0.5), F32(0))
    assert run_forward(image, [[below, 0, below, 0]], (1, 1), NEAREST)[0, 0, 0, 0] == 0


def test_height_one_never_extrapolates():
    image = ramp(1, 4, depth=1)
    out = run_forward(image, [[-5.0, 0.0, 7.0, 1.0]], (3, 4), BILINEAR, extrapolation=-1)
    np.testing.assert_array_equal(out[0, :, :, 0], np.tile(image[0, 0, :, 0], (3, 1)))


def test_out_of_range_samples_are_extrapolated_per_row_and_column():
    image = ramp(4, 4)
    out = run_forward(image, [[-0.5, 0.0, 0.5, 2.0]], (3, 4), BILINEAR, extrapolation=-7)
    # Rows at -1.5, 0, 1.5; columns at 0, 2, 4, 6 (only 0 and 2 inside).
    assert (out[0, 0] == -7).all()
    assert (out[0, :, 2:] == -7).all()
    assert out[0, 1, 0, 0] == 0 and out[0, 1, 1, 0] == 2 and out[0, 2, 1, 0] == 17


def test_product_first_scale_drops_the_last_row():
    # docs/tensorflow.md#boxes-ending-at-1: H=4, crop 22 -> (22-1)*fl(3/21) lands one ulp
    # above 3, so the last row is extrapolated although the box ends at 1.0.
    image = ramp(4, 1)
    out = run_forward(image, [[0, 0, 1, 1]], (22, 1), BILINEAR, extrapolation=-7)
    assert out[0, -1, 0, 0] == -7
    assert out[0, -2, 0, 0] != -7


def test_inf_pixel_sampled_on_the_grid_gives_nan_in_bilinear_only():
    image = ramp(3, 3)
    image[0, 1, 1, 0] = np.inf
    box = [[0, 0, 1, 1]]
    assert np.isnan(run_forward(image, box, (3, 3), BILINEAR)[0, 1, 1, 0])
    assert run_forward(image, box, (3, 3), NEAREST)[0, 1, 1, 0] == np.inf


def test_bilinear_v2_window_and_edge_clamping():
    image = np.array([[0, 1], [2, 3]], F32).reshape(1, 2, 2, 1)
    out = run_forward(image, [[0, 0, 1, 1]], (2, 2), BILINEAR_V2, extrapolation=-9)
    # Window rows [0, trunc(1*2)=2] (3 rows), centres at 0.25 and 1.75; row index 2 clamps to
    # the image's last row, so the second sample is pure edge.
    np.testing.assert_array_equal(out[0, :, :, 0], [[0.75, 1.5], [2.25, 3.0]])


def test_bilinear_v2_never_extrapolates_and_replicates_edges():
    image = np.full((1, 3, 4, 2), 5.0, F32)
    out = run_forward(image, [[-0.7, -2.0, 1.6, 3.0], [0.9, 0.8, 0.1, 0.2]], (5, 3),
                      BILINEAR_V2, extrapolation=-9, box_indices=[0, 0])
    # The unclamped weights still sum to one, up to the rounding of the four-term sum.
    np.testing.assert_allclose(out, 5.0, rtol=2e-7)


@pytest.mark.parametrize("method", METHODS)
def test_overflowing_boxes_extrapolate_without_crashing(method):
    image = ramp(5, 5, depth=2)
    boxes = [[0.0, 0.0, 3e38, 1.0], [-3e38, 0.0, 3e38, 1.0], [0.2, 0.2, 0.8, 3e38]]
    out = run_forward(image, boxes, (3, 4), method, extrapolation=-1, box_indices=[0, 0, 0])
    if method == BILINEAR_V2:  # clamped window: edge pixels, never extrapolated
        assert np.isfinite(out).all() and (out >= 0).all()
    else:
        # y2 = 3e38 gives an infinite step: 0*inf = NaN on row 0, +-inf after: all outside.
        assert (out[:2] == -1).all()
        assert (out[2, :, 1:] == -1).all()  # columns 1.. are NaN or +inf
    grads = np.ones((3, 3, 4, 2), F32)
    gi = run_grad_image(grads, boxes, [0, 0, 0], image.shape, method)
    gb = run_grad_boxes(grads, image, boxes, [0, 0, 0])
    assert np.isfinite(gi).all() and np.isfinite(gb).all()
    if method != BILINEAR_V2:
        assert (gb[:2] == 0).all()


def test_half_output_equals_rounding_the_float32_output():
    rng = np.random.default_rng(1)
    image, boxes, box_indices, _ = random_case(rng)
    image *= 3000  # values beyond the float16 precision, some beyond its range
    image[0, 0, 0, 0] = 1e6
    for method in METHODS:
        full = run_forward(image, boxes, (4, 6), method, 0.1, box_indices)
        half = run_forward(image, boxes, (4, 6), method, 0.1, box_indices, out_half=True)
        with np.errstate(over="ignore"):
            assert_same_bits(half.view(np.float16), full.astype(np.float16))


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------

def strided_views(image, boxes, box_indices, grads):
    """Non-contiguous copies: NCHW data seen as NHWC, negative strides, Fortran order."""
    image_view = np.ascontiguousarray(image.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    boxes_view = np.asfortranarray(np.ascontiguousarray(boxes[::-1]))[::-1]
    indices_view = np.ascontiguousarray(np.repeat(box_indices[::-1], 2))[::-2]
    grads_view = np.ascontiguousarray(grads[:, ::-1, ::-1].transpose(0, 3, 1, 2))
    grads_view = grads_view.transpose(0, 2, 3, 1)[:, ::-1, ::-1]
    for original, view in [(image, image_view), (boxes, boxes_view),
                           (box_indices, indices_view), (grads, grads_view)]:
        assert np.array_equal(original, view) and not view.flags.c_contiguous
    return image_view, boxes_view, indices_view.astype(np.int64), grads_view


@pytest.mark.parametrize("method", METHODS)
def test_strided_inputs_and_outputs_match_contiguous(method):
    rng = np.random.default_rng(2)
    image, boxes, box_indices, grads = random_case(rng)
    image_v, boxes_v, indices_v, grads_v = strided_views(image, boxes, box_indices, grads)

    expected = run_forward(image, boxes, (4, 6), method, -1, box_indices)
    out_v = np.empty((len(boxes), image.shape[3], 4, 6), F32).transpose(0, 2, 3, 1)
    forward(image_v, boxes_v, indices_v, method, F32(-1), out_v, False, F32)
    assert_same_bits(out_v, expected)

    expected = run_grad_image(grads, boxes, box_indices, image.shape, method)
    out_v = np.zeros(image.shape, F32)[:, ::-1].copy()[:, ::-1]
    grad_image(grads_v, boxes_v, indices_v, method, out_v, False, F32)
    assert_same_bits(out_v, expected)

    expected = run_grad_boxes(grads, image, boxes, box_indices)
    out_v = np.zeros((4, len(boxes)), F32).T
    grad_boxes(grads_v, image_v, boxes_v, indices_v, True, out_v, F32)
    assert_same_bits(out_v, expected)


@pytest.mark.parametrize("image_dtype, F", [(F32, F32), (np.float64, np.float64),
                                             (np.uint8, F32)])
def test_streamed_forward_equals_the_cached_path(image_dtype, F):
    """Outputs past the size threshold take streaming stores when they are aligned; an output
    one element off alignment takes the plain stores. Both give the same bits, including
    extrapolated rows and columns and flipped boxes, and so does one thread."""
    rng = np.random.default_rng(7)
    depth = 64
    crop = (16, 16)
    num_boxes = (16 << 20) // (crop[0] * crop[1] * depth * np.dtype(F).itemsize)
    image = (rng.random((2, 23, 19, depth)) * 200).astype(image_dtype)
    boxes = rng.uniform(-0.4, 1.4, (num_boxes, 4)).astype(F)
    box_indices = rng.integers(0, 2, num_boxes)
    shape = (num_boxes, *crop, depth)
    streamed = np.empty(shape, F)
    shifted = np.empty(streamed.size + 1, F)[1:].reshape(shape)
    if streamed.ctypes.data % 16:  # NumPy aligns to 16 bytes; make sure of it
        streamed, shifted = shifted, streamed
    assert _can_stream(streamed) and not _can_stream(shifted)
    for out in (streamed, shifted):
        forward(image, boxes, box_indices, BILINEAR, F(-3), out, False, F)
    assert (streamed == -3).any()
    assert_same_bits(streamed, shifted)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = np.empty(shape, F)
        forward(image, boxes, box_indices, BILINEAR, F(-3), single, False, F)
    finally:
        numba.set_num_threads(previous)
    assert _can_stream(single)
    assert_same_bits(single, streamed)


# ---------------------------------------------------------------------------------------------
# Gradient w.r.t. the image
# ---------------------------------------------------------------------------------------------

def overlapping_case(rng, batch=2, height=37, width=29, depth=2, num_boxes=8, crop=(9, 7)):
    """Many boxes over the same pixels. With one image, grad_image splits it into row bands
    and some samples straddle two tiles; with two, each image is one tile."""
    image, boxes, _, grads = random_case(rng, batch, height, width, depth, num_boxes, crop)
    boxes[: num_boxes // 2] = boxes[0]  # identical boxes: every pixel gets repeated updates
    box_indices = np.zeros(num_boxes, np.int64)
    box_indices[-2:] = batch - 1
    grads *= 1000
    return image, boxes, box_indices, grads


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("method", [BILINEAR, NEAREST])
@pytest.mark.parametrize("accumulate, half", [(F32, False), (np.float64, False), (F32, True)])
def test_grad_image_equals_the_reference(method, accumulate, half, batch):
    rng = np.random.default_rng(3)
    image, boxes, box_indices, grads = overlapping_case(rng, batch)
    got = run_grad_image(grads, boxes, box_indices, image.shape, method, accumulate, half)
    # half: the kernel adds in float16 and keeps the sums in a float32 array
    expected = reference.crop_and_resize_grad_image(
        grads, boxes, box_indices, image.shape, METHOD_NAMES[method],
        accumulate=np.float16 if half else accumulate)
    if half:
        assert_same_bits(got.astype(np.float16), expected)
        assert_same_bits(got, got.astype(np.float16).astype(F32))  # every value is a half
    else:
        assert_same_bits(got, expected)


def test_float64_accumulation_differs_from_float32():
    rng = np.random.default_rng(4)
    image, boxes, box_indices, grads = overlapping_case(rng)
    wide = run_grad_image(grads, boxes, box_indices, image.shape, accumulate=np.float64)
    narrow = run_grad_image(grads, boxes, box_indices, image.shape)
    assert wide.dtype == np.float64 and not np.array_equal(wide.astype(F32), narrow)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("half", [False, True])
def test_grad_image_is_independent_of_the_thread_count(method, half, batch):
    rng = np.random.default_rng(5)
    image, boxes, box_indices, grads = overlapping_case(rng, batch, height=70, width=40,
                                                        num_boxes=24)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_grad_image(grads, boxes, box_indices, image.shape, method, half=half)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run_grad_image(grads, boxes, box_indices, image.shape, method, half=half)
    finally:
        numba.set_num_threads(previous)
    assert_same_bits(one, many)


def test_grad_image_nearest_sends_the_whole_gradient_to_the_rounded_pixel():
    grads = np.arange(1, 5, dtype=F32).reshape(1, 2, 2, 1)
    out = run_grad_image(grads, [[0, 0, 1, 1]], [0], (1, 3, 3, 1), NEAREST)
    # Sample rows/columns 0 and 2.
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


def test_grad_image_bilinear_v2_is_the_adjoint_of_the_forward():
    rng = np.random.default_rng(6)
    image, boxes, box_indices, grads = random_case(rng, height=6, width=7, num_boxes=4,
                                                   crop=(5, 3))
    crops = run_forward(image, boxes, (5, 3), BILINEAR_V2, box_indices=box_indices)
    adjoint = run_grad_image(grads, boxes, box_indices, image.shape, BILINEAR_V2,
                             accumulate=np.float64)
    # <forward(image), grads> == <image, adjoint(grads)> for a linear map (float32 rounding).
    lhs = (crops.astype(np.float64) * grads).sum()
    rhs = (image.astype(np.float64) * adjoint).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_grad_image_with_inf_gradient_propagates_nan_through_zero_weights():
    grads = np.full((1, 1, 1, 1), np.inf, F32)
    # Sample exactly on pixel (1, 1): the zero-weight corner updates add inf*0 = NaN.
    out = run_grad_image(grads, [[0.5, 0.5, 0.5, 0.5]], [0], (1, 3, 3, 1))
    assert np.isnan(out[0, 1, 1, 0])
    others = np.ones((3, 3), bool)
    others[1, 1] = False
    assert (out[0, :, :, 0][others] == 0).all()


# ---------------------------------------------------------------------------------------------
# Gradient w.r.t. the boxes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("crop", [(4, 6), (1, 5), (3, 1), (1, 1)])
@pytest.mark.parametrize("crop1_in_double", [True, False])
def test_grad_boxes_equals_the_reference(crop, crop1_in_double):
    rng = np.random.default_rng(7)
    image, boxes, box_indices, grads = random_case(rng, crop=crop)
    # int64 beyond 2**24 also checks that pixels are read as float32 (rounded) first.
    image = (image * 2.0 ** 30).astype(np.int64)
    got = run_grad_boxes(grads, image, boxes, box_indices, crop1_in_double)
    # crop size 1: TensorFlow accumulates in double, MindSpore in float32
    expected = reference.crop_and_resize_grad_boxes(
        grads, image, boxes, box_indices,
        crop1_rule="tensorflow" if crop1_in_double else "mindspore")
    assert_same_bits(got, expected)


def test_grad_boxes_on_a_ramp():
    image = ramp(5, 5)  # d/dy = 10, d/dx = 1 between pixels
    grads = np.ones((1, 2, 2, 1), F32)
    # Samples at 1.2 and 2.8 (not on the grid: there TL == BL and the derivative is 0).
    out = run_grad_boxes(grads, image, [[0.3, 0.3, 0.7, 0.7]], [0])
    # d in_y/d y1 = (H-1) - y*r is 4, 0 and d in_y/d y2 = y*r is 0, 4 (r = 4); two columns.
    np.testing.assert_array_equal(out[0], [10 * 4 * 2, 1 * 4 * 2, 10 * 4 * 2, 1 * 4 * 2])


def test_grad_boxes_uses_its_own_coordinate_recipe():
    # docs/tensorflow.md#box-gradient: the forward samples row 41.0, GradBoxes 41.000004 (skipped).
    height, crop = 42, 32
    image = np.zeros((1, height, 1, 1), F32)
    image[0, :, 0, 0] = np.arange(height) ** 2
    boxes = np.array([[0.13489336, 0, 1, 0]], F32)
    grads = np.zeros((1, crop, 1, 1), F32)
    grads[0, -1] = 1
    assert run_forward(image, boxes, (crop, 1), extrapolation=-1)[0, -1, 0, 0] != -1
    np.testing.assert_array_equal(run_grad_boxes(grads, image, boxes, [0]), 0)
    assert run_grad_image(grads, boxes, [0], image.shape).sum() == 1
