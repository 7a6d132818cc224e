"""The native ps_roi_align API: position-sensitive shapes, dtypes, errors, out=."""
import numpy as np
import pytest

import roiops

RNG = np.random.default_rng(7)
ROIS = np.array([[0, 1.5, 2.0, 11.0, 8.5], [1, -3.0, 4.0, 6.0, 30.0]], np.float32)


def maps(dtype=np.float32, shape=(2, 18, 10, 13)):
    return RNG.standard_normal(shape).astype(dtype)


def test_bin_reads_its_own_channel():
    x = np.zeros((1, 8, 4, 4), np.float32)
    x[0, 5] = 3.0  # output channel 1, bin (0, 1)
    out = roiops.ps_roi_align(x, np.array([[0, 0, 0, 4, 4]], np.float32), 2)
    expected = np.zeros((1, 2, 2, 2), np.float32)
    expected[0, 1, 0, 1] = 3.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_result_dtype_and_shape(dtype):
    out = roiops.ps_roi_align(maps(dtype), ROIS, (3, 2))
    assert out.dtype == dtype and out.shape == (2, 3, 3, 2)


def test_float16_is_computed_in_float32_and_rounded_once():
    half = maps(np.float16)
    single = roiops.ps_roi_align(half.astype(np.float32), ROIS, 3, spatial_scale=0.5)
    np.testing.assert_array_equal(roiops.ps_roi_align(half, ROIS, 3, spatial_scale=0.5),
                                  single.astype(np.float16))


def test_channels_not_a_multiple_of_the_bins_is_a_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="input channels must be a multiple of pooled_height"):
        roiops.ps_roi_align(maps(shape=(1, 10, 5, 5)), ROIS[:1], 3)
    with pytest.raises(ValueError, match="input_shape channels"):
        roiops.ps_roi_align_grad_input(np.zeros((1, 1, 3, 3), np.float32), ROIS[:1],
                                       (1, 10, 5, 5), 3)
    with pytest.raises(ValueError, match=r"grads must have shape .* = \(1, 2, 3, 3\)"):
        roiops.ps_roi_align_grad_input(np.zeros((1, 18, 3, 3), np.float32), ROIS[:1],
                                       (2, 18, 5, 5), 3)


@pytest.mark.parametrize("bad, error, match", [
    (dict(rois=ROIS[:, :4]), ValueError, "rois must have shape"),
    (dict(sampling_ratio=1.5), TypeError, "sampling_ratio"),
    (dict(output_size=0), ValueError, "output_size"),
    (dict(rois=np.array([[2, 0, 0, 1, 1]], np.float32)), ValueError, "batch index"),
    (dict(rois=np.array([[0, 0, 0, np.inf, 1]], np.float32)), ValueError, "rois"),
])
def test_bad_arguments_are_named(bad, error, match):
    args = dict(input=maps(), rois=ROIS, output_size=3, sampling_ratio=2)
    args.update(bad)
    with pytest.raises(error, match=match):
        roiops.ps_roi_align(args["input"], args["rois"], args["output_size"],
                            sampling_ratio=args["sampling_ratio"])


def test_inputs_unchanged_strides_and_out():
    x = maps()
    rois = ROIS.copy()
    expected = roiops.ps_roi_align(x, rois, 3)
    strided = np.asfortranarray(x)
    np.testing.assert_array_equal(roiops.ps_roi_align(strided, rois, 3), expected)
    out = np.empty_like(expected)
    assert roiops.ps_roi_align(x, rois, 3, out=out) is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, strided)
    np.testing.assert_array_equal(rois, ROIS)


def test_no_rois_give_empty_results():
    x = maps()
    empty = np.zeros((0, 5), np.float32)
    assert roiops.ps_roi_align(x, empty, 3).shape == (0, 2, 3, 3)
    gradient = roiops.ps_roi_align_grad_input(np.zeros((0, 2, 3, 3), np.float32), empty,
                                              x.shape, 3)
    assert gradient.shape == x.shape and not gradient.any()
    assert roiops.ps_roi_align_grad_boxes(np.zeros((0, 2, 3, 3), np.float32), x, empty,
                                          3).shape == (0, 5)
