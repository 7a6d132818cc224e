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

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor, FloatDtype
from ..crop_and_resize import api as crop_api
from ..crop_and_resize import checks as crop_checks
from ..roi_align import api as roi_api
from ..roi_align import checks as roi_checks
from .tensorflow import DTYPES as _CROP_DTYPES  # MindSpore's dtype rule is TensorFlow's

_HALF_OR_SINGLE = ("float16", "float32")
_CROP_NAMES = crop_checks.Names(image="x", indices="box_index", image_shape="image_size",
                                dtype="T")
_GRAD_NAMES = _CROP_NAMES._replace(image="image")
# The pooled size's name in messages about the result's size.
ROI_NAMES = roi_checks.Names(input="features", output_size="pooled_height, pooled_width")
_ROI_GRAD_NAMES = ROI_NAMES._replace(grads="dy", input_shape="xdiff_shape")


def _require_type(name, value, kinds, description):
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise TypeError(f"{name} must be {description}, got {type(value).__name__} {value!r}")


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
        crop_checks.method_code(method)
        self.method = method
        self.extrapolation_value = extrapolation_value

    def __call__(self, x: ArrayOrTensor, boxes: ArrayOrTensor, box_index: ArrayOrTensor,
                 crop_size: Sequence[int]) -> ArrayOrTensor:
        if _checks.any_tensor(x, boxes, box_index):
            return _dispatch.tensor_implementation("compat.crop_and_resize")(
                x, boxes, box_index, crop_size, self.method, self.extrapolation_value,
                _CROP_NAMES, _CROP_DTYPES, crop_checks.METHODS)
        x, boxes, box_index = _arrays.native_byte_order(x, boxes, box_index)
        call = crop_checks.check_forward(_checks.NUMPY, x, boxes, box_index, crop_size,
                                         self.method, self.extrapolation_value,
                                         names=_CROP_NAMES, dtypes=_CROP_DTYPES)
        indices = crop_checks.check_box_values(boxes, box_index, call.image_shape[0],
                                               _CROP_NAMES)
        return crop_api.run_forward(call.computed_in(np.float32, np.float32), x, boxes, indices)


class CropAndResizeGradImage:
    """MindSpore's ``CropAndResizeGradImage(T, method)(grads, boxes, box_index, image_size)``.

    T float16, float32 or float64 (float32 weights; a float16 T rounds after every add);
    method "bilinear" or "nearest" (MindSpore's validator rejects "bilinear_v2").
    """

    def __init__(self, T: FloatDtype, method: str = "bilinear") -> None:
        self.dtype = _checks.float_dtype("T", T)
        _require_type("method", method, str, "a str")
        crop_checks.method_code(method, ("bilinear", "nearest"))
        self.method = method

    def __call__(self, grads: ArrayOrTensor, boxes: ArrayOrTensor, box_index: ArrayOrTensor,
                 image_size: Sequence[int]) -> ArrayOrTensor:
        if _checks.any_tensor(grads, boxes, box_index):
            return _dispatch.tensor_implementation("compat.host_call")(
                self.__call__, grads, boxes, box_index, image_size)
        grads, boxes, box_index = _arrays.native_byte_order(grads, boxes, box_index)
        call = crop_checks.check_grad_image(_checks.NUMPY, grads, boxes, box_index, image_size,
                                            self.method, self.dtype, names=_GRAD_NAMES,
                                            dtypes=_CROP_DTYPES)
        indices = crop_checks.check_box_values(boxes, box_index, call.image_shape[0],
                                               _GRAD_NAMES)
        return crop_api.run_grad_image(call.computed_in(np.float32, self.dtype), grads, boxes,
                                       indices, half_accumulate=self.dtype == np.float16,
                                       size_name="image_size")


