"""Compat layers: each framework's names, defaults, dtype rules and constructor errors."""
import warnings

import numpy as np
import pytest

import roiops
from roiops.compat import mindspore as ms
from roiops.compat import tensorflow as tf
from roiops.compat import torchvision as tv

RNG = np.random.default_rng(3)
IMAGE = RNG.uniform(0, 255, (2, 6, 7, 3)).astype(np.float32)
BOXES = np.array([[0.1, 0.2, 0.8, 0.9], [1.1, 0.7, -0.2, 0.1]], np.float32)
BOX_IND = np.array([1, 0], np.int32)
FEATURES = RNG.standard_normal((2, 3, 9, 11)).astype(np.float32)
ROIS = np.array([[0, 1.5, 2.0, 11.0, 8.5], [1, -3.0, 4.0, 6.0, 30.0]], np.float32)


def test_tensorflow_dtype_rules():
    for dtype in (np.uint8, np.int32, np.float16, np.float64):
        out = tf.crop_and_resize(IMAGE.astype(dtype), BOXES, BOX_IND, (3, 4))
        assert out.dtype == np.float32
    with pytest.raises(TypeError, match="boxes must have dtype in \\(float32\\)"):
        tf.crop_and_resize(IMAGE, BOXES.astype(np.float64), BOX_IND, (3, 4))
    with pytest.raises(TypeError, match="box_indices must have dtype in \\(int32\\)"):
        tf.crop_and_resize(IMAGE, BOXES, BOX_IND.astype(np.int64), (3, 4))
    with pytest.raises(ValueError, match="method must be one of 'bilinear', 'nearest'"):
        tf.crop_and_resize(IMAGE, BOXES, BOX_IND, (3, 4), method="bilinear_v2")
    grads = RNG.standard_normal((2, 3, 4, 3)).astype(np.float32)
    for T in (np.float16, "float32", np.dtype(np.float64)):
        result = tf.raw_ops.CropAndResizeGradImage(grads=grads, boxes=BOXES, box_ind=BOX_IND,
                                                   image_size=IMAGE.shape, T=T)
        assert result.dtype == np.dtype(T)
    with pytest.raises(TypeError, match="T must be float16, float32 or float64"):
        tf.raw_ops.CropAndResizeGradImage(grads, BOXES, BOX_IND, IMAGE.shape, T=np.int32)
    with pytest.raises(ValueError, match="method must be one of 'bilinear'"):
        tf.raw_ops.CropAndResizeGradBoxes(grads, IMAGE, BOXES, BOX_IND, method="nearest")
    assert tf.raw_ops.CropAndResizeGradBoxes(grads, IMAGE, BOXES, BOX_IND).dtype == np.float32


def test_tensorflow_float64_image_is_rounded_to_float32_first():
    image = IMAGE.astype(np.float64) + 1e-9
    np.testing.assert_array_equal(
        tf.crop_and_resize(image, BOXES, BOX_IND, (3, 4)),
        tf.crop_and_resize(image.astype(np.float32), BOXES, BOX_IND, (3, 4)))


def test_tensorflow_half_gradient_rounds_every_add():
    # 2048 + 1 + 1 in half: each add of 1 rounds back to 2048; float32 then rounding gives 2050.
    grads = np.ones((3, 1, 1, 1), np.float32)
    grads[0] = 2048
    boxes = np.zeros((3, 4), np.float32)
    index = np.zeros(3, np.int32)
    half = tf.raw_ops.CropAndResizeGradImage(grads, boxes, index, (1, 2, 2, 1), T=np.float16)
    native = roiops.crop_and_resize_grad_image(grads, boxes, index, (1, 2, 2, 1),
                                               dtype=np.float16)
    assert half[0, 0, 0, 0] == 2048 and native[0, 0, 0, 0] == 2050


def test_mindspore_constructor_errors():
    with pytest.raises(TypeError, match="method must be a str"):
        ms.CropAndResize(method=1)
    with pytest.raises(TypeError, match="extrapolation_value must be a float"):
        ms.CropAndResize(extrapolation_value=1)
    with pytest.raises(ValueError, match="method must be one of"):
        ms.CropAndResize(method="area")
    with pytest.raises(ValueError, match="method must be one of 'bilinear', 'nearest'"):
        ms.CropAndResizeGradImage(np.float32, method="bilinear_v2")
    with pytest.raises(TypeError, match="pooled_height must be an int"):
        ms.ROIAlign(2.0, 2, 0.5)
    with pytest.raises(TypeError, match="spatial_scale must be a float"):
        ms.ROIAlign(2, 2, 1)
    with pytest.raises(ValueError, match="roi_end_mode must be 0 or 1"):
        ms.ROIAlign(2, 2, 0.5, 2, 2)
    with pytest.raises(TypeError, match="sample_num must be an int"):
        ms.ROIAlignGrad(2, 2, 0.5, 2.0)
    with pytest.raises(TypeError, match="features must have dtype in \\(float16, float32\\)"):
        ms.ROIAlign(2, 2, 0.5)(FEATURES.astype(np.float64), ROIS)


