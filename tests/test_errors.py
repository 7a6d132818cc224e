"""API.md §3: every malformed argument raises the documented exception, naming the argument."""
import numpy as np
import pytest

import roiops

IMAGE = np.zeros((2, 5, 6, 3), np.float32)
BOXES = np.array([[0, 0, 1, 1], [0.2, 0.1, 0.9, 0.8]], np.float32)
INDICES = np.array([0, 1], np.int32)
FEATURES = np.zeros((2, 3, 8, 9), np.float32)
ROIS = np.array([[0, 1, 1, 5, 6], [1, 0, 0, 3, 2]], np.float32)


def crop(**overrides):
    args = dict(image=IMAGE, boxes=BOXES, box_indices=INDICES, crop_size=(3, 4))
    options = {k: overrides.pop(k) for k in list(overrides)
               if k in ("method", "extrapolation_value", "data_format", "out")}
    args.update(overrides)
    return roiops.crop_and_resize(args["image"], args["boxes"], args["box_indices"],
                                  args["crop_size"], **options)


def roi(**overrides):
    args = dict(input=FEATURES, rois=ROIS, output_size=(2, 3))
    options = {k: overrides.pop(k) for k in list(overrides) if k not in args}
    args.update(overrides)
    return roiops.roi_align(args["input"], args["rois"], args["output_size"], **options)


@pytest.mark.parametrize("overrides, error, words", [
    (dict(image=IMAGE.tolist()), TypeError, "image must be a numpy.ndarray"),
    (dict(image=IMAGE.astype(np.uint32)), TypeError, "image must have dtype"),
    (dict(image=IMAGE.astype(bool)), TypeError, "image must have dtype"),
    (dict(image=IMAGE[0]), ValueError, "image must have shape [batch, height, width, depth]"),
    (dict(image=np.zeros((2, 0, 6, 3), np.float32)), ValueError, "image must have height"),
    (dict(boxes=BOXES.astype(np.int32)), TypeError, "boxes must have dtype"),
    (dict(boxes=BOXES[:, :3]), ValueError, "boxes must have shape [num_boxes, 4], got (2, 3)"),
    (dict(box_indices=INDICES.astype(np.float32)), TypeError, "box_indices must have an integer"),
    (dict(box_indices=INDICES[:1]), ValueError, "box_indices must have one entry per box (2)"),
    (dict(box_indices=np.array([0, 2])), ValueError, "box_indices must be in [0, 2) (the batch size), row 1 is 2"),
    (dict(box_indices=np.array([-1, 0])), ValueError, "row 0 is -1"),
    (dict(boxes=np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]], np.float32)), ValueError,
     "boxes must be finite, row 1"),
    (dict(boxes=np.array([[0, 0, np.inf, 1], [0, 0, 1, 1]], np.float32)), ValueError,
     "boxes must be finite, row 0"),
    (dict(crop_size=(3,)), ValueError, "crop_size must be two positive ints"),
    (dict(crop_size=(0, 3)), ValueError, "crop_size must be two positive ints"),
    (dict(crop_size=(2.0, 3)), ValueError, "crop_size must be two positive ints"),
    (dict(method="area"), ValueError, "method must be one of"),
    (dict(method="NEAREST"), ValueError, "method must be one of"),
    (dict(data_format="NDHWC"), ValueError, "data_format must be one of"),
    (dict(extrapolation_value="0"), TypeError, "extrapolation_value must be a real number"),
    (dict(out=np.zeros((2, 3, 4, 3), np.float64)), ValueError, "out must be a C-contiguous array"),
    (dict(out=np.zeros((2, 3, 4, 6), np.float32)[..., ::2]), ValueError, "not C-contiguous"),
])
def test_crop_and_resize_rejects(overrides, error, words):
    with pytest.raises(error) as info:
        crop(**overrides)
    assert words in str(info.value)


@pytest.mark.parametrize("overrides, error, words", [
    (dict(input=FEATURES.astype(np.int32)), TypeError, "input must have dtype"),
    (dict(input=FEATURES[None]), ValueError, "input must have shape [batch, channels, height, width]"),
    (dict(input=FEATURES[0]), ValueError, "input must have shape"),
    (dict(input=np.zeros((2, 3, 0, 9), np.float32)), ValueError, "input must have height"),
    (dict(rois=ROIS[:, 1:]), ValueError, "rois must have shape [num_rois, 5], got (2, 4)"),
    (dict(rois=[ROIS]), TypeError, "rois must be a numpy.ndarray"),
    (dict(rois=np.array([[0, 1, 1, np.nan, 6]], np.float32)), ValueError, "rois must be finite, row 0"),
    (dict(rois=np.array([[2, 1, 1, 5, 6]], np.float32)), ValueError, "rois batch index must be in [0, 2)"),
    (dict(rois=np.array([[-1, 1, 1, 5, 6]], np.float32)), ValueError, "row 0 is -1.0"),
    (dict(rois=np.array([[-0.5, 1, 1, 5, 6]], np.float32), convention="mindspore"), ValueError,
     "rois batch index must be in [0, 1]"),
    (dict(output_size=(2, 3, 4)), ValueError, "output_size must be an int or two positive ints"),
    (dict(output_size=0), ValueError, "output_size must be"),
    (dict(sampling_ratio=2.0), TypeError, "sampling_ratio must be an int"),
    (dict(spatial_scale=float("nan")), ValueError, "spatial_scale must be finite"),
    (dict(convention="detectron"), ValueError, "convention must be one of"),
    (dict(convention="mindspore", aligned=True), ValueError, "aligned=True is a torchvision option"),
    (dict(roi_end_mode=0), ValueError, "roi_end_mode is a mindspore option"),
    (dict(convention="mindspore", roi_end_mode=2), ValueError, "roi_end_mode must be 0 or 1"),
])
def test_roi_align_rejects(overrides, error, words):
    with pytest.raises(error) as info:
        roi(**overrides)
    assert words in str(info.value)


