"""ps_roi_pool's kernels (through the NumPy API) against the plain reference: bits in
float32/float64 and in torchvision's half arithmetic, torchvision's bin rules (the forward
never pools the last row and column, the backward does), empty bins, huge rois, thread-count
independence, output channel counts around the forward's groups and blocks."""
import numba
import numpy as np
import pytest
from exact import assert_same_bits

import roiops
from roiops.compat import torchvision as tvc
from roiops.ps_roi_pool import reference

F32, F64 = np.float32, np.float64


def _rois(rng, count, batch, height, width, scale):
    x1 = rng.uniform(-0.3, 1.1, count) * width / scale
    y1 = rng.uniform(-0.3, 1.1, count) * height / scale
    x2 = x1 + rng.uniform(-0.2, 0.9, count) * width / scale
    y2 = y1 + rng.uniform(-0.2, 0.9, count) * height / scale
    index = rng.integers(0, batch, count) + rng.uniform(0, 0.9, count)
    return np.stack([index, x1, y1, x2, y2], axis=1)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3])
@pytest.mark.parametrize("F", [F32, F64])
def test_forward_and_grad_input_match_reference_bit_for_bit(scale, F):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 7, 6)).astype(F)
    rois = _rois(rng, 9, 2, 7, 6, scale).astype(F)
    expected = reference.ps_roi_pool(x, rois, 2, scale, F=F)
    assert_same_bits(roiops.ps_roi_pool(x, rois, 2, spatial_scale=scale), expected)
    grads = rng.standard_normal(expected.shape).astype(F)
    assert_same_bits(roiops.ps_roi_pool_grad_input(grads, rois, x.shape, 2, spatial_scale=scale),
                     reference.ps_roi_pool_grad_input(grads, rois, x.shape, 2, scale, F=F))



@pytest.mark.parametrize("out_channels", [1, 3, 4, 5, 16, 17, 21, 37])
def test_forward_groups_and_blocks_of_output_channels_match_reference(out_channels):
    # the forward sums _GROUP channels at once in tasks of _CHANNEL_BLOCK: counts around both
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, out_channels * 6, 9, 8)).astype(F32)
    rois = _rois(rng, 11, 2, 9, 8, 1.0).astype(F32)
    assert_same_bits(roiops.ps_roi_pool(x, rois, (2, 3)),
                     reference.ps_roi_pool(x, rois, (2, 3), 1.0, F=F32))
    half = x.astype(np.float16)
    assert_same_bits(tvc.ps_roi_pool(half, rois.astype(np.float16), (2, 3), 1.0),
                     reference.ps_roi_pool(half, rois.astype(np.float16), (2, 3), 1.0,
                                           F=np.float16))

def test_half_arithmetic_matches_reference():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((1, 8, 9, 9)) * 300).astype(np.float16)
    rois = _rois(rng, 6, 1, 9, 9, 0.5).astype(np.float16)
    expected = reference.ps_roi_pool(x, rois, 2, 0.5, F=np.float16)
    assert_same_bits(tvc.ps_roi_pool(x, rois, 2, 0.5), expected)
    grads = rng.standard_normal(expected.shape).astype(np.float16)
    assert_same_bits(tvc.ps_roi_pool_backward(grads, rois, x.shape, 2, 0.5),
                     reference.ps_roi_pool_grad_input(grads, rois, x.shape, 2, 0.5,
                                                      F=np.float16))


def test_forward_skips_the_last_row_and_column_and_the_backward_does_not():
    x = np.arange(16, dtype=F32).reshape(1, 1, 4, 4)
    whole = np.array([[0, 0, 0, 4, 4]], F32)  # the whole map: pooled over rows/cols 0..2
    assert roiops.ps_roi_pool(x, whole, 1)[0, 0, 0, 0] == x[0, 0, :3, :3].mean()
    gradient = roiops.ps_roi_pool_grad_input(np.full((1, 1, 1, 1), 16, F32), whole,
                                             x.shape, 1)
    assert_same_bits(gradient, np.ones((1, 1, 4, 4), F32))


def test_empty_bins_give_zero_and_no_gradient():
    x = np.full((1, 4, 3, 3), 5, F32)
    outside = np.array([[0, 10, 10, 20, 20]], F32)
    assert_same_bits(roiops.ps_roi_pool(x, outside, 2), np.zeros((1, 1, 2, 2), F32))
    assert not roiops.ps_roi_pool_grad_input(np.ones((1, 1, 2, 2), F32), outside,
                                             x.shape, 2).any()


def test_huge_rois_saturate_and_stay_in_the_map():
    x = np.arange(2 * 4 * 5 * 5, dtype=F64).reshape(2, 4, 5, 5)
    rois = np.array([[0, -1e30, -1e30, 1e30, 1e30], [1, 3e9, -3e9, 1e300, 2.5]], F64)
    out = roiops.ps_roi_pool(x, rois, 2)
    assert np.isfinite(out).all()
    gradient = roiops.ps_roi_pool_grad_input(np.ones(out.shape), rois, x.shape, 2)
    assert np.isfinite(gradient).all()


def test_grad_input_does_not_depend_on_thread_count():
    rng = np.random.default_rng(3)
    shape = (2, 36, 6, 7)
    rois = _rois(rng, 200, 2, 6, 7, 1.0).astype(F32)
    grads = rng.standard_normal((200, 4, 3, 3)).astype(F32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = roiops.ps_roi_pool_grad_input(grads, rois, shape, 3)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        multi = roiops.ps_roi_pool_grad_input(grads, rois, shape, 3)
    finally:
        numba.set_num_threads(previous)
    assert_same_bits(single, multi)
