"""ps_roi_align's kernels (through the NumPy API) against the plain reference and as
derivatives: bits in float32/float64 and in torchvision's half arithmetic, thread-count
independence, the adjoint, finite differences for the boxes."""
import numba
import numpy as np
import pytest
from exact import assert_same_bits

import roiops
from roiops.compat import torchvision as tvc
from roiops.ps_roi_align import reference

F32, F64 = np.float32, np.float64


def _rois(rng, count, batch, height, width, scale):
    """Boxes inside, across the border of, outside of and reversed on the map."""
    x1 = rng.uniform(-0.3, 1.1, count) * width / scale
    y1 = rng.uniform(-0.3, 1.1, count) * height / scale
    x2 = x1 + rng.uniform(-0.2, 0.9, count) * width / scale
    y2 = y1 + rng.uniform(-0.2, 0.9, count) * height / scale
    index = rng.integers(0, batch, count) + rng.uniform(0, 0.9, count)
    return np.stack([index, x1, y1, x2, y2], axis=1)


CASES = [dict(spatial_scale=1.0, sampling_ratio=2), dict(spatial_scale=0.5, sampling_ratio=-1),
         dict(spatial_scale=0.75, sampling_ratio=3)]


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize("F", [F32, F64])
def test_forward_and_grad_input_match_reference_bit_for_bit(options, F):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 6, 7)).astype(F)  # 3 output channels of 2x2 bins
    rois = _rois(rng, 9, 2, 6, 7, options["spatial_scale"]).astype(F)
    expected = reference.ps_roi_align(x, rois, 2, F=F, **options)
    assert_same_bits(roiops.ps_roi_align(x, rois, 2, **options), expected)
    grads = rng.standard_normal(expected.shape).astype(F)
    assert_same_bits(roiops.ps_roi_align_grad_input(grads, rois, x.shape, 2, **options),
                     reference.ps_roi_align_grad_input(grads, rois, x.shape, 2, F=F, **options))


def test_half_arithmetic_matches_reference():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((1, 8, 5, 6)) * 30).astype(np.float16)
    rois = _rois(rng, 6, 1, 5, 6, 0.5).astype(np.float16)
    options = dict(spatial_scale=0.5, sampling_ratio=-1)
    expected = reference.ps_roi_align(x, rois, (2, 2), F=np.float16, **options)
    assert_same_bits(tvc.ps_roi_align(x, rois, (2, 2), *options.values()), expected)
    grads = rng.standard_normal(expected.shape).astype(np.float16)
    assert_same_bits(tvc.ps_roi_align_backward(grads, rois, x.shape, (2, 2), *options.values()),
                     reference.ps_roi_align_grad_input(grads, rois, x.shape, (2, 2),
                                                       F=np.float16, **options))


def test_empty_grid_gives_nan_as_torchvision():
    x = np.ones((1, 4, 5, 5), F32)
    # a point box: adaptive grid ceil(0 / 2) = 0 samples, 0 / 0
    out = roiops.ps_roi_align(x, np.array([[0, 2, 2, 2, 2]], F32), 2)
    assert np.isnan(out).all()
    # a reversed box: no samples, grid -1 x -1, 0 / 1
    out = roiops.ps_roi_align(x, np.array([[0, 3, 3, 1, 1]], F32), 2)
    assert_same_bits(out, np.zeros((1, 1, 2, 2), F32))


def test_grad_input_does_not_depend_on_thread_count():
    rng = np.random.default_rng(3)
    shape = (2, 36, 6, 7)  # more than two channel blocks
    rois = _rois(rng, 200, 2, 6, 7, 1.0).astype(F32)
    grads = rng.standard_normal((200, 4, 3, 3)).astype(F32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = roiops.ps_roi_align_grad_input(grads, rois, shape, 3, sampling_ratio=0)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        multi = roiops.ps_roi_align_grad_input(grads, rois, shape, 3, sampling_ratio=0)
    finally:
        numba.set_num_threads(previous)
    assert_same_bits(single, multi)


def test_dense_rois_stream_the_planes_and_keep_the_bits():
    # enough rois per image that the kernel streams each plane in first
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 4, 5)).astype(F32)
    rois = _rois(rng, 40, 1, 4, 5, 1.0).astype(F32)
    assert_same_bits(roiops.ps_roi_align(x, rois, 2),
                     reference.ps_roi_align(x, rois, 2, F=F32))


def test_grad_input_is_the_adjoint_of_forward():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 18, 6, 7))
    rois = _rois(rng, 12, 2, 6, 7, 1.0)
    grads = rng.standard_normal((12, 2, 3, 3))
    forward = roiops.ps_roi_align(x, rois, 3, sampling_ratio=2)
    adjoint = roiops.ps_roi_align_grad_input(grads, rois, x.shape, 3, sampling_ratio=2)
    np.testing.assert_allclose((forward * grads).sum(), (x * adjoint).sum(), rtol=1e-12)


def test_grad_boxes_matches_finite_differences_and_reference():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 12, 9, 11))
    # away from kinks: no sample on an integer or a clamp boundary
    rois = np.array([[0, 1.3, 2.2, 7.7, 6.1], [1, -3.3, 0.6, 20.1, 5.1],
                     [1, 4.1, 3.3, 4.6, 3.5]])
    grads = rng.standard_normal((3, 2, 2, 3))
    options = dict(spatial_scale=0.75, sampling_ratio=2)

    def loss(boxes):
        return (grads * roiops.ps_roi_align(x, boxes, (2, 3), **options)).sum()

    gradient = roiops.ps_roi_align_grad_boxes(grads, x, rois, (2, 3), **options)
    step = 1e-6
    numeric = np.zeros_like(gradient)
    for k in range(rois.shape[0]):
        for column in range(1, 5):
            up, down = rois.copy(), rois.copy()
            up[k, column] += step
            down[k, column] -= step
            numeric[k, column] = (loss(up) - loss(down)) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        gradient, reference.ps_roi_align_grad_boxes(grads, x, rois, (2, 3), **options),
        rtol=1e-12, atol=1e-14)
    assert (gradient[:, 0] == 0).all() and np.abs(gradient).max() > 0.1