class CropAndResizeGradBoxes:
    """MindSpore's ``CropAndResizeGradBoxes(method)(grads, image, boxes, box_index)``.

    The bilinear box gradient, float32 ``[N,4]``; a crop size of 1 accumulates
    ``(gy * 0.5) * (H - 1)`` in float32 as MindSpore does (TensorFlow uses double there).
    """

    def __init__(self, method: str = "bilinear") -> None:
        _require_type("method", method, str, "a str")
        crop_checks.method_code(method, ("bilinear",))
        self.method = method

    def __call__(self, grads: ArrayOrTensor, image: ArrayOrTensor, boxes: ArrayOrTensor,
                 box_index: ArrayOrTensor) -> ArrayOrTensor:
        if _checks.any_tensor(grads, image, boxes, box_index):
            return _dispatch.tensor_implementation("compat.host_call")(
                self.__call__, grads, image, boxes, box_index)
        grads, image, boxes, box_index = _arrays.native_byte_order(grads, image, boxes,
                                                                   box_index)
        call = crop_checks.check_grad_boxes(_checks.NUMPY, grads, image, boxes, box_index,
                                            self.method, names=_GRAD_NAMES, dtypes=_CROP_DTYPES,
                                            methods=("bilinear",))
        indices = crop_checks.check_box_values(boxes, box_index, call.image_shape[0],
                                               _GRAD_NAMES)
        return crop_api.run_grad_boxes(call.computed_in(np.float32, np.float32), grads, image,
                                       boxes, indices, crop1_in_double=False)


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


def _options(primitive, roi_end_mode):
    return roi_checks.Options((primitive.pooled_height, primitive.pooled_width),
                              primitive.spatial_scale, primitive.sample_num, False, "mindspore",
                              roi_end_mode)


def _in_mindspore_arithmetic(call, half):
    """``call`` computed as MindSpore does: in float32 (every operation rounded to half for
    two float16 tensors), the scale stored as float32 (then as float16)."""
    dtypes = (np.float32, np.float16) if half else (np.float32,)
    scale = _checks.representable("spatial_scale", call.options.spatial_scale, *dtypes)
    return call._replace(options=call.options.with_scale(scale), F=np.float32,
                         half_arithmetic=half)


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
            return _dispatch.tensor_implementation("compat.mindspore_roi_align")(
                self, features, rois)
        features, rois = _arrays.native_byte_order(features, rois)
        call = roi_checks.check_forward(_checks.NUMPY, features, rois,
                                        _options(self, self.roi_end_mode), ROI_NAMES,
                                        _HALF_OR_SINGLE)
        call = _in_mindspore_arithmetic(call, features.dtype == rois.dtype == np.float16)
        indices = roi_checks.check_roi_values(rois, call.input_shape[0],
                                              call.options.convention)
        return roi_api.run_forward(call, features, rois, indices)

    def features_gradient(self, dy: ArrayOrTensor, rois: ArrayOrTensor,
                          features_shape: Sequence[int]) -> ArrayOrTensor:
        """The true adjoint of this forward (its ``roi_end_mode``) in MindSpore's arithmetic:
        :class:`ROIAlignGrad` always uses ``roi_end_mode = 1``. NumPy arrays."""
        return _features_gradient(self, self.roi_end_mode, dy, rois, features_shape)


def _features_gradient(primitive, roi_end_mode, dy, rois, xdiff_shape):
    dy, rois = _arrays.native_byte_order(dy, rois)
    call = roi_checks.check_grad_input(_checks.NUMPY, dy, rois, xdiff_shape,
                                       _options(primitive, roi_end_mode), _ROI_GRAD_NAMES,
                                       _HALF_OR_SINGLE)
    call = _in_mindspore_arithmetic(call, dy.dtype == rois.dtype == np.float16)
    indices = roi_checks.check_roi_values(rois, call.input_shape[0], call.options.convention)
    return roi_api.run_grad_input(call, dy, rois, indices)


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
            return _dispatch.tensor_implementation("compat.host_call")(
                self.__call__, dy, rois, xdiff_shape)
        return _features_gradient(self, 1, dy, rois, xdiff_shape)
