"""Compat layers: each framework's names, defaults, dtype rules and constructor errors."""
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
    with pytest.raises(TypeError, match="box_ind must have dtype in \\(int32\\)"):
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
