"""docs/errors.md: every malformed argument raises the documented exception, naming the argument."""
import warnings

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
    (dict(box_indices=np.array([0, 2])), ValueError,
     "box_indices must be in [0, 2) (the batch size), row 1 is 2"),
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
    (dict(input=FEATURES[None]), ValueError,
     "input must have shape [batch, channels, height, width]"),
    (dict(input=FEATURES[0]), ValueError, "input must have shape"),
    (dict(input=np.zeros((2, 3, 0, 9), np.float32)), ValueError, "input must have height"),
    (dict(rois=ROIS[:, 1:]), ValueError, "rois must have shape [num_rois, 5], got (2, 4)"),
    (dict(rois=[ROIS]), TypeError, "rois must be a numpy.ndarray"),
    (dict(rois=np.array([[0, 1, 1, np.nan, 6]], np.float32)), ValueError,
     "rois must be finite, row 0"),
    (dict(rois=np.array([[2, 1, 1, 5, 6]], np.float32)), ValueError,
     "rois batch index must be in [0, 2)"),
    (dict(rois=np.array([[-1, 1, 1, 5, 6]], np.float32)), ValueError, "row 0 is -1.0"),
    (dict(rois=np.array([[-0.5, 1, 1, 5, 6]], np.float32), convention="mindspore"), ValueError,
     "rois batch index must be in [0, 1]"),
    (dict(output_size=(2, 3, 4)), ValueError, "output_size must be an int or two positive ints"),
    (dict(output_size=0), ValueError, "output_size must be"),
    (dict(sampling_ratio=2.0), TypeError, "sampling_ratio must be an int"),
    (dict(spatial_scale=float("nan")), ValueError, "spatial_scale must be finite"),
    (dict(convention="detectron"), ValueError, "convention must be one of"),
    (dict(convention="mindspore", aligned=True), ValueError,
     "aligned=True is a torchvision option"),
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


# --- issue 13: hostile arguments get a TypeError/ValueError naming the argument -----------

GRADS = np.zeros((2, 3, 4, 3), np.float32)
POOLED = np.zeros((2, 3, 2, 3), np.float32)


def grad_image(image_shape=IMAGE.shape, **options):
    return roiops.crop_and_resize_grad_image(GRADS, BOXES, INDICES, image_shape, **options)


def grad_input(input_shape=FEATURES.shape, **options):
    return roiops.roi_align_grad_input(POOLED, ROIS, input_shape, (2, 3), **options)


