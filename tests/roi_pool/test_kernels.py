"""The roi_pool Numba kernels (``roiops.roi_pool.cpu``) against the plain reference.

The reference (``roiops.roi_pool.reference``) is written from docs/roi_pool.md, independently of
the kernels; torchvision's own results are in tests/compat/test_golden_roi_pool.py. Both forward
paths run: a few rois scan the NCHW planes in place, dense rois a channels-last copy (of the
whole maps when the channels are few, else of each task's channel block).
"""
import numba
import numpy as np
import pytest
from exact import assert_same_bits

from roiops.roi_pool import cpu, reference

F32, F64 = np.float32, np.float64


def _forward(x, rois, output_size, scale=1.0, half=False):
    """``(output, argmax)`` of the forward kernel (float16 maps: computed in float32)."""
    F = F64 if x.dtype == F64 else F32
    if half:
        rois = rois.astype(np.float16)
        scale = float(np.float16(np.float32(scale)))
    out = np.empty((rois.shape[0], x.shape[1]) + tuple(output_size), x.dtype)
    argmax = np.empty(out.shape, np.int32)
    target = out.view(np.uint16) if x.dtype == np.float16 else out
    cpu.forward(x.astype(F), rois.astype(F), np.trunc(rois[:, 0]).astype(np.int64), F(scale),
                half, target, x.dtype == np.float16, argmax, True, F)
    return out, argmax


def _grad_input(grads, argmax, rois, input_shape, half=False):
    F = F64 if grads.dtype == F64 else F32
    out = np.zeros(input_shape, F)
    cpu.grad_input(grads.astype(F), argmax, np.trunc(rois[:, 0]).astype(np.int64), half, out)
    return out.astype(grads.dtype)


def _case(rng, dtype, num_rois, size=(2, 3, 9, 11)):
    """A map with ties, NaN and infinities, and rois inside, across and outside it."""
    x = rng.integers(-3, 4, size).astype(dtype)
    x[rng.random(size) < 0.1] = np.nan
    x[rng.random(size) < 0.05] = -np.inf
    x[rng.random(size) < 0.05] = np.inf
    corners = rng.uniform(-6, 16, (num_rois, 4))
    batch = rng.integers(0, size[0], (num_rois, 1)) + 0.5
    return x, np.concatenate([batch, corners], axis=1).astype(dtype)


@pytest.mark.parametrize("dtype", [F32, F64, np.float16])
@pytest.mark.parametrize("num_rois", [3, 60])  # in place; channels-last (dense rois)
def test_matches_reference_bit_for_bit(dtype, num_rois):
    rng = np.random.default_rng(num_rois)
    x, rois = _case(rng, dtype, num_rois)
    out, argmax = _forward(x, rois, (3, 4), 0.75)
    expected, expected_argmax = reference.roi_pool(x, rois, (3, 4), 0.75)
    assert_same_bits(out, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)
    grads = rng.standard_normal(out.shape).astype(dtype)
    assert_same_bits(_grad_input(grads, argmax, rois, x.shape),
                     reference.roi_pool_grad_input(grads, argmax, rois, x.shape))


@pytest.mark.parametrize("num_rois", [3, 60])
def test_half_arithmetic_matches_reference(num_rois):
    rng = np.random.default_rng(7)
    x, rois = _case(rng, np.float16, num_rois, (1, 2, 40, 37))
    rois[:, 1:] *= 3
    out, argmax = _forward(x, rois, (5, 3), 1.3, half=True)
    expected, expected_argmax = reference.roi_pool(x, rois.astype(np.float16), (5, 3), 1.3,
                                                   half=True)
    assert_same_bits(out, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)
    grads = rng.standard_normal(out.shape).astype(np.float16) * 100
    assert_same_bits(_grad_input(grads, argmax, rois, x.shape, half=True),
                     reference.roi_pool_grad_input(grads, argmax, rois, x.shape, half=True))


def test_ties_keep_the_first_pixel_and_nan_never_wins():
    x = np.array([[[[1, np.nan, 2], [2, 0, np.nan]]]], F32)
    rois = np.array([[0, 0, 0, 2, 1]], F32)
    out, argmax = _forward(x, rois, (1, 1))
    assert out[0, 0, 0, 0] == 2 and argmax[0, 0, 0, 0] == 2  # (0, 2) before (1, 0)
    x[:] = np.nan
    out, argmax = _forward(x, rois, (1, 1))
    assert out[0, 0, 0, 0] == np.finfo(F32).min and argmax[0, 0, 0, 0] == -1


