"""roiops.compat.detectron2 and roiops.compat.mmcv: the frameworks' names, argument order and
defaults, NumPy arrays and tensors alike, modules without importing torch at import time."""
import subprocess
import sys

import numpy as np
import pytest
from exact import assert_same_bits

from roiops.compat import detectron2, mmcv

X = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
ROIS_DEGREES = np.array([[0, 2, 2, 2, 2, 90], [0, 2.5, 1.5, 3, 2, -30]], np.float32)


def test_importing_the_adapters_does_not_import_torch():
    code = ("import sys, roiops.compat.detectron2, roiops.compat.mmcv; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_detectron2_is_the_native_convention_at_a_float32_scale():
    pool = detectron2.ROIAlignRotated((2, 3), 1 / 3, 0)
    assert repr(pool).endswith("(output_size=(2, 3), spatial_scale=0.3333333333333333, "
                               "sampling_ratio=0)")
    expected = roiops_native(X.astype(np.float64), ROIS_DEGREES.astype(np.float64), (2, 3),
                             float(np.float32(1 / 3)), 0, True, False, "detectron2")
    assert_same_bits(pool(X.astype(np.float64), ROIS_DEGREES.astype(np.float64)), expected)


def roiops_native(x, rois, output_size, scale, ratio, aligned, clockwise, convention):
    import roiops
    return roiops.roi_align_rotated(x, rois, output_size, spatial_scale=scale,
                                    sampling_ratio=ratio, aligned=aligned, clockwise=clockwise,
                                    convention=convention)


def test_mmcv_defaults_and_options():
    pool = mmcv.RoIAlignRotated(2)
    assert (pool.spatial_scale, pool.sampling_ratio, pool.aligned, pool.clockwise) == (
        1.0, 0, True, False)
    radians = ROIS_DEGREES * np.array([1, 1, 1, 1, 1, np.pi / 180], np.float32)
    for aligned in (False, True):
        for clockwise in (False, True):
            result = mmcv.roi_align_rotated(X, radians, 2, 0.5, 2, aligned, clockwise)
            assert_same_bits(result, roiops_native(X, radians, 2, 0.5, 2, aligned, clockwise,
                                                   "mmcv"))
    # clockwise turns the other way: the same as the negated angle
    assert_same_bits(mmcv.roi_align_rotated(X, radians, 2, 1.0, 2, True, True),
                     mmcv.roi_align_rotated(X, radians * [1, 1, 1, 1, 1, -1], 2, 1.0, 2))


def test_mmcv_float16_is_not_float32_rounded_once():
    # half arithmetic, as mmcv's kernel: some results differ from float32 rounded once
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 4, 9, 9)) * 30).astype(np.float16)
    rois = np.array([[0, 4.3, 4.1, 6.7, 5.9, 0.3], [0, 3.2, 5.6, 7.3, 3.1, -1.7]], np.float16)
    half = mmcv.roi_align_rotated(x, rois, 3, 1.0, 3)
    assert half.dtype == np.float16
    once = roiops_native(x, rois, 3, 1.0, 3, True, False, "mmcv")
    assert not np.array_equal(half, once)
    np.testing.assert_allclose(half.astype(np.float32), once.astype(np.float32), rtol=0.05,
                               atol=0.5)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="rois must have shape"):
        detectron2.ROIAlignRotated(2, 1.0, 0)(X, ROIS_DEGREES[:, :5])
    with pytest.raises(ValueError, match="spatial_scale must stay finite"):
        mmcv.roi_align_rotated(X, ROIS_DEGREES, 2, 1e39)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        mmcv.RoIAlignRotated(2, aligned=None)(X, ROIS_DEGREES)


def test_modules_on_tensors():
    torch = pytest.importorskip("torch")
    d2 = detectron2.ROIAlignRotated((2, 2), 1.0, 1)
    assert isinstance(d2, torch.nn.Module)
    x = torch.from_numpy(X).double().requires_grad_()
    rois = torch.from_numpy(ROIS_DEGREES).double().requires_grad_()
    out = d2(x, rois)
    assert_same_bits(out, detectron2.ROIAlignRotated((2, 2), 1.0, 1)(
        X.astype(np.float64), ROIS_DEGREES.astype(np.float64)))
    out.sum().backward()
    assert x.grad is not None and rois.grad is not None
    m = mmcv.RoIAlignRotated(2, 1.0, 2, clockwise=True)
    assert isinstance(m, torch.nn.Module) and "clockwise=True" in repr(m)
    assert_same_bits(m(x.detach().float(), rois.detach().float()),
                     m(X, ROIS_DEGREES))


def test_mmcv_float16_tensors_run_on_the_host_without_autograd():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(X).half()
    rois = torch.tensor([[0, 2, 2, 2, 2, 0.5]], dtype=torch.float16)
    assert_same_bits(mmcv.roi_align_rotated(x, rois, 2, 1.0),
                     mmcv.roi_align_rotated(X.astype(np.float16), rois.numpy(), 2, 1.0))
    with pytest.raises(RuntimeError, match="not differentiable"):
        mmcv.roi_align_rotated(x.requires_grad_(), rois, 2, 1.0)