@pytest.mark.parametrize("call, error, words", [
    # sampling_ratio: at most 1024 samples per bin axis, never an OverflowError
    (lambda: roi(sampling_ratio=1025), ValueError, "sampling_ratio must be at most 1024"),
    (lambda: roi(sampling_ratio=10**6), ValueError, "sampling_ratio must be at most 1024"),
    (lambda: roi(sampling_ratio=2**63), ValueError, "sampling_ratio must be at most 1024"),
    (lambda: roi(sampling_ratio=np.uint64(2**64 - 1)), ValueError,
     "sampling_ratio must be at most 1024"),
    (lambda: roi(sampling_ratio=10**400), ValueError, "sampling_ratio must be at most 1024"),
    (lambda: roi(sampling_ratio=-2**64), ValueError, "sampling_ratio must be at least -2**63"),
    (lambda: grad_input(sampling_ratio=1025), ValueError, "sampling_ratio must be at most"),
    (lambda: roiops.roi_align_grad_boxes(POOLED, FEATURES, ROIS, (2, 3), sampling_ratio=2**63),
     ValueError, "sampling_ratio must be at most"),
    # dtypes NumPy cannot parse are not float64
    (lambda: grad_image(dtype="foo"), TypeError,
     "dtype must be float16, float32 or float64, got 'foo'"),
    (lambda: grad_image(dtype=1), TypeError, "dtype must be float16, float32 or float64, got 1"),
    (lambda: grad_image(dtype=2.5), TypeError, "got 2.5"),
    (lambda: grad_image(dtype=">f4"), TypeError, "dtype must be float16, float32 or float64"),
    # float arguments that overflow the compute type (float32 here)
    (lambda: roi(spatial_scale=1e39), ValueError,
     "spatial_scale must stay finite when rounded to float32"),
    (lambda: grad_input(spatial_scale=-1e39), ValueError, "spatial_scale must stay finite"),
    (lambda: roi(spatial_scale=10**400), ValueError,
     "spatial_scale must be a real number within float64's range"),
    (lambda: crop(extrapolation_value=1e300), ValueError,
     "extrapolation_value must stay finite when rounded to float32, the type it is computed "
     "in; got 1e+300, which rounds to inf"),
    (lambda: crop(extrapolation_value=10**400), ValueError,
     "extrapolation_value must be a real number within float64's range"),
    # shapes: never truncated or parsed from strings
    (lambda: grad_image("2573"), TypeError, "image_shape must be 4 non-negative ints"),
    (lambda: grad_image((2.5, 5, 6, 3)), TypeError, "2.5 is a float"),
    (lambda: grad_image((2, 5, 6, "3")), TypeError, "'3' is a str"),
    (lambda: grad_image((2, 5, float("inf"), 3)), TypeError, "inf is a float"),
    (lambda: grad_image((2, True, 6, 3)), TypeError, "True is a bool"),
    (lambda: grad_image(7), TypeError, "image_shape must be 4 non-negative ints"),
    (lambda: grad_image((2, 3, 5, 6.0), data_format="NCHW"), TypeError,
     "image_shape must be 4 non-negative ints (B, D, H, W)"),
    (lambda: grad_image((2, -5, 6, 3)), ValueError, "image_shape must be 4 non-negative ints"),
    (lambda: grad_input("2389"), TypeError, "input_shape must be 4 non-negative ints"),
    (lambda: grad_input((2, 3, 8.0, 9)), TypeError, "8.0 is a float"),
    (lambda: grad_input((2, 3, 2**63, 9)), ValueError, "input_shape must be 4 non-negative ints"),
    # sizes whose result cannot fit in memory: before any allocation, stating the bytes
    (lambda: crop(crop_size=(2**40, 1)), ValueError,
     "crop_size (1099511627776, 1) needs 24 TiB (26388279066664 bytes)"),
    (lambda: crop(crop_size=(2**63, 1)), ValueError, "crop_size must be two positive ints"),
    (lambda: crop(boxes=np.zeros((0, 4), np.float32), box_indices=np.zeros(0, np.int32),
                  crop_size=(2**40, 2**40)), ValueError,
     "crop_size (1099511627776, 1099511627776) asks for an array of shape"),
    (lambda: roi(output_size=(2**20, 2**20)), ValueError,
     "output_size (1048576, 1048576) needs 24 TiB"),
    (lambda: grad_image((2, 2**40, 6, 3)), ValueError,
     "image_shape (2, 1099511627776, 6, 3) needs 144 TiB"),
    (lambda: grad_image((2, 3, 2**40, 6), data_format="NCHW", dtype=np.float16), ValueError,
     "image_shape (2, 3, 1099511627776, 6) needs 216 TiB"),  # float32 sums, then the result
    (lambda: grad_input((2, 3, 2**40, 9)), ValueError,
     "input_shape (2, 3, 1099511627776, 9) needs 216 TiB"),
    # arrays whose meaning the kernels would drop
    (lambda: crop(image=np.ma.masked_array(IMAGE, IMAGE > 0)), TypeError,
     "image must be a plain numpy.ndarray, got MaskedArray"),
    (lambda: crop(boxes=np.asmatrix(BOXES)), TypeError, "boxes must be a plain numpy.ndarray"),
    (lambda: roi(rois=np.asmatrix(ROIS)), TypeError,
     "rois must be a plain numpy.ndarray, got matrix"),
    (lambda: roi(input=np.ma.masked_array(FEATURES)), TypeError, "input must be a plain"),
    (lambda: crop(out=np.ma.masked_array(np.zeros((2, 3, 4, 3), np.float32))), ValueError,
     "out must be a numpy.ndarray, got MaskedArray"),
    # the value the user passed, not its int64 wraparound
    (lambda: crop(box_indices=np.array([0, 2**63], np.uint64)), ValueError,
     "row 1 is 9223372036854775808"),
])
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_hostile_arguments_are_refused(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_memory_is_checked_against_the_machine_before_allocating(monkeypatch):
    from roiops import _checks
    monkeypatch.setattr(_checks, "memory_limit", lambda device=None: (400, "this machine"))
    with pytest.raises(ValueError, match=r"crop_size \(3, 4\) needs 448 bytes"):
        crop()  # 2*3*4*3 float32 = 288 bytes, plus 2 boxes x 4 columns x 20 bytes of tables
    with pytest.raises(ValueError, match=r"more than the 400 bytes of memory of this machine"):
        roi(output_size=(9, 9))
    with pytest.raises(ValueError, match=r"image_shape \(2, 5, 6, 3\) needs"):
        grad_image()
    assert crop(out=np.empty((2, 3, 4, 3), np.float32)).shape == (2, 3, 4, 3)  # no result


def test_largest_sampling_ratio_runs():
    rois = np.array([[0, 1, 1, 2, 2]], np.float32)
    out = roiops.roi_align(FEATURES[:1, :1] + 1, rois, 1, sampling_ratio=1024, aligned=True)
    assert out[0, 0, 0, 0] == 1


def test_float64_data_takes_float64_arguments():
    image = IMAGE.astype(np.float64)
    crops = roiops.crop_and_resize(image, np.array([[2, 2, 3, 3]], np.float32), np.array([0]),
                                   (1, 1), extrapolation_value=1e300)
    assert crops[0, 0, 0, 0] == 1e300
    assert roiops.roi_align(FEATURES.astype(np.float64), ROIS, 2, spatial_scale=1e39).shape == (
        2, 3, 2, 2)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_extrapolation_value_is_kept(value):
    # TensorFlow accepts them (NaN marks samples outside the image)
    crops = crop(boxes=np.array([[2, 2, 3, 3]] * 2, np.float32), crop_size=(1, 1),
                 extrapolation_value=value)
    np.testing.assert_array_equal(crops, np.full((2, 1, 1, 3), value, np.float32))


def test_out_sharing_memory_with_an_input_is_refused():
    image = np.arange(72, dtype=np.float32).reshape(2, 3, 4, 3)
    before = image.copy()
    with pytest.raises(ValueError, match="out must not share memory with image"):
        roiops.crop_and_resize(image, BOXES, INDICES, (3, 4), out=image)
    features = np.random.default_rng(4).random((2, 3, 2, 3)).astype(np.float32)
    kept = features.copy()
    with pytest.raises(ValueError, match="out must not share memory with input"):
        roiops.roi_align(features, ROIS, (2, 3), out=features)
    buffer = np.zeros(2 * 3 * 2 * 3 + 10, np.float32)
    rois = buffer[:10].reshape(2, 5)
    rois[:] = ROIS
    with pytest.raises(ValueError, match="out must not share memory with rois"):
        roiops.roi_align(features, rois, (2, 3), out=buffer[6:42].reshape(2, 3, 2, 3))
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(features, kept)
    np.testing.assert_array_equal(rois, ROIS)


def big_endian(array):
    return array.astype(array.dtype.newbyteorder(">" if np.little_endian else "<"))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int16, np.uint16])