def test_empty_bins_are_zero_without_argmax():
    x = np.full((1, 1, 4, 4), -5, F32)
    rois = np.array([[0, 10, 10, 12, 12], [0, -9, -9, -5, -5]], F32)  # beyond both edges
    out, argmax = _forward(x, rois, (2, 2))
    assert not out.any() and (argmax == -1).all()


def test_rounding_is_half_away_from_zero():
    # x1 * 0.5 = 1.5 rounds to 2 (NumPy's rint would give 2 too), x2 * 0.5 = 2.5 to 3 (rint: 2)
    x = np.arange(5, dtype=F32)[None, None, None, :].repeat(2, axis=2)
    out, argmax = _forward(x, np.array([[0, 3, 0, 5, 0]], F32), (1, 2), 0.5)
    np.testing.assert_array_equal(argmax[0, 0, 0], [2, 3])


def test_coordinates_beyond_int32_follow_x86_conversion():
    # round(3e9) is outside int32: both edges become -2**31, a one-pixel roi at -2**31,
    # clipped to column 0 (torchvision's result on x86-64; the golden file has such rows)
    x = np.arange(6, dtype=F32).reshape(1, 1, 2, 3)
    out, argmax = _forward(x, np.array([[0, 3e9, 0, 4e9, 1]], F32), (1, 1))
    assert out[0, 0, 0, 0] == 0 and argmax[0, 0, 0, 0] == -1  # empty after clipping


@pytest.mark.parametrize("num_rois", [3, 60])
def test_strided_input_equals_contiguous(num_rois):
    rng = np.random.default_rng(3)
    x, rois = _case(rng, F32, num_rois)
    strided = np.asfortranarray(x)[:, :, ::-1, :][:, :, ::-1, :]
    assert_same_bits(_forward(strided, rois, (2, 3))[0], _forward(x, rois, (2, 3))[0])


@pytest.mark.parametrize("narrowest_block", [64, 256], ids=["blocks", "whole maps"])
def test_both_channels_last_copies_match_reference(narrowest_block, monkeypatch):
    """130 channels on one thread: two blocks of 65, each copied by its task; when blocks
    that narrow are not worth it, one copy of the whole maps. Same bits."""
    monkeypatch.setattr(cpu, "_LANES", narrowest_block)
    rng = np.random.default_rng(9)
    x, rois = _case(rng, F32, 120, (2, 130, 9, 11))  # dense
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        out, argmax = _forward(x, rois, (3, 4), 0.75)
    finally:
        numba.set_num_threads(before)
    expected, expected_argmax = reference.roi_pool(x, rois, (3, 4), 0.75)
    assert_same_bits(out, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    x, rois = _case(rng, F32, 80, (2, 40, 12, 13))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _forward(x, rois, (3, 3))
        grads = rng.standard_normal(single[0].shape).astype(F32)
        single_grad = _grad_input(grads, single[1], rois, x.shape)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _forward(x, rois, (3, 3))
        assert_same_bits(many[0], single[0])
        assert_same_bits(_grad_input(grads, many[1], rois, x.shape), single_grad)
    finally:
        numba.set_num_threads(before)


def test_rois_are_independent_and_the_gradient_is_the_adjoint():
    # each roi's result depends on that roi only (any order, any company); and on maps of
    # small integers, where every sum is exact, <grads, roi_pool(x)> = <grad_input(grads), x>
    # for bins that have a winner
    rng = np.random.default_rng(9)
    x = rng.integers(-50, 50, (2, 3, 9, 11)).astype(F64)
    rois = np.concatenate([rng.integers(0, 2, (40, 1)) + 0.25, rng.uniform(-3, 13, (40, 4))],
                          axis=1)
    out, argmax = _forward(x, rois, (3, 2), 0.9)
    order = rng.permutation(40)
    permuted, permuted_argmax = _forward(x, rois[order], (3, 2), 0.9)
    assert_same_bits(permuted, out[order])
    np.testing.assert_array_equal(permuted_argmax, argmax[order])
    assert_same_bits(_forward(x, rois[5:6], (3, 2), 0.9)[0], out[5:6])
    grads = rng.integers(-9, 10, out.shape).astype(F64)
    hit = argmax >= 0
    assert (grads[hit] * out[hit]).sum() == (_grad_input(grads, argmax, rois, x.shape) * x).sum()
