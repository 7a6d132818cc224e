"""The native roi_pool API (``roiops.roi_pool``, ``roiops.roi_pool_grad_input``) on NumPy."""
import numpy as np
import pytest
from exact import assert_same_bits

import roiops
from roiops.roi_pool import reference

X = np.arange(2 * 3 * 6 * 7, dtype=np.float32).reshape(2, 3, 6, 7) % 11
ROIS = np.array([[0, 0, 0, 4, 3], [1.9, 2, 1, 6, 5], [0, 5, 5, 1, 1]], np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_result_dtype_and_float16_in_float32(dtype):
    out, argmax = roiops.roi_pool(X.astype(dtype), ROIS, (2, 3), spatial_scale=0.8,
                                  return_argmax=True)
    assert out.dtype == dtype and argmax.dtype == np.int32 and out.shape == (3, 3, 2, 3)
    expected, expected_argmax = reference.roi_pool(X.astype(dtype), ROIS, (2, 3), 0.8)
    assert_same_bits(out, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)


def test_gradient_sends_each_bin_to_its_maximum():
    out, argmax = roiops.roi_pool(X, ROIS, 2, return_argmax=True)
    grads = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    grad = roiops.roi_pool_grad_input(grads, argmax, ROIS, X.shape)
    assert grad.shape == X.shape and grad.dtype == np.float32 and grad.flags.c_contiguous
    np.testing.assert_allclose(grad.sum(), grads[argmax >= 0].sum(), rtol=1e-5)
    # int64 argmax, same result
    assert_same_bits(roiops.roi_pool_grad_input(grads, argmax.astype(np.int64), ROIS, X.shape),
                     grad)


def test_inputs_unchanged_and_out_reused():
    x, rois = X.copy(), ROIS.copy()
    out = np.full((3, 3, 2, 2), 7, np.float32)
    assert roiops.roi_pool(x, rois, 2, out=out) is out
    assert_same_bits(out, roiops.roi_pool(X, ROIS, 2))
    assert_same_bits(x, X)
    assert_same_bits(rois, ROIS)


def test_no_rois_gives_empty_results():
    out, argmax = roiops.roi_pool(X, ROIS[:0], 2, return_argmax=True)
    assert out.shape == argmax.shape == (0, 3, 2, 2)
    assert not roiops.roi_pool_grad_input(out, argmax, ROIS[:0], X.shape).any()


@pytest.mark.parametrize("call, error, message", [
    (lambda: roiops.roi_pool(X.tolist(), ROIS, 2), TypeError, "input must be a numpy.ndarray"),
    (lambda: roiops.roi_pool(X.astype(np.int32), ROIS, 2), TypeError, "input must have dtype"),
    (lambda: roiops.roi_pool(X, ROIS[:, :4], 2), ValueError, "rois must have shape"),
    (lambda: roiops.roi_pool(X, ROIS, 0), ValueError, "output_size must be an int or two positive"),
    (lambda: roiops.roi_pool(X, ROIS, 2, spatial_scale=np.nan), ValueError,
     "spatial_scale must be finite"),
    (lambda: roiops.roi_pool(X, ROIS, 2, spatial_scale=1e39), ValueError,
     "spatial_scale must stay finite"),
    (lambda: roiops.roi_pool(X, ROIS, 2, return_argmax=1), TypeError,
     "return_argmax must be a bool"),
    (lambda: roiops.roi_pool(X, np.where(np.arange(5) == 2, np.inf, ROIS).astype(np.float32),
                             2),
     ValueError, "rois must be finite, row 0"),
    (lambda: roiops.roi_pool(X, ROIS + np.array([2, 0, 0, 0, 0], np.float32), 2), ValueError,
     r"rois batch index must be in \[0, 2\)"),
    (lambda: roiops.roi_pool(X[:, :, :0], ROIS, 2), ValueError,
     "input must have height and width >= 1"),
    # a zero-stride view: no memory, but a plane of 2**31 elements
    (lambda: roiops.roi_pool(np.broadcast_to(np.float32(0), (1, 1, 2**16, 2**15)), ROIS[:0],
                             2),
     ValueError, r"input must have height \* width <= 2\*\*31 - 1 \(the argmax is an int32"),
])
def test_forward_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_planes_too_large_for_an_int32_argmax_are_refused():
    with pytest.raises(ValueError, match=r"input_shape must have height \* width <= 2\*\*31 - 1"):
        roiops.roi_pool_grad_input(np.zeros((0, 1, 1, 1), np.float32),
                                   np.zeros((0, 1, 1, 1), np.int32), ROIS[:0],
                                   (1, 1, 2**16, 2**15))


def _grad_call(grads=None, argmax=None, rois=ROIS, shape=X.shape):
    grads = np.ones((3, 3, 2, 2), np.float32) if grads is None else grads
    argmax = np.zeros((3, 3, 2, 2), np.int32) if argmax is None else argmax
    return roiops.roi_pool_grad_input(grads, argmax, rois, shape)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(argmax=np.zeros((3, 3, 2, 2), np.float32)), TypeError, "argmax must have dtype"),
    (dict(argmax=np.zeros((3, 3, 2), np.int32)), ValueError, "argmax must have shape"),
    (dict(argmax=np.zeros((3, 2, 2, 2), np.int32)), ValueError, "argmax must have shape"),
    (dict(grads=np.ones((3, 3, 2, 1), np.float32)), ValueError,
     "grads must have the shape of argmax"),
    (dict(argmax=np.full((3, 3, 2, 2), 42, np.int32)), ValueError,
     r"argmax must hold -1 or a flat index into a plane of 42 elements, \[0, 0, 0, 0\] is 42"),
    (dict(argmax=np.full((3, 3, 2, 2), -2, np.int32)), ValueError, "argmax must hold -1"),
    (dict(shape=(2, 3, 6)), ValueError, "input_shape must be 4"),
    (dict(rois=ROIS + np.array([5, 0, 0, 0, 0], np.float32)), ValueError,
     "rois batch index must be in"),
])
def test_gradient_errors_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        _grad_call(**kwargs)