def test_non_native_byte_order_gives_the_native_bits(dtype):
    rng = np.random.default_rng(5)
    image = (rng.random((2, 5, 6, 3)) * 200).astype(dtype)
    grads = rng.standard_normal((2, 3, 4, 3)).astype(np.float32)
    swapped = [big_endian(a) for a in (image, BOXES, INDICES, grads)]
    assert not any(a.dtype.isnative for a in swapped)
    before = [a.copy() for a in swapped]
    result = roiops.crop_and_resize(*swapped[:3], (3, 4))
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, roiops.crop_and_resize(image, BOXES, INDICES, (3, 4)))
    np.testing.assert_array_equal(
        roiops.crop_and_resize_grad_image(swapped[3], *swapped[1:3], image.shape),
        roiops.crop_and_resize_grad_image(grads, BOXES, INDICES, image.shape))
    if image.dtype.kind == "f":
        np.testing.assert_array_equal(
            roiops.crop_and_resize_grad_boxes(swapped[3], *swapped[:3]),
            roiops.crop_and_resize_grad_boxes(grads, image, BOXES, INDICES))
    for a, b in zip(swapped, before):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_native_byte_order_gives_the_native_bits_in_roi_align(dtype):
    rng = np.random.default_rng(6)
    features = rng.standard_normal((2, 3, 8, 9)).astype(dtype)
    pooled = rng.standard_normal((2, 3, 2, 3)).astype(dtype)
    result = roiops.roi_align(big_endian(features), big_endian(ROIS), (2, 3))
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result, roiops.roi_align(features, ROIS, (2, 3)))
    np.testing.assert_array_equal(
        roiops.roi_align_grad_input(big_endian(pooled), big_endian(ROIS), features.shape, (2, 3)),
        roiops.roi_align_grad_input(pooled, ROIS, features.shape, (2, 3)))
    np.testing.assert_array_equal(
        roiops.roi_align_grad_boxes(big_endian(pooled), big_endian(features), big_endian(ROIS),
                                    (2, 3)),
        roiops.roi_align_grad_boxes(pooled, features, ROIS, (2, 3)))