def test_mindspore_mixed_dtypes_compute_in_float32():
    half = FEATURES.astype(np.float16)
    out = ms.ROIAlign(2, 3, 0.5, 2, 0)(half, ROIS)
    assert out.dtype == np.float16
    single = ms.ROIAlign(2, 3, 0.5, 2, 0)(half.astype(np.float32), ROIS)
    np.testing.assert_array_equal(out, single.astype(np.float16))


def test_mindspore_roi_align_grad_uses_roi_end_mode_one():
    dy = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    expected = roiops.roi_align_grad_input(dy, ROIS, FEATURES.shape, 2, spatial_scale=0.5,
                                           sampling_ratio=2, convention="mindspore",
                                           roi_end_mode=1)
    np.testing.assert_array_equal(ms.ROIAlignGrad(2, 2, 0.5, 2)(dy, ROIS, FEATURES.shape),
                                  expected)


def test_mindspore_crop_and_resize_matches_native():
    for method in ("bilinear", "nearest", "bilinear_v2"):
        np.testing.assert_array_equal(
            ms.CropAndResize(method, -2.0)(IMAGE, BOXES, BOX_IND, (3, 4)),
            roiops.crop_and_resize(IMAGE, BOXES, BOX_IND, (3, 4), method=method,
                                   extrapolation_value=-2.0))


def test_torchvision_box_forms_and_module_agree():
    listed = [ROIS[ROIS[:, 0] == i, 1:] for i in range(2)]
    ordered = np.concatenate([ROIS[ROIS[:, 0] == i] for i in range(2)])
    from_list = tv.roi_align(FEATURES, listed, (2, 3), 0.5, 2, True)
    np.testing.assert_array_equal(from_list, tv.roi_align(FEATURES, ordered, (2, 3), 0.5, 2, True))
    module = tv.RoIAlign((2, 3), 0.5, 2, True)
    np.testing.assert_array_equal(module(FEATURES, listed), from_list)
    assert "RoIAlign(output_size=(2, 3)" in repr(module)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape \[L, 4\]"):
        tv.roi_align(FEATURES, [ROIS], 2)
    with pytest.raises(TypeError, match="boxes must be a \\[K, 5\\] array or a list"):
        tv.roi_align(FEATURES, "boxes", 2)


def test_torchvision_backward_is_the_native_gradient():
    grad = RNG.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(
        tv.roi_align_backward(grad, ROIS.astype(np.float64), FEATURES.shape, 2, 0.5, -1, True),
        roiops.roi_align_grad_input(grad, ROIS, FEATURES.shape, 2, spatial_scale=0.5,
                                    aligned=True))


# --- issue 13: hostile arguments through the compat layers ---------------------------------

GRADS = RNG.standard_normal((2, 3, 4, 3)).astype(np.float32)
DY = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)


