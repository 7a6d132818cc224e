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

import numpy as np

from .. import _arrays, _checks
from .._typing import ArrayOrTensor
from ..roi_align import api

try:  # RoIAlign is a torch.nn.Module, like torchvision's, when torch is installed
    from torch.nn import Module as _ModuleBase
except ImportError:
    _ModuleBase = object  # type: ignore[misc,assignment]  # the fallback base, by design


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


def _prepare(data, name, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """(options, rois in the data's dtype, F, half) in torchvision's arithmetic."""
    _checks.require_array(name, data)
    _checks.require_dtype(name, data, _checks.FLOAT_DTYPES)
    half = data.dtype == np.float16
    scale = _checks.require_number("spatial_scale", spatial_scale)
    if data.dtype != np.float64:  # torchvision converts the double scale to T once
        scale = _checks.representable("spatial_scale", scale, np.float32, data.dtype)
    options = api.Options(output_size, scale, sampling_ratio, aligned, "torchvision", 1)
    _checks.require_array("boxes", rois)
    _checks.require_dtype("boxes", rois, _checks.FLOAT_DTYPES)
    _checks.require_shape("boxes", rois, ("K", 5))
    with np.errstate(over="ignore"):  # boxes beyond the data's range become inf, then refused
        rois = rois.astype(data.dtype, copy=False)
    return options, rois, _arrays.native_compute_type(data.dtype), half


def roi_align(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
              output_size: int | Sequence[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> ArrayOrTensor:
    """``torchvision.ops.roi_align`` on NumPy arrays.

    input ``[N,C,H,W]`` float16/32/64; boxes a ``[K,5]`` array ``(batch_index, x1, y1, x2,
    y2)`` or a list of ``[L,4]`` arrays; output_size an int or ``(height, width)``.
    Returns ``[K,C,height,width]`` of the input's dtype.
    """
    if _has_tensor(input, boxes):
        from ..torch import compat as torch_compat  # torch is optional: imported on first use
        return torch_compat.torchvision_roi_align(input, boxes, output_size, spatial_scale,
                                                  sampling_ratio, aligned)
    input, boxes = _arrays.native_byte_order(input, boxes)
    rois = _rois(boxes)
    options, rois, F, half = _prepare(input, "input", rois, output_size, spatial_scale,
                                      sampling_ratio, aligned)
    api.check_input("input", input)
    indices = api.check_rois(rois, input.shape[0], options, "boxes")
    return api.run_forward(input, rois, indices, options, F, input.dtype, half_arithmetic=half)


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
        from ..torch import compat as torch_compat  # torch is optional: imported on first use
        return torch_compat.host_call(roi_align_backward, grad_output, boxes, input_shape,
                                      output_size, spatial_scale, sampling_ratio, aligned)
    grad_output, boxes = _arrays.native_byte_order(grad_output, boxes)
    rois = _rois(boxes)
    options, rois, F, half = _prepare(grad_output, "grad_output", rois, output_size,
                                      spatial_scale, sampling_ratio, aligned)
    shape = api.check_input_shape(input_shape)
    indices = api.check_rois(rois, shape[0], options, "boxes")
    api.check_grads(grad_output, rois.shape[0], shape[1], options, "grad_output")
    return api.run_grad_input(grad_output, rois, indices, shape, options, F, grad_output.dtype,
                              half_arithmetic=half)


class RoIAlign(_ModuleBase):
    """``torchvision.ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise); called with
    ``(input, rois)`` as NumPy arrays or tensors.
    """

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

    if _ModuleBase is object:
        __call__ = forward

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned})")
