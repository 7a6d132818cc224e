"""Checks of the plain references (``roiops.crop_and_resize.reference``,
``roiops.roi_align.reference``) that do not involve the kernels.

Hand-computed values, the peers' documented examples, adjoint identities and central finite
differences.  (The reference was also compared bit for bit with the real TensorFlow, MindSpore
and torchvision; those throwaway scripts are not part of the test suite.)
"""

import subprocess
import sys

import numpy as np
import pytest
from exact import assert_same_bits

from roiops.crop_and_resize.reference import (
    _roundf,
    crop_and_resize,
    crop_and_resize_grad_boxes,
    crop_and_resize_grad_image,
)
from roiops.roi_align.reference import roi_align, roi_align_grad_boxes, roi_align_grad_input

f32 = np.float32


# --------------------------------------------------------------------------------------------
# documented examples
# --------------------------------------------------------------------------------------------


def test_mindspore_roialign_docs_example():
    """docs/mindspore.md#the-documentation-example: ROIAlign(2, 2, 0.5, 2) on [[1, 2], [3, 4]]."""
    x = np.array([[[[1, 2], [3, 4]]]], f32)
    rois = np.array([[0, 0.2, 0.3, 0.2, 0.3]], f32)
    out = roi_align(x, rois, (2, 2), 0.5, 2, convention="mindspore", roi_end_mode=1)
    assert out.dtype == f32
    # 1.7749999: one ulp below float32(1.775), as MindSpore prints it
    assert out[0, 0, 0, 0] == f32(1.7749999)
    assert out[0, 0, 0, 0] == np.nextafter(f32(1.775), f32(0))
    np.testing.assert_array_equal(out[0, 0].ravel()[1:], f32([2.025, 2.275, 2.525]))
    out0 = roi_align(x, rois, (2, 2), 0.5, 2, convention="mindspore", roi_end_mode=0)
    np.testing.assert_array_equal(out0[0, 0], f32([[2.15, 2.65], [3.125, 3.625]]))


def test_torchvision_docs_example():
    x = np.arange(16, dtype=f32).reshape(1, 1, 4, 4)
    out = roi_align(x, f32([[0, 0.5, 0.5, 2.5, 2.5]]), (2, 2), 1.0, 2, aligned=True)
    np.testing.assert_array_equal(out.ravel(), f32([2.5, 3.5, 6.5, 7.5]))
    out64 = roi_align(x, [[0, 0.5, 0.5, 2.5, 2.5]], (2, 2), 1.0, 2, aligned=True, F=np.float64)
    np.testing.assert_array_equal(out64.ravel(), [2.5, 3.5, 6.5, 7.5])


def test_mindspore_crop_and_resize_grad_boxes_docs_example():
    """Docstring of ``CropAndResizeGradBoxes`` in MindSpore 2.10 (ops/operations/image_ops.py)."""
    grads = f32([[[[2.0], [5.0]], [[1.0], [4.0]]]])
    image = f32([[[[9.0], [5.0], [2.0], [1.0]], [[6.0], [1.0], [9.0], [7.0]],
                  [[6.0], [0.0], [2.0], [9.0]], [[1.0], [2.0], [6.0], [7.0]]]])
    boxes = f32([[0.3, 0.8, 0.3, 0.8]])
    for rule in ("mindspore", "tensorflow"):
        out = crop_and_resize_grad_boxes(grads, image, boxes, [0], crop1_rule=rule)
        np.testing.assert_array_equal(out, f32([[138.6, -17.1, 99.0, -51.300003]]))


