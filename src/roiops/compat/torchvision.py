"""torchvision's ``roi_align``, bit for bit (torchvision 0.28 CPU), on NumPy arrays.

float16 computes every operation in half as torchvision's CPU kernel does; float32 and
float64 are exact. Where torchvision is undefined (docs/decisions.md) roiops raises ValueError for
out-of-range batch indices and non-finite boxes, does not read samples outside the map (so an
inf or NaN at pixel (0, 0) does not poison other outputs), returns zeros instead of
torchvision's ``std::vector`` error for reversed aligned boxes, and accepts boxes of any float
dtype (converted to the input's dtype).

Example:
    >>> import numpy as np
    >>> from roiops.compat.torchvision import roi_align
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> roi_align(x, [np.array([[0.5, 0.5, 2.5, 2.5]], np.float32)], (2, 2), 1.0, 2, True)[0, 0]
    array([[2.5, 3.5],
           [6.5, 7.5]], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align import api, checks

_NAMES = checks.Names(rois="boxes")
_GRAD_NAMES = _NAMES._replace(grads="grad_output")


def _has_tensor(input, boxes):
    return _checks.any_tensor(input, boxes, *(boxes if isinstance(boxes, (list, tuple)) else ()))


def _rois(boxes):
    """``[K, 5]`` rois from a ``[K, 5]`` array or a list of ``[L, 4]`` arrays (one per image)."""
    if isinstance(boxes, np.ndarray):
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a [K, 5] array or a list of [L, 4] arrays, "
                        f"got {type(boxes).__name__}")
    if not boxes:
        raise ValueError("boxes must hold at least one array, got an empty list")
    for i, item in enumerate(boxes):
        _checks.require_array(f"boxes[{i}]", item)
        _checks.require_dtype(f"boxes[{i}]", item, _checks.FLOAT_DTYPES)
        _checks.require_shape(f"boxes[{i}]", item, ("L", 4))
    dtype = np.result_type(*boxes)
    return np.concatenate([
        np.concatenate([np.full((len(b), 1), i, dtype), b.astype(dtype, copy=False)], axis=1)
        for i, b in enumerate(boxes)
    ])


def in_data_type(call: checks.RoiAlign) -> checks.RoiAlign:
    """A checked ``call`` in torchvision's arithmetic for its data's dtype (``kernel_dtype``):
    the double spatial scale converted to the data's type once, and for float16 every
    operation rounded to half."""
    half = call.kernel_dtype == np.float16
    scale = call.options.spatial_scale
    if call.kernel_dtype != np.float64:
        scale = _checks.representable("spatial_scale", scale, np.float32, call.kernel_dtype)
    return call._replace(options=call.options.with_scale(scale), half_arithmetic=half)


def _in_data_type(call, rois):
    """(call, rois) as torchvision computes: :func:`in_data_type`, the boxes converted to the
    data's dtype."""
    with np.errstate(over="ignore"):  # boxes beyond the data's range become inf, then refused
        rois = rois.astype(call.kernel_dtype, copy=False)
    return in_data_type(call), rois


def _options(output_size, spatial_scale, sampling_ratio, aligned):
    return checks.Options(output_size, spatial_scale, sampling_ratio, aligned, "torchvision", 1)


def roi_align(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
              output_size: int | Sequence[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> ArrayOrTensor:
    """``torchvision.ops.roi_align`` on NumPy arrays.

    input ``[N,C,H,W]`` float16/32/64; boxes a ``[K,5]`` array ``(batch_index, x1, y1, x2,
    y2)`` or a list of ``[L,4]`` arrays; output_size an int or ``(height, width)``.
    Returns ``[K,C,height,width]`` of the input's dtype.
    """
    if _has_tensor(input, boxes):
        return _dispatch.tensor_implementation("compat.torchvision_roi_align")(
            input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
    input, boxes = _arrays.native_byte_order(input, boxes)
    rois = _rois(boxes)
    call = checks.check_forward(_checks.NUMPY, input, rois,
                                _options(output_size, spatial_scale, sampling_ratio, aligned),
                                _NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], call.options.convention,
                                      "boxes")
    return api.run_forward(call, input, rois, indices)


def roi_align_backward(grad_output: ArrayOrTensor,
                       boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                       input_shape: Sequence[int], output_size: int | Sequence[int],
                       spatial_scale: float = 1.0, sampling_ratio: int = -1,
                       aligned: bool = False) -> ArrayOrTensor:
    """The input gradient exactly as torchvision's backward computes it (half included).

    grad_output ``[K,C,height,width]``; input_shape ``(N,C,H,W)``; returns ``input_shape``
    in grad_output's dtype.
    """
    if _has_tensor(grad_output, boxes):
        return _dispatch.tensor_implementation("compat.host_call")(
            roi_align_backward, grad_output, boxes, input_shape, output_size, spatial_scale,
            sampling_ratio, aligned)
    grad_output, boxes = _arrays.native_byte_order(grad_output, boxes)
    rois = _rois(boxes)
    call = checks.check_grad_input(_checks.NUMPY, grad_output, rois, input_shape,
                                   _options(output_size, spatial_scale, sampling_ratio,
                                            aligned), _GRAD_NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], call.options.convention,
                                      "boxes")
    return api.run_grad_input(call, grad_output, rois, indices)


class RoIAlign:
    """``torchvision.ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise); called with
    ``(input, rois)`` as NumPy arrays or tensors. torch is imported when the first instance
    is made, not with this module.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RoIAlign:
        if cls is RoIAlign:
            try:  # the torch.nn.Module subclass that roiops.torch registers
                cls = _dispatch.tensor_implementation("compat.torchvision_RoIAlign")
            except ImportError:  # no torch: a plain callable
                pass
        return super().__new__(cls)

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float,
                 sampling_ratio: int, aligned: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: ArrayOrTensor,
                rois: ArrayOrTensor | Sequence[ArrayOrTensor]) -> ArrayOrTensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned})")