@pytest.mark.parametrize("call, error, words", [
    # dtypes NumPy cannot parse
    (lambda: tf.raw_ops.CropAndResizeGradImage(GRADS, BOXES, BOX_IND, IMAGE.shape, T="bogus"),
     TypeError, "T must be float16, float32 or float64, got 'bogus'"),
    (lambda: tf.raw_ops.CropAndResizeGradImage(GRADS, BOXES, BOX_IND, IMAGE.shape, T=None),
     TypeError, "T must be float16, float32 or float64, got None"),
    (lambda: ms.CropAndResizeGradImage(12345), TypeError,
     "T must be float16, float32 or float64, got 12345"),
    # sample_num / sampling_ratio bound
    (lambda: ms.ROIAlign(2, 2, 0.5, 1025), ValueError, "sample_num must be at most 1024"),
    (lambda: ms.ROIAlign(2, 2, 0.5, 2**63), ValueError, "sample_num must be at most 1024"),
    (lambda: ms.ROIAlignGrad(2, 2, 0.5, 10**400), ValueError, "sample_num must be at most"),
    (lambda: tv.roi_align(FEATURES, ROIS, 2, 1.0, 2**63), ValueError,
     "sampling_ratio must be at most 1024"),
    (lambda: tv.RoIAlign(2, 1.0, 1025)(FEATURES, ROIS), ValueError,
     "sampling_ratio must be at most 1024"),
    # floats that overflow the framework's type
    (lambda: tf.crop_and_resize(IMAGE, BOXES, BOX_IND, (3, 4), extrapolation_value=1e300),
     ValueError, "extrapolation_value must stay finite when rounded to float32"),
    (lambda: tf.crop_and_resize(IMAGE.astype(np.float64), BOXES, BOX_IND, (3, 4),
                                extrapolation_value=-1e39),
     ValueError, "extrapolation_value must stay finite"),  # TensorFlow computes in float32
    (lambda: ms.CropAndResize("bilinear", 1e300), ValueError,
     "extrapolation_value must stay finite when rounded to float32"),
    (lambda: ms.ROIAlign(2, 2, 1e39), ValueError,
     "spatial_scale must stay finite when rounded to float32"),
    (lambda: ms.ROIAlign(2, 2, 1e5)(FEATURES.astype(np.float16), ROIS.astype(np.float16)),
     ValueError, "spatial_scale must stay finite when rounded to float32 then float16"),
    (lambda: tv.roi_align(FEATURES.astype(np.float16), ROIS, 2, 1e5), ValueError,
     "spatial_scale must stay finite when rounded to float32 then float16"),
    (lambda: tv.roi_align(FEATURES, ROIS, 2, 10**400), ValueError,
     "spatial_scale must be a real number within float64's range"),
    # shapes
    (lambda: tf.raw_ops.CropAndResizeGradImage(GRADS, BOXES, BOX_IND, "2673", T=np.float32),
     TypeError, "image_size must be 4 non-negative ints"),
    (lambda: ms.CropAndResizeGradImage(np.float32)(GRADS, BOXES, BOX_IND, (2, 6.0, 7, 3)),
     TypeError, "image_size must be 4 non-negative ints (B, H, W, D), got (2, 6.0, 7, 3)"),
    (lambda: ms.ROIAlignGrad(2, 2, 0.5)(DY, ROIS, "2391"), TypeError,
     "xdiff_shape must be 4 non-negative ints"),
    (lambda: tv.roi_align_backward(DY, ROIS, (2, 3, 9, "11"), 2), TypeError,
     "input_shape must be 4 non-negative ints"),
    (lambda: ms.ROIAlign(0, 2, 0.5), ValueError, "pooled_height, pooled_width must be two"),
    # sizes beyond memory, named as the framework names them
    (lambda: tf.crop_and_resize(IMAGE, BOXES, BOX_IND, (2**40, 1)), ValueError,
     "crop_size (1099511627776, 1) needs"),
    (lambda: tf.raw_ops.CropAndResizeGradImage(GRADS, BOXES, BOX_IND, (2, 2**40, 7, 3),
                                               T=np.float16),
     ValueError, "image_size (2, 1099511627776, 7, 3) needs"),
    (lambda: ms.ROIAlign(2**20, 2**20, 0.5)(FEATURES, ROIS), ValueError,
     "pooled_height, pooled_width (1048576, 1048576) needs"),
    (lambda: ms.ROIAlignGrad(2, 2, 0.5)(DY, ROIS, (2, 3, 2**40, 11)), ValueError,
     "xdiff_shape (2, 3, 1099511627776, 11) needs"),
    (lambda: tv.roi_align(FEATURES, ROIS, 2**20), ValueError, "output_size (1048576, 1048576)"),
    # arrays whose meaning the kernels would drop
    (lambda: tf.crop_and_resize(np.ma.masked_array(IMAGE), BOXES, BOX_IND, (3, 4)), TypeError,
     "image must be a plain numpy.ndarray"),
    (lambda: ms.CropAndResize()(IMAGE, np.asmatrix(BOXES), BOX_IND, (3, 4)), TypeError,
     "boxes must be a plain numpy.ndarray"),
    (lambda: tv.roi_align(FEATURES, np.asmatrix(ROIS), 2), TypeError,
     "boxes must be a plain numpy.ndarray, got matrix"),
    (lambda: tv.roi_align(FEATURES, [np.ma.masked_array(ROIS[:, 1:])], 2), TypeError,
     "boxes[0] must be a plain numpy.ndarray"),
    # every message names the argument as the framework spells it (found by tests/test_fuzz.py)
    (lambda: tf.raw_ops.CropAndResize(IMAGE, BOXES, BOX_IND + 1, (3, 4)), ValueError,
     "box_ind must be in [0, 2) (the batch size), row 0 is 2"),
    (lambda: tf.raw_ops.CropAndResizeGradBoxes(GRADS, IMAGE, BOXES, BOX_IND[:1]), ValueError,
     "box_ind must have one entry per box (2), got 1"),
    (lambda: tf.crop_and_resize(IMAGE, BOXES, BOX_IND[None], (3, 4)), ValueError,
     "box_indices must have shape [num_boxes], got (1, 2)"),
    (lambda: ms.CropAndResize()(IMAGE, BOXES, BOX_IND - 1, (3, 4)), ValueError,
     "box_index must be in [0, 2) (the batch size), row 1 is -1"),
    (lambda: ms.CropAndResizeGradImage(np.float32)(GRADS, BOXES, BOX_IND.astype(np.float32),
                                                   IMAGE.shape), TypeError,
     "box_index must have dtype in (int32)"),
    (lambda: ms.ROIAlignGrad(2, 2, 0.5)(DY[:, :2], ROIS, FEATURES.shape), ValueError,
     "dy must have shape [num_rois, channels, pooled_height, pooled_width] = (2, 3, 2, 2)"),
    (lambda: tv.roi_align(FEATURES, np.array([[0, 1, 1, np.inf, 2]]), 2), ValueError,
     "boxes must be finite, row 0"),
    (lambda: tv.roi_align(FEATURES.astype(np.float16), ROIS * 1e5, 2), ValueError,
     "boxes must be finite, row 0"),  # beyond float16 once converted to the input's dtype
    (lambda: tv.roi_align(FEATURES, [ROIS[:, 1:]] * 3, 2), ValueError,
     "boxes batch index must be in [0, 2) (the batch size), row 4 is 2.0"),
    (lambda: tv.roi_align_backward(DY[:, :2], ROIS, FEATURES.shape, 2), ValueError,
     "grad_output must have shape [num_rois, channels, pooled_height, pooled_width]"),
    # MultiScaleRoIAlign checks its arguments before it reads them (found by tests/test_fuzz.py)
    (lambda: tv.MultiScaleRoIAlign(None, 2, 2), TypeError,
     "featmap_names must be a list of the maps' names, got NoneType None"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], None, 2), ValueError,
     "output_size must be an int or two positive ints"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], 2, 2, canonical_level=2**70), ValueError,
     "canonical_level must be within int64's range"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], 2, 2)({"p2": FEATURES}, [ROIS[:, 1:]], [32]),
     ValueError, "image_shapes[0] must be two positive ints (height, width), got 32"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], 2, 2)({"p2": [[1.0]]}, [ROIS[:, 1:]], [(32, 32)]),
     TypeError, "x[0] must be a numpy.ndarray, got list"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], 2, 2)({"p2": FEATURES[0, 0]}, [ROIS[:, 1:]],
                                                 [(32, 32)]),
     ValueError, "x[0] must have shape [batch, channels, height, width]"),
    (lambda: tv.MultiScaleRoIAlign(["p2"], 2, 2)({"p2": FEATURES[:, :, :0]}, [ROIS[:, 1:]],
                                                 [(32, 32)]),
     ValueError, "x[0] must have height and width >= 1, got 0x11"),
])
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_compat_layers_refuse_hostile_arguments(call, error, words):
    inputs = [IMAGE, BOXES, BOX_IND, FEATURES, ROIS, GRADS, DY]
    before = [a.copy() for a in inputs]
    with pytest.raises(error) as info, warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning on the way
        call()
    assert words in str(info.value)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)


