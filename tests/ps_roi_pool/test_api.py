"""The native ps_roi_pool API: position-sensitive shapes, dtypes, errors, out=."""
import numpy as np
import pytest

import roiops

RNG = np.random.default_rng(8)
ROIS = np.array([[0, 1.5, 2.0, 11.0, 8.5], [1, -3.0, 4.0, 6.0, 30.0]], np.float32)


def maps(dtype=np.float32, shape=(2, 18, 10, 13)):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_result_dtype_and_shape(dtype):
    out = roiops.ps_roi_pool(maps(dtype), ROIS, (3, 2))
    assert out.dtype == dtype and out.shape == (2, 3, 3, 2)


def test_float16_is_computed_in_float32_and_rounded_once():
    half = maps(np.float16)
    single = roiops.ps_roi_pool(half.astype(np.float32), ROIS, 3, spatial_scale=0.5)
    np.testing.assert_array_equal(roiops.ps_roi_pool(half, ROIS, 3, spatial_scale=0.5),
                                  single.astype(np.float16))


@pytest.mark.parametrize("call, error, match", [
    (lambda: roiops.ps_roi_pool(maps(shape=(1, 10, 5, 5)), ROIS[:1], 3), ValueError,
     "input channels must be a multiple"),
    (lambda: roiops.ps_roi_pool(maps(), ROIS[:, :4], 3), ValueError, "rois must have shape"),
    (lambda: roiops.ps_roi_pool(maps(), ROIS, 3, spatial_scale=float("nan")), ValueError,
     "spatial_scale"),
    (lambda: roiops.ps_roi_pool(maps().astype(np.int32), ROIS, 3), TypeError, "input"),
    (lambda: roiops.ps_roi_pool_grad_input(np.zeros((2, 1, 3, 3), np.float32), ROIS,
                                           (2, 18, 5, 5), 3), ValueError, "grads"),
    (lambda: roiops.ps_roi_pool_grad_input(np.zeros((2, 2, 3, 3), np.float32), ROIS,
                                           (1, 18, 5, 5), 3), ValueError, "batch index"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_inputs_unchanged_strides_and_out():
    x = maps()
    expected = roiops.ps_roi_pool(x, ROIS, 3)
    strided = np.asfortranarray(x)
    np.testing.assert_array_equal(roiops.ps_roi_pool(strided, ROIS, 3), expected)
    np.testing.assert_array_equal(x, strided)
    out = np.empty_like(expected)
    assert roiops.ps_roi_pool(x, ROIS, 3, out=out) is out
    np.testing.assert_array_equal(out, expected)
