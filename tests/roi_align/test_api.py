"""The native roi_align API: dtype rules, conventions, layouts (docs/api.md)."""
import numpy as np
import pytest

import roiops

RNG = np.random.default_rng(5)
ROIS = np.array([[0, 1.5, 2.0, 11.0, 8.5], [1, -3.0, 4.0, 6.0, 30.0], [1, 9.0, 7.0, 2.0, 1.0],
                 [0, 4.2, 4.2, 4.4, 4.6]], np.float32)


def features(dtype=np.float32, shape=(2, 4, 10, 13)):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_result_dtype_is_the_input_dtype(dtype):
    assert roiops.roi_align(features(dtype), ROIS, 3).dtype == dtype


@pytest.mark.parametrize("convention, options", [
    ("torchvision", dict(aligned=True)), ("torchvision", dict(aligned=False)),
    ("mindspore", dict(roi_end_mode=0)), ("mindspore", dict(roi_end_mode=1))])
def test_float16_is_computed_in_float32_and_rounded_once(convention, options):
    half = features(np.float16)
    rois = ROIS.astype(np.float16)
    kwargs = dict(spatial_scale=0.5, sampling_ratio=2, convention=convention, **options)
    single = roiops.roi_align(half.astype(np.float32), rois.astype(np.float32), (2, 3), **kwargs)
    np.testing.assert_array_equal(roiops.roi_align(half, rois, (2, 3), **kwargs),
                                  single.astype(np.float16))
    grads = features(np.float16, single.shape)
    single_grad = roiops.roi_align_grad_input(grads.astype(np.float32), rois.astype(np.float32),
                                              half.shape, (2, 3), **kwargs)
    np.testing.assert_array_equal(
        roiops.roi_align_grad_input(grads, rois, half.shape, (2, 3), **kwargs),
        single_grad.astype(np.float16))


def test_fixed_grid_conventions_agree():
    # With a fixed grid and integer batch indices, torchvision (aligned=False) and MindSpore
    # (roi_end_mode=0) share every rule: start x1*s, end x2*s, minimum size 1.
    data = features(np.float64)
    tv = roiops.roi_align(data, ROIS.astype(np.float64), (3, 2), spatial_scale=0.75,
                          sampling_ratio=3)
    ms = roiops.roi_align(data, ROIS.astype(np.float64), (3, 2), spatial_scale=0.75,
                          sampling_ratio=3, convention="mindspore", roi_end_mode=0)
    np.testing.assert_array_equal(tv, ms)


def test_mindspore_adaptive_grid_gives_nan_for_rois_smaller_than_the_output():
    rois = np.array([[0, 1, 1, 2, 2]], np.float32)  # 1x1 pixel roi, 4x4 bins: floor -> 0
    out = roiops.roi_align(features(), rois, 4, sampling_ratio=0, convention="mindspore",
                           roi_end_mode=0)
    assert np.isnan(out).all()
    assert np.isfinite(roiops.roi_align(features(), rois, 4, sampling_ratio=0)).all()


@pytest.mark.parametrize("layout", ["channels_last", "negative", "sliced"])
def test_strided_input_equals_contiguous(layout):
    data = features(np.float32, (2, 8, 10, 13))
    if layout == "channels_last":
        view = np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "negative":
        view = np.flip(np.flip(data, 3).copy(), 3)
    else:
        view = np.repeat(data, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(view, data)
    kwargs = dict(spatial_scale=0.5, sampling_ratio=-1, aligned=True)
    out = roiops.roi_align(view, ROIS, (3, 2), **kwargs)
    np.testing.assert_array_equal(out, roiops.roi_align(data, ROIS, (3, 2), **kwargs))
    grads = features(np.float32, out.shape)
    grads_view = np.flip(np.flip(grads, 1).copy(), 1)
    np.testing.assert_array_equal(
        roiops.roi_align_grad_input(grads_view, ROIS, data.shape, (3, 2), **kwargs),
        roiops.roi_align_grad_input(grads, ROIS, data.shape, (3, 2), **kwargs))
    np.testing.assert_array_equal(
        roiops.roi_align_grad_boxes(grads_view, view, ROIS, (3, 2), **kwargs),
        roiops.roi_align_grad_boxes(grads, data, ROIS, (3, 2), **kwargs))


def test_rois_of_any_float_dtype_are_converted_to_the_compute_type():
    data = features(np.float32)
    np.testing.assert_array_equal(roiops.roi_align(data, ROIS.astype(np.float64), 3),
                                  roiops.roi_align(data, ROIS, 3))