def test_values_beyond_the_result_dtype_become_inf_without_a_warning():
    # found by tests/test_fuzz.py: valid calls warned "overflow encountered in cast" (an
    # exception under -W error) when a float16 result or a float64 box overflowed on rounding
    boxes = np.zeros((2, 4), np.float32)
    grads = np.full((2, 1, 1, 1), 6e4, np.float16)
    far = np.array([[0, 0, 1e300, 1]], np.float64)
    pooled = np.full((2, 1, 1, 1), 6e4, np.float16)
    rois = np.array([[0, 0, 0, 1, 1]] * 2, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image_grad = roiops.crop_and_resize_grad_image(grads, boxes, np.zeros(2, np.int32),
                                                       (1, 1, 1, 1))
        crops = roiops.crop_and_resize(IMAGE, far, np.array([0]), (1, 1),
                                       extrapolation_value=-1.0)
        input_grad = roiops.roi_align_grad_input(pooled, rois, (1, 1, 1, 1), 1,
                                                 sampling_ratio=1)
    assert image_grad[0, 0, 0, 0] == np.inf and input_grad[0, 0, 0, 0] == np.inf
    assert crops.shape == (1, 1, 1, 3) and (crops == -1).all()


@pytest.mark.parametrize("index", [1e30, -1e30, 2.0**63])
def test_a_batch_index_beyond_int64_is_refused_without_a_warning(index):
    # found by tests/test_fuzz.py: the truncated index was cast to int64 before the range
    # check ("invalid value encountered in cast"; the refusal relied on what the cast gave)
    rois = np.array([[0, 1, 1, 5, 6], [index, 1, 1, 5, 6]], np.float64)
    with warnings.catch_warnings(), pytest.raises(ValueError) as info:
        warnings.simplefilter("error")
        roi(rois=rois)
    assert f"rois batch index must be in [0, 2) (the batch size), row 1 is {index!r}" in str(
        info.value)


def test_a_half_batch_index_is_compared_with_the_batch_size_exactly():
    # found by tests/test_fuzz.py: float16 indices were compared with the batch size rounded to
    # float16 (2049 -> 2048 refused a valid index; 2**40 -> inf warned of an overflow)
    rois = np.array([[2048, 0, 0, 2, 2]], np.float16)
    grads = np.ones((1, 1, 1, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = roiops.roi_align_grad_input(grads, rois, (2049, 1, 3, 3), (1, 1))
        assert grad.shape == (2049, 1, 3, 3) and grad[2048].any()
        with pytest.raises(ValueError, match="input_shape"):
            roiops.roi_align_grad_input(grads, rois, (2**40, 1, 3, 3), (1, 1))
