"""The native crop_and_resize API: dtype rules, layouts and strides (docs/api.md)."""
import numpy as np
import pytest

import roiops

RNG = np.random.default_rng(11)
BOXES = np.array([[0.1, 0.2, 0.8, 0.9], [0.9, 0.7, -0.2, 0.1], [0.5, 0.5, 0.5, 0.5]], np.float32)
INDICES = np.array([1, 0, 1])


def image(dtype, shape=(2, 7, 9, 3)):
    values = RNG.uniform(-100, 100, shape)
    if np.dtype(dtype).kind == "u":
        values = np.abs(values)
    return values.astype(dtype)


@pytest.mark.parametrize("dtype, expected", [
    (np.uint8, np.float32), (np.int16, np.float32), (np.int64, np.float32),
    (np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64),
])
def test_result_dtype(dtype, expected):
    assert roiops.crop_and_resize(image(dtype), BOXES, INDICES, (3, 2)).dtype == expected


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
def test_float16_is_computed_in_float32_and_rounded_once(method):
    half = image(np.float16)
    expected = roiops.crop_and_resize(half.astype(np.float32), BOXES, INDICES, (4, 5),
                                      method=method, extrapolation_value=-1.5)
    got = roiops.crop_and_resize(half, BOXES, INDICES, (4, 5), method=method,
                                 extrapolation_value=-1.5)
    np.testing.assert_array_equal(got, expected.astype(np.float16))


def test_float64_is_computed_in_float64():
    data = image(np.float64)
    got = roiops.crop_and_resize(data, BOXES, INDICES, (4, 5))
    single = roiops.crop_and_resize(data.astype(np.float32), BOXES, INDICES, (4, 5))
    np.testing.assert_allclose(got, single, rtol=1e-5, atol=1e-4)
    assert not np.array_equal(got, single.astype(np.float64))


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
def test_nchw_equals_nhwc(method):
    data = image(np.float32)
    nhwc = roiops.crop_and_resize(data, BOXES, INDICES, (3, 4), method=method)
    nchw = roiops.crop_and_resize(np.ascontiguousarray(data.transpose(0, 3, 1, 2)), BOXES,
                                  INDICES, (3, 4), method=method, data_format="NCHW")
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    grads = RNG.standard_normal(nhwc.shape).astype(np.float32)
    grads_nchw = np.ascontiguousarray(grads.transpose(0, 3, 1, 2))
    image_grad = roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, data.shape,
                                                   method=method)
    image_grad_nchw = roiops.crop_and_resize_grad_image(
        grads_nchw, BOXES, INDICES, (2, 3, 7, 9), method=method, data_format="NCHW")
    np.testing.assert_array_equal(image_grad_nchw, image_grad.transpose(0, 3, 1, 2))
    box_grad = roiops.crop_and_resize_grad_boxes(grads, data, BOXES, INDICES)
    box_grad_nchw = roiops.crop_and_resize_grad_boxes(
        grads_nchw, np.ascontiguousarray(data.transpose(0, 3, 1, 2)), BOXES, INDICES,
        data_format="NCHW")
    np.testing.assert_array_equal(box_grad_nchw, box_grad)


@pytest.mark.parametrize("layout", ["fortran", "negative", "sliced"])
def test_strided_arrays_equal_contiguous(layout):
    data = image(np.float32, (2, 7, 9, 6))
    grads = RNG.standard_normal((3, 3, 4, 6)).astype(np.float32)
    boxes = np.repeat(BOXES, 2, axis=1)  # [N, 8]: every other column is a box coordinate
    if layout == "fortran":
        views = np.asfortranarray(data), np.asfortranarray(grads), np.asfortranarray(BOXES)
    elif layout == "negative":
        views = (np.flip(np.flip(data, 0).copy(), 0), np.flip(np.flip(grads, 3).copy(), 3),
                 np.flip(np.flip(BOXES, 0).copy(), 0))
        assert views[0].strides[0] < 0 and views[1].strides[3] < 0
    else:
        views = data[:, :, :, ::2], grads[:, :, :, ::2], boxes[:, ::2]
    contiguous = [np.ascontiguousarray(v) for v in views]
    for method in ("bilinear", "nearest", "bilinear_v2"):
        np.testing.assert_array_equal(
            roiops.crop_and_resize(views[0], views[2], INDICES, (3, 4), method=method),
            roiops.crop_and_resize(contiguous[0], contiguous[2], INDICES, (3, 4), method=method))
        np.testing.assert_array_equal(
            roiops.crop_and_resize_grad_image(views[1], views[2], INDICES, views[0].shape,
                                              method=method),
            roiops.crop_and_resize_grad_image(contiguous[1], contiguous[2], INDICES,
                                              views[0].shape, method=method))
    np.testing.assert_array_equal(
        roiops.crop_and_resize_grad_boxes(views[1], views[0], views[2], INDICES),
        roiops.crop_and_resize_grad_boxes(contiguous[1], contiguous[0], contiguous[2], INDICES))


def test_grad_image_dtype_option():
    grads = RNG.standard_normal((3, 3, 4, 3)).astype(np.float32)
    single = roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (2, 7, 9, 3))
    half = roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (2, 7, 9, 3),
                                             dtype="float16")
    assert single.dtype == np.float32 and half.dtype == np.float16
    np.testing.assert_array_equal(half, single.astype(np.float16))  # rounded once
    double = roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (2, 7, 9, 3),
                                               dtype=np.float64)
    assert double.dtype == np.float64
    np.testing.assert_allclose(double, single, rtol=1e-5, atol=1e-5)


def test_boxes_of_any_float_dtype_are_converted_to_the_compute_type():
    data = image(np.float32)
    np.testing.assert_array_equal(
        roiops.crop_and_resize(data, BOXES.astype(np.float64), INDICES, (3, 4)),
        roiops.crop_and_resize(data, BOXES, INDICES, (3, 4)))