def big_endian(array):
    return array.astype(array.dtype.newbyteorder(">" if np.little_endian else "<"))


def test_compat_layers_take_big_endian_arrays():
    np.testing.assert_array_equal(
        tf.crop_and_resize(big_endian(IMAGE), big_endian(BOXES), big_endian(BOX_IND), (3, 4)),
        tf.crop_and_resize(IMAGE, BOXES, BOX_IND, (3, 4)))
    np.testing.assert_array_equal(
        tf.raw_ops.CropAndResizeGradImage(big_endian(GRADS), big_endian(BOXES),
                                          big_endian(BOX_IND), IMAGE.shape, T=np.float16),
        tf.raw_ops.CropAndResizeGradImage(GRADS, BOXES, BOX_IND, IMAGE.shape, T=np.float16))
    np.testing.assert_array_equal(
        ms.CropAndResizeGradBoxes()(big_endian(GRADS), big_endian(IMAGE), big_endian(BOXES),
                                    big_endian(BOX_IND)),
        ms.CropAndResizeGradBoxes()(GRADS, IMAGE, BOXES, BOX_IND))
    # both float16: MindSpore's half arithmetic, whatever the byte order
    half, half_rois = FEATURES.astype(np.float16), ROIS.astype(np.float16)
    np.testing.assert_array_equal(
        ms.ROIAlign(2, 3, 0.5, 2)(big_endian(half), big_endian(half_rois)),
        ms.ROIAlign(2, 3, 0.5, 2)(half, half_rois))
    listed = [ROIS[ROIS[:, 0] == i, 1:] for i in range(2)]
    np.testing.assert_array_equal(
        tv.roi_align(big_endian(half), [big_endian(b) for b in listed], (2, 3), 0.5, 2, True),
        tv.roi_align(half, listed, (2, 3), 0.5, 2, True))