def test_torchvision_batch_index_is_checked_after_truncation():
    # torchvision truncates toward zero: -0.5 and 1.9 are images 0 and 1, both in range.
    rois = np.array([[-0.5, 1, 1, 5, 6], [1.9, 1, 1, 5, 6]], np.float32)
    out = roiops.roi_align(FEATURES, rois, 2)
    assert out.shape == (2, 3, 2, 2)


def test_gradient_arguments_are_checked():
    grads = np.zeros((2, 3, 4, 3), np.float32)
    with pytest.raises(ValueError, match="image_shape depth must equal grads depth 3, got 2"):
        roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (2, 5, 6, 2))
    with pytest.raises(ValueError, match="grads must have one entry per box"):
        roiops.crop_and_resize_grad_image(grads[:1], BOXES, INDICES, (2, 5, 6, 3))
    with pytest.raises(ValueError, match="image_shape must be 4 non-negative ints"):
        roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (5, 6, 3))
    with pytest.raises(TypeError, match="dtype must be float16, float32 or float64"):
        roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, (2, 5, 6, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="grads depth must equal image depth"):
        roiops.crop_and_resize_grad_boxes(grads[..., :2], IMAGE, BOXES, INDICES)
    pooled = np.zeros((2, 3, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"grads must have shape .* = \(2, 3, 2, 2\)"):
        roiops.roi_align_grad_input(pooled, ROIS, FEATURES.shape, 2)
    with pytest.raises(ValueError, match="input_shape must be 4 non-negative ints"):
        roiops.roi_align_grad_input(pooled, ROIS, (3, 8, 9), (2, 3))
    with pytest.raises(ValueError, match="rois batch index must be in"):
        roiops.roi_align_grad_boxes(pooled, FEATURES[:1], ROIS, (2, 3))


def test_zero_boxes_give_empty_results():
    no_boxes = np.zeros((0, 4), np.float32)
    no_indices = np.zeros((0,), np.int32)
    assert crop(boxes=no_boxes, box_indices=no_indices).shape == (0, 3, 4, 3)
    grads = np.zeros((0, 3, 4, 3), np.float32)
    image_grad = roiops.crop_and_resize_grad_image(grads, no_boxes, no_indices, IMAGE.shape)
    assert image_grad.shape == IMAGE.shape and not image_grad.any()
    assert roiops.crop_and_resize_grad_boxes(grads, IMAGE, no_boxes, no_indices).shape == (0, 4)
    no_rois = np.zeros((0, 5), np.float32)
    assert roi(rois=no_rois).shape == (0, 3, 2, 3)
    pooled = np.zeros((0, 3, 2, 3), np.float32)
    input_grad = roiops.roi_align_grad_input(pooled, no_rois, FEATURES.shape, (2, 3))
    assert input_grad.shape == FEATURES.shape and not input_grad.any()
    assert roiops.roi_align_grad_boxes(pooled, FEATURES, no_rois, (2, 3)).shape == (0, 5)


def test_out_is_written_and_returned():
    image = np.random.default_rng(0).random((2, 5, 6, 3)).astype(np.float32)
    expected = roiops.crop_and_resize(image, BOXES, INDICES, (3, 4))
    out = np.full((2, 3, 4, 3), np.nan, np.float32)
    assert roiops.crop_and_resize(image, BOXES, INDICES, (3, 4), out=out) is out
    np.testing.assert_array_equal(out, expected)
    features = np.random.default_rng(1).random((2, 3, 8, 9))
    pooled = np.full((2, 3, 2, 3), np.nan)
    assert roiops.roi_align(features, ROIS, (2, 3), out=pooled) is pooled
    np.testing.assert_array_equal(pooled, roiops.roi_align(features, ROIS, (2, 3)))


def test_inputs_are_never_modified():
    rng = np.random.default_rng(2)
    image = rng.random((2, 5, 6, 3)).astype(np.float16)
    boxes = BOXES.astype(np.float64)
    grads = rng.random((2, 3, 4, 3)).astype(np.float16)
    features = rng.random((2, 3, 8, 9)).astype(np.float16)
    rois = ROIS.astype(np.float16)
    pooled_grads = rng.random((2, 3, 2, 3)).astype(np.float16)
    arrays = [image, boxes, INDICES, grads, features, rois, pooled_grads]
    before = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False  # a write would raise
    roiops.crop_and_resize(image, boxes, INDICES, (3, 4))
    roiops.crop_and_resize_grad_image(grads, boxes, INDICES, image.shape)
    roiops.crop_and_resize_grad_boxes(grads, image, boxes, INDICES)
    roiops.roi_align(features, rois, (2, 3))
    roiops.roi_align_grad_input(pooled_grads, rois, features.shape, (2, 3))
    roiops.roi_align_grad_boxes(pooled_grads, features, rois, (2, 3))
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
