"""MindSpore's CropAndResize, ROIAlign and their gradient primitives, bit for bit (2.10 CPU).

Classes are built like MindSpore primitives (constructor attributes, then a call with the
tensors), with MindSpore's constructor errors. Where MindSpore is undefined or wrong, roiops
decides (docs/decisions.md): batch indices out of range raise ValueError (ROIAlignGrad and
CropAndResizeGradBoxes do not check them); rois hit by ROIAlign's skip rule
(``|x1| < 0.001`` and ``|x2| < 0.001``, left unwritten by MindSpore) are computed like any
other; bilinear_v2 has no window overflow error.

Example:
    >>> import numpy as np
    >>> from roiops.compat import mindspore as ms
    >>> features = np.array([[[[1, 2], [3, 4]]]], np.float32)
    >>> rois = np.array([[0, 0.2, 0.3, 0.2, 0.3]], np.float32)
    >>> ms.ROIAlign(2, 2, 0.5, 2)(features, rois)[0, 0, 0, 0]
    np.float32(1.7749999)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks
from .._typing import ArrayOrTensor, FloatDtype
from ..crop_and_resize import api as crop_api
from ..roi_align import api as roi_api

_FLOAT32 = (np.dtype(np.float32),)
_HALF_OR_SINGLE = (np.dtype(np.float16), np.dtype(np.float32))


def _require_type(name, value, kinds, description):
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise TypeError(f"{name} must be {description}, got {type(value).__name__} {value!r}")


def _check_ms_boxes(boxes, box_index, batch):
    _checks.require_array("boxes", boxes)
    _checks.require_array("box_index", box_index)
    _checks.require_dtype("boxes", boxes, _FLOAT32)
    _checks.require_dtype("box_index", box_index, (np.dtype(np.int32),))
    return crop_api.check_boxes(boxes, box_index, batch, "box_index")


class CropAndResize:
    """``mindspore.ops.CropAndResize(method, extrapolation_value)(x, boxes, box_index, crop_size)``.

    x ``[B,H,W,D]`` of int8, int16, int32, int64, uint8, uint16, float16, float32, float64;
    boxes ``[N,4]`` float32; box_index ``[N]`` int32; crop_size a pair of positive ints.
    Output float32 ``[N,ch,cw,D]``. Methods "bilinear", "nearest", "bilinear_v2".
    """

    def __init__(self, method: str = "bilinear", extrapolation_value: float = 0.0) -> None:
        _require_type("method", method, str, "a str")
        _require_type("extrapolation_value", extrapolation_value, float, "a float")
        _checks.representable("extrapolation_value", extrapolation_value, np.float32)
        crop_api.method_code(method)
        self.method = method
        self.extrapolation_value = extrapolation_value

    def __call__(self, x: ArrayOrTensor, boxes: ArrayOrTensor, box_index: ArrayOrTensor,
                 crop_size: Sequence[int]) -> ArrayOrTensor:
        if _checks.any_tensor(x, boxes, box_index):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.crop_and_resize(x, boxes, box_index, crop_size, self.method,
                                                self.extrapolation_value,
                                                ("x", "boxes", "box_index"), crop_api.METHODS)
        x, boxes, box_index = _arrays.native_byte_order(x, boxes, box_index)
        view = crop_api.check_image("x", x, "NHWC")
        indices = _check_ms_boxes(boxes, box_index, view.shape[0])
        crop_size = _checks.size_pair("crop_size", crop_size)
        return crop_api.run_forward(view, boxes, indices, crop_size, self.method,
                                    self.extrapolation_value, "NHWC", np.float32, np.float32)


class CropAndResizeGradImage:
    """MindSpore's ``CropAndResizeGradImage(T, method)(grads, boxes, box_index, image_size)``.

    T float16, float32 or float64 (float32 weights; a float16 T rounds after every add);
    method "bilinear" or "nearest" (MindSpore's validator rejects "bilinear_v2").
    """

    def __init__(self, T: FloatDtype, method: str = "bilinear") -> None:
        self.dtype = _checks.float_dtype("T", T)
        _require_type("method", method, str, "a str")
        crop_api.method_code(method, ("bilinear", "nearest"))
        self.method = method

    def __call__(self, grads: ArrayOrTensor, boxes: ArrayOrTensor, box_index: ArrayOrTensor,
                 image_size: Sequence[int]) -> ArrayOrTensor:
        if _checks.any_tensor(grads, boxes, box_index):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.host_call(self.__call__, grads, boxes, box_index, image_size)
        grads, boxes, box_index = _arrays.native_byte_order(grads, boxes, box_index)
        shape = crop_api.check_image_shape(image_size, "NHWC", "image_size")
        indices = _check_ms_boxes(boxes, box_index, shape[0])
        _checks.require_dtype("grads", _checks.require_array("grads", grads), _FLOAT32)
        view = crop_api.check_grads(grads, "NHWC", boxes.shape[0])
        crop_api.require_same_depth("image_size", shape[3], "grads", view.shape[3])
        return crop_api.run_grad_image(view, boxes, indices, shape, self.method, "NHWC",
                                       np.float32, self.dtype,
                                       half_accumulate=self.dtype == np.float16,
                                       size_name="image_size")


class CropAndResizeGradBoxes:
    """MindSpore's ``CropAndResizeGradBoxes(method)(grads, image, boxes, box_index)``.

    The bilinear box gradient, float32 ``[N,4]``; a crop size of 1 accumulates
    ``(gy * 0.5) * (H - 1)`` in float32 as MindSpore does (TensorFlow uses double there).
    """

    def __init__(self, method: str = "bilinear") -> None:
        _require_type("method", method, str, "a str")
        crop_api.method_code(method, ("bilinear",))
        self.method = method

    def __call__(self, grads: ArrayOrTensor, image: ArrayOrTensor, boxes: ArrayOrTensor,
                 box_index: ArrayOrTensor) -> ArrayOrTensor:
        if _checks.any_tensor(grads, image, boxes, box_index):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.host_call(self.__call__, grads, image, boxes, box_index)
        grads, image, boxes, box_index = _arrays.native_byte_order(grads, image, boxes,
                                                                   box_index)
        view = crop_api.check_image("image", image, "NHWC")
        indices = _check_ms_boxes(boxes, box_index, view.shape[0])
        _checks.require_dtype("grads", _checks.require_array("grads", grads), _FLOAT32)
        grads_view = crop_api.check_grads(grads, "NHWC", boxes.shape[0])
        crop_api.require_same_depth("grads", grads_view.shape[3], "image", view.shape[3])
        return crop_api.run_grad_boxes(grads_view, view, boxes, indices, np.float32,
                                       np.float32, crop1_in_double=False)


def _roi_options(pooled_height, pooled_width, spatial_scale, sample_num, roi_end_mode,
                 half):
    """Options in MindSpore's arithmetic: the scale is stored as float32, then as T."""
    dtypes = (np.float32, np.float16) if half else (np.float32,)
    scale = _checks.representable("spatial_scale", spatial_scale, *dtypes)
    return roi_api.Options((pooled_height, pooled_width), scale, sample_num, False,
                           "mindspore", roi_end_mode)


def _check_roi_attributes(pooled_height, pooled_width, spatial_scale, sample_num,
                          roi_end_mode=1):
    """The constructor checks of ROIAlign and ROIAlignGrad: MindSpore's types, roiops' bounds."""
    for name, value in (("pooled_height", pooled_height), ("pooled_width", pooled_width),
                        ("sample_num", sample_num), ("roi_end_mode", roi_end_mode)):
        _require_type(name, value, int, "an int")
    _require_type("spatial_scale", spatial_scale, float, "a float")
    _checks.size_pair("pooled_height, pooled_width", (pooled_height, pooled_width))
    _checks.representable("spatial_scale", spatial_scale, np.float32)
    _checks.require_sampling_ratio("sample_num", sample_num)
    if roi_end_mode not in (0, 1):
        raise ValueError(f"roi_end_mode must be 0 or 1, got {roi_end_mode}")


# The pooled size's name in messages about the result's size.
_POOLED_SIZE = "pooled_height, pooled_width"


def _half_mode(first, second, first_name, second_name):
    """MindSpore's dtype rule: same half/single dtype -> that arithmetic; mixed -> float32."""
    _checks.require_array(first_name, first)
    _checks.require_array(second_name, second)
    _checks.require_dtype(first_name, first, _HALF_OR_SINGLE)
    _checks.require_dtype(second_name, second, _HALF_OR_SINGLE)
    return first.dtype == np.float16 and second.dtype == np.float16


class ROIAlign:
    """``mindspore.ops.ROIAlign(pooled_height, pooled_width, spatial_scale, sample_num=2,
    roi_end_mode=1)(features, rois)``.

    features ``[N,C,H,W]`` and rois ``[R,5]`` (batch index, x1, y1, x2, y2), float16 or float32;
    both float16 computes every operation in half, mixed dtypes compute in float32; output
    ``[R,C,PH,PW]`` of the features dtype. An adaptive grid (``sample_num <= 0``) uses
    ``floor`` and gives NaN for bins without samples, as MindSpore does.
    """

    def __init__(self, pooled_height: int, pooled_width: int, spatial_scale: float,
                 sample_num: int = 2, roi_end_mode: int = 1) -> None:
        _check_roi_attributes(pooled_height, pooled_width, spatial_scale, sample_num,
                              roi_end_mode)
        self.pooled_height, self.pooled_width = pooled_height, pooled_width
        self.spatial_scale, self.sample_num = spatial_scale, sample_num
        self.roi_end_mode = roi_end_mode

    def __call__(self, features: ArrayOrTensor, rois: ArrayOrTensor) -> ArrayOrTensor:
        if _checks.any_tensor(features, rois):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.mindspore_roi_align(self, features, rois)
        features, rois = _arrays.native_byte_order(features, rois)
        half = _half_mode(features, rois, "features", "rois")
        options = _roi_options(self.pooled_height, self.pooled_width, self.spatial_scale,
                               self.sample_num, self.roi_end_mode, half)
        roi_api.check_input("features", features)
        indices = roi_api.check_rois(rois, features.shape[0], options)
        return roi_api.run_forward(features, rois, indices, options, np.float32,
                                   features.dtype, half_arithmetic=half, size_name=_POOLED_SIZE)


class ROIAlignGrad:
    """MindSpore's ``ROIAlignGrad(pooled_height, pooled_width, spatial_scale,
    sample_num=2)(dy, rois, xdiff_shape)``: the input gradient of ROIAlign.

    Reproduces MindSpore's primitive, including its fixed ``roi_end_mode = 1`` geometry
    whatever the forward used (use ``roiops.roi_align_grad_input`` for the true adjoint of a
    mode-0 forward). dy and rois float16 or float32; output ``xdiff_shape`` in dy's dtype.
    """

    def __init__(self, pooled_height: int, pooled_width: int, spatial_scale: float,
                 sample_num: int = 2) -> None:
        _check_roi_attributes(pooled_height, pooled_width, spatial_scale, sample_num)
        self.pooled_height, self.pooled_width = pooled_height, pooled_width
        self.spatial_scale, self.sample_num = spatial_scale, sample_num

    def __call__(self, dy: ArrayOrTensor, rois: ArrayOrTensor,
                 xdiff_shape: Sequence[int]) -> ArrayOrTensor:
        if _checks.any_tensor(dy, rois):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.host_call(self.__call__, dy, rois, xdiff_shape)
        dy, rois = _arrays.native_byte_order(dy, rois)
        half = _half_mode(dy, rois, "dy", "rois")
        options = _roi_options(self.pooled_height, self.pooled_width, self.spatial_scale,
                               self.sample_num, 1, half)
        shape = roi_api.check_input_shape(xdiff_shape, "xdiff_shape")
        indices = roi_api.check_rois(rois, shape[0], options)
        roi_api.check_grads(dy, rois.shape[0], shape[1], options, "dy")
        return roi_api.run_grad_input(dy, rois, indices, shape, options, np.float32, dy.dtype,
                                      half_arithmetic=half, size_name="xdiff_shape")