def test_mindspore_crop_and_resize_grad_image_docs_example_shape():
    """MindSpore's CropAndResizeGradImage docs example inputs: the bilinear scatter conserves
    the total of the grads for a box inside the image."""
    grads = f32([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    boxes = f32([[0.1, 0.2, 0.3, 0.4]])
    out = crop_and_resize_grad_image(grads, boxes, [0], (1, 4, 4, 1), accumulate=np.float64,
                                     F=np.float64)
    assert out.shape == (1, 4, 4, 1)
    assert out.sum() == pytest.approx(10.0, rel=1e-14)


# --------------------------------------------------------------------------------------------
# crop_and_resize: hand-computed values and anomalies
# --------------------------------------------------------------------------------------------


def test_tf_anomaly_h4_ch22_last_row_extrapolated():
    """docs/tensorflow.md#boxes-ending-at-1: for H=4, ch=22 the last row of box [0,0,1,1] lands
    one ulp above H-1 in float32 and is extrapolated entirely."""
    img = np.arange(8, dtype=f32).reshape(1, 4, 2, 1) + 1
    out = crop_and_resize(img, f32([[0, 0, 1, 1]]), [0], (22, 2), extrapolation_value=-7.0)
    np.testing.assert_array_equal(out[0, -1, :, 0], f32([-7, -7]))
    assert np.all(out[0, :-1] != -7)
    np.testing.assert_array_equal(out[0, 0, :, 0], f32([1, 2]))
    # the float64 reference has no such rounding: the last row is the last image row
    out64 = crop_and_resize(img, [[0, 0, 1, 1]], [0], (22, 2), extrapolation_value=-7.0,
                            F=np.float64)
    np.testing.assert_array_equal(out64[0, -1, :, 0], [7, 8])


def test_bilinear_hand_values():
    img = f32([[[[0], [10]], [[20], [30]]]])  # H = W = 2, v(y, x) = 20y + 10x
    out = crop_and_resize(img, f32([[0, 0, 1, 1]]), [0], (3, 3))
    np.testing.assert_array_equal(out[0, :, :, 0], f32([[0, 5, 10], [10, 15, 20], [20, 25, 30]]))
    flipped = crop_and_resize(img, f32([[1, 1, 0, 0]]), [0], (3, 3))
    np.testing.assert_array_equal(flipped[0, :, :, 0], out[0, ::-1, ::-1, 0])
    outside = crop_and_resize(img, f32([[-1, 0, 2, 1]]), [0], (4, 2), extrapolation_value=-1)
    # rows at y = -1, 0, 1, 2: first and last extrapolated
    np.testing.assert_array_equal(outside[0, :, :, 0], f32([[-1, -1], [0, 10], [20, 30], [-1, -1]]))


def test_h1_never_extrapolates():
    img = f32([[[[1], [2], [3]]]])  # H = 1
    out = crop_and_resize(img, f32([[-5, 0, 7, 1]]), [0], (3, 3), extrapolation_value=-9)
    np.testing.assert_array_equal(out[0, :, :, 0], f32([[1, 2, 3]] * 3))


def test_nearest_ties_round_half_away():
    assert _roundf(f32(0.5), f32) == 1
    assert _roundf(f32(1.5), f32) == 2
    assert _roundf(f32(2.5), f32) == 3  # half-to-even would give 2
    assert _roundf(f32(0.49999997), f32) == 0  # floor(x + 0.5) would give 1
    img = np.arange(5, dtype=f32).reshape(1, 5, 1, 1) * 10
    # rows at 0.5, 1.5, 2.5, 3.5 (box 0.125..0.875 of H-1 = 4)
    out = crop_and_resize(img, f32([[0.125, 0, 0.875, 0]]), [0], (4, 1), method="nearest")
    np.testing.assert_array_equal(out[0, :, 0, 0], f32([10, 20, 30, 40]))


def test_crop1_centre_rule():
    img = (np.arange(5)[:, None] * 10 + np.arange(5)[None, :]).astype(f32)[None, :, :, None]
    out = crop_and_resize(img, f32([[0.25, 0.0, 0.75, 1.0]]), [0], (1, 1))
    assert out[0, 0, 0, 0] == f32(22)  # centre (2, 2)
    # docs/tensorflow.md#sample-coordinates: y1 = 2^-126, y2 = 0, H = 5: the centre 2^-125 is
    # computed in double (0.5 * 2^-126 would be subnormal in float32); TF documents 7.052966.
    img = np.zeros((1, 5, 1, 1), f32)
    img[0, 1] = 3e38
    out = crop_and_resize(img, f32([[2.0**-126, 0, 0, 0]]), [0], (1, 1))
    assert out[0, 0, 0, 0] == f32(7.052966)


def test_bilinear_v2_hand_values():
    img = np.arange(16, dtype=f32).reshape(1, 4, 4, 1)
    # window [trunc(0), trunc(3.96)] = [0, 3]: 4 pixels resized to 4 is the identity
    out = crop_and_resize(img, f32([[0, 0, 0.99, 0.99]]), [0], (4, 4), method="bilinear_v2")
    np.testing.assert_array_equal(out[0, :, :, 0], img[0, :, :, 0])
    # resized to 2x2: half-pixel centres at 0.5 and 2.5 average 2x2 blocks
    out = crop_and_resize(img, f32([[0, 0, 0.99, 0.99]]), [0], (2, 2), method="bilinear_v2")
    np.testing.assert_array_equal(out[0, :, :, 0], f32([[2.5, 4.5], [10.5, 12.5]]))
    # the window [0, 4] runs one row past the image: clamped to the edge, never extrapolated
    out = crop_and_resize(img, f32([[0, 0, 1, 1]]), [0], (5, 5), method="bilinear_v2",
                          extrapolation_value=-100)
    np.testing.assert_array_equal(out[0, 4, :4, 0], img[0, 3, :, 0])
    assert out.min() >= 0


# --------------------------------------------------------------------------------------------
# roi_align: conventions
# --------------------------------------------------------------------------------------------


def test_batch_index_rules():
    x = np.stack([np.zeros((1, 3, 3)), np.ones((1, 3, 3))]).astype(f32)
    for v, want in [(0.999, 0), (1.5, 1), (-0.5, 0), (1.9999, 1)]:
        out = roi_align(x, f32([[v, 0, 0, 2, 2]]), 1, sampling_ratio=2)
        assert out[0, 0, 0, 0] == want, v
    for v, want in [(0.5, 1), (0.49993, 0), (0.0, 0), (1.0, 1)]:
        out = roi_align(x, f32([[v, 0, 0, 2, 2]]), 1, sampling_ratio=2,
                        convention="mindspore")
        assert out[0, 0, 0, 0] == want, v


def test_mindspore_empty_grids():
    x = np.ones((1, 1, 4, 4), f32)
    # adaptive floor grid of a roi smaller than the pooled grid: 0/0 = NaN
    # (docs/decisions.md#mindspore-nan-bins)
    out = roi_align(x, f32([[0, 1, 1, 1.5, 1.5]]), (2, 2), sampling_ratio=0,
                    convention="mindspore", roi_end_mode=0)
    assert np.isnan(out).all()
    # mode 1, flipped in x only: one negative grid side gives -0.0, both negative +0.0
    out = roi_align(x, f32([[0, 3, 0, 0, 3]]), (1, 1), sampling_ratio=0, convention="mindspore")
    assert out[0, 0, 0, 0] == 0 and np.signbit(out[0, 0, 0, 0])
    out = roi_align(x, f32([[0, 3, 3, 0, 0]]), (1, 1), sampling_ratio=0, convention="mindspore")
    assert out[0, 0, 0, 0] == 0 and not np.signbit(out[0, 0, 0, 0])
    g = roi_align_grad_input(np.ones((1, 1, 2, 2), f32), f32([[0, 1, 1, 1.5, 1.5]]),
                             (1, 1, 4, 4), (2, 2), sampling_ratio=0, convention="mindspore",
                             roi_end_mode=0)
    assert not g.any()


def test_torchvision_vector_error_case_gives_zeros():
    """aligned, adaptive, one grid side negative: torchvision raises, roiops gives 0
    (docs/decisions.md#reversed-aligned-boxes)."""
    x = np.ones((1, 1, 5, 5), f32)
    out = roi_align(x, f32([[0, 4, 0, 0, 4]]), (1, 1), sampling_ratio=0, aligned=True)
    assert out[0, 0, 0, 0] == 0


def test_torchvision_min_size_and_border_dilution():
    x = np.full((1, 1, 3, 3), 6, f32)
    # not aligned: a degenerate box becomes size 1 starting at (x1, y1)
    out = roi_align(x, f32([[0, 1, 1, 1, 1]]), 1, sampling_ratio=2)
    assert out[0, 0, 0, 0] == 6
    # half of the samples beyond H + ... : out-of-range samples are counted, not read
    out = roi_align(x, f32([[0, 0, 2, 2, 6]]), (1, 1), sampling_ratio=2)
    # y samples at 3 and 5 (valid, invalid), x at 0.5 and 1.5 -> 2 of 4 valid
    assert out[0, 0, 0, 0] == 3


# --------------------------------------------------------------------------------------------
# adjoint identities (float64)
# --------------------------------------------------------------------------------------------


def _rand_boxes(rng, n, lo=-0.3, hi=1.3):
    return rng.uniform(lo, hi, (n, 4))


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("seed", range(6))
def test_crop_grad_image_is_adjoint(method, seed):
    rng = np.random.default_rng(seed)
    B, H, W, D = 2, int(rng.integers(1, 7)), int(rng.integers(1, 7)), 2
    crop = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    N = 3
    boxes = _rand_boxes(rng, N, 0.0 if method == "bilinear_v2" else -0.3, 1.0)
    bidx = rng.integers(0, B, N)
    x = rng.normal(size=(B, H, W, D))
    g = rng.normal(size=(N, *crop, D))
    fwd = crop_and_resize(x, boxes, bidx, crop, method, 0.0, F=np.float64)
    adj = crop_and_resize_grad_image(g, boxes, bidx, (B, H, W, D), method,
                                     accumulate=np.float64, F=np.float64)
    assert np.vdot(adj, x) == pytest.approx(np.vdot(g, fwd), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("convention,aligned,mode", [
    ("torchvision", False, 1), ("torchvision", True, 1),
    ("mindspore", False, 0), ("mindspore", False, 1)])
@pytest.mark.parametrize("seed", range(6))
def test_roi_align_grad_input_is_adjoint(convention, aligned, mode, seed):
    rng = np.random.default_rng(100 + seed)
    N, C, H, W = 2, 2, int(rng.integers(1, 8)), int(rng.integers(1, 8))
    K, P = 4, (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    ratios = [1, 2, 3, -1] if convention == "torchvision" else [1, 2, 3]
    sr = int(rng.choice(ratios))
    xy = rng.uniform(-2, max(H, W) + 2, (K, 4))
    rois = np.hstack([rng.integers(0, N, (K, 1)), xy])
    x = rng.normal(size=(N, C, H, W))
    g = rng.normal(size=(K, C, *P))
    kw = dict(spatial_scale=0.5 + seed % 2 * 0.5, sampling_ratio=sr, aligned=aligned,
              convention=convention, roi_end_mode=mode, F=np.float64)
    fwd = roi_align(x, rois, P, **kw)
    adj = roi_align_grad_input(g, rois, x.shape, P, **kw)
    assert np.vdot(adj, x) == pytest.approx(np.vdot(g, fwd), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------------------------
# finite differences of the box gradients (float64)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_crop_grad_boxes_finite_differences(seed):
    rng = np.random.default_rng(200 + seed)
    B, H, W, D = 1, int(rng.integers(2, 7)), int(rng.integers(2, 7)), 2
    crop = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    boxes = rng.uniform(0.02, 0.98, (2, 4))
    bidx = np.zeros(2, int)
    x = rng.normal(size=(B, H, W, D))
    g = rng.normal(size=(2, *crop, D))
    grad = crop_and_resize_grad_boxes(g, x, boxes, bidx, F=np.float64)
    h = 1e-7
    for n in range(2):
        for j in range(4):
            bp, bm = boxes.copy(), boxes.copy()
            bp[n, j] += h
            bm[n, j] -= h
            fp = np.vdot(g, crop_and_resize(x, bp, bidx, crop, F=np.float64))
            fm = np.vdot(g, crop_and_resize(x, bm, bidx, crop, F=np.float64))
            assert grad[n, j] == pytest.approx((fp - fm) / (2 * h), rel=1e-5, abs=1e-6)


def _roi_fd_case(rng, convention, aligned, mode):
    N, C, H, W = 1, 2, int(rng.integers(2, 8)), int(rng.integers(2, 8))
    K, P = 3, (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    # boxes partly outside (clamped and pinned samples), reversed when allowed, and tiny ones
    x1 = rng.uniform(-1.5, W + 0.5, K)
    y1 = rng.uniform(-1.5, H + 0.5, K)
    x2 = x1 + rng.uniform(-2 if aligned or convention == "mindspore" else 0.05, W, K)
    y2 = y1 + rng.uniform(-2 if aligned or convention == "mindspore" else 0.05, H, K)
    x2[0], y2[0] = x1[0] + 0.3, y1[0] + 0.2  # below the minimum size where that rule exists
    rois = np.stack([np.zeros(K), x1, y1, x2, y2], 1)
    x = rng.normal(size=(N, C, H, W))
    g = rng.normal(size=(K, C, *P))
    sr = int(rng.choice([1, 2, 3]))
    kw = dict(spatial_scale=float(rng.choice([1.0, 0.5])), sampling_ratio=sr, aligned=aligned,
              convention=convention, roi_end_mode=mode, F=np.float64)
    return x, rois, P, g, kw


@pytest.mark.parametrize("convention,aligned,mode", [
    ("torchvision", False, 1), ("torchvision", True, 1),
    ("mindspore", False, 0), ("mindspore", False, 1)])
@pytest.mark.parametrize("seed", range(8))
def test_roi_align_grad_boxes_finite_differences(convention, aligned, mode, seed):
    rng = np.random.default_rng(300 + seed)
    x, rois, P, g, kw = _roi_fd_case(rng, convention, aligned, mode)
    grad = roi_align_grad_boxes(g, x, rois, P, **kw)
    assert grad.shape == (rois.shape[0], 5) and not grad[:, 0].any()
    h = 1e-7
    for k in range(rois.shape[0]):
        for j in range(1, 5):
            rp, rm = rois.copy(), rois.copy()
            rp[k, j] += h
            rm[k, j] -= h
            fp = np.vdot(g, roi_align(x, rp, P, **kw))
            fm = np.vdot(g, roi_align(x, rm, P, **kw))
            assert grad[k, j] == pytest.approx((fp - fm) / (2 * h), rel=1e-5, abs=1e-6), (k, j)


def test_roi_align_grad_boxes_adaptive_grid_finite_differences():
    """Adaptive grids: the grid size is held fixed; away from its jumps that is the derivative."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 1, 9, 9))
    rois = np.array([[0, 0.7, 1.3, 6.2, 7.9], [0, 2.1, -0.6, 8.4, 5.3]])
    g = rng.normal(size=(2, 1, 2, 2))
    for kw in (dict(aligned=True), dict(aligned=False),
               dict(convention="mindspore", roi_end_mode=0)):
        grad = roi_align_grad_boxes(g, x, rois, (2, 2), sampling_ratio=0, F=np.float64, **kw)
        for k in range(2):
            for j in range(1, 5):
                rp, rm = rois.copy(), rois.copy()
                rp[k, j] += 1e-7
                rm[k, j] -= 1e-7
                fp = np.vdot(g, roi_align(x, rp, (2, 2), sampling_ratio=0, F=np.float64, **kw))
                fm = np.vdot(g, roi_align(x, rm, (2, 2), sampling_ratio=0, F=np.float64, **kw))
                assert grad[k, j] == pytest.approx((fp - fm) / 2e-7, rel=1e-5, abs=1e-6)


def test_roi_align_grad_boxes_zero_where_constant():
    x = np.random.default_rng(1).normal(size=(1, 1, 4, 4))
    g = np.ones((1, 1, 1, 1))
    # entirely outside: every sample invalid
    out = roi_align_grad_boxes(g, x, [[0, 10, 10, 12, 12]], 1, sampling_ratio=2)
    assert not out.any()
    # entirely in the clamped margin [-1, 0]: locally constant
    out = roi_align_grad_boxes(g, x, [[0, -0.9, -0.9, -0.1, -0.1]], 1, sampling_ratio=2,
                               aligned=True)
    assert not out.any()
    # torchvision not aligned, below the minimum size: no gradient for x2, y2
    out = roi_align_grad_boxes(g, x, [[0, 1.1, 1.2, 1.4, 1.3]], 1, sampling_ratio=2)
    assert out[0, 3] == 0 and out[0, 4] == 0 and out[0, 1] != 0


# --------------------------------------------------------------------------------------------
# float32 / float16 specifics
# --------------------------------------------------------------------------------------------


def test_grad_image_accumulation_types():
    boxes = f32([[0, 0, 1, 1]] * 3)
    g = np.full((3, 2, 2, 1), 0.1, f32)
    for A in (np.float16, np.float32, np.float64):
        out = crop_and_resize_grad_image(g, boxes, [0, 0, 0], (1, 2, 2, 1), accumulate=A)
        assert out.dtype == A
        want = A(0)
        for _ in range(3):
            want = A(want + A(f32(0.1)))
        assert_same_bits(out, np.full(out.shape, want, A))


def test_float16_roi_align_computes_in_half():
    x = np.full((1, 1, 2, 2), 1000, np.float16)
    x[0, 0, 1, 1] = 1
    out = roi_align(x, np.float16([[0, 0, 0, 1, 1]]), 1, sampling_ratio=3, aligned=True,
                    F=np.float16)
    assert out.dtype == np.float16
    ref32 = roi_align(x.astype(f32), f32([[0, 0, 0, 1, 1]]), 1, sampling_ratio=3,
                      aligned=True, F=f32)
    assert abs(float(out[0, 0, 0, 0]) - float(ref32[0, 0, 0, 0])) < 2


# --------------------------------------------------------------------------------------------
# packaging
# --------------------------------------------------------------------------------------------


def test_importing_roiops_does_not_import_the_references():
    # the references are for tests and for users who ask for them: not part of the cold start
    code = ("import sys, roiops, roiops.compat.tensorflow, roiops.compat.mindspore, "
            "roiops.compat.torchvision; "
            "print([m for m in sys.modules if m.startswith('roiops') and 'reference' in m])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
