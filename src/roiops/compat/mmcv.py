"""mmcv's ``RoIAlignRotated`` and ``roi_align_rotated``, bit for bit (its CPU kernel) in
float32 and float64, on NumPy arrays or tensors.

Rois ``[K, 6]`` are ``(batch_index, cx, cy, w, h, angle)`` with the angle in radians,
counter-clockwise unless ``clockwise``; ``aligned=False`` is mmcv's legacy mode (no half-pixel
shift, sizes held at 1 at least). The arithmetic is the native ``convention="mmcv"``
(docs/rotated.md) with mmcv's ``float`` spatial scale (rounded to float32 whatever the
dtype), so this module holds no math. float16 runs the native kernels' half arithmetic
(every operation rounded to half, as mmcv's CPU kernel computes it; the rois are converted
to float16 first, as mmcv requires them in the input's dtype): bit-exact too, on the host,
and float16 tensors are not differentiable here (the native ``roiops.roi_align_rotated``
with ``convention="mmcv"`` is, in float32 arithmetic). Where mmcv is undefined or asserts,
roiops raises ValueError (batch indices outside the batch, non-finite rois, negative sizes
when aligned), and it accepts rois of any float dtype (converted to the compute type).
Importing this module does not import torch.

Example:
    >>> import numpy as np
    >>> from roiops.compat.mmcv import roi_align_rotated
    >>> x = np.array([[[[1., 2.], [3., 4.]]]], np.float32)
    >>> roi_align_rotated(x, np.array([[0, 0.5, 0.5, 1, 1, 0]], np.float32), (2, 2), 1.0, 2)
    array([[[[1.  , 1.25],
             [1.5 , 1.75]]]], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align_rotated import api, checks
from ..roi_align_rotated.api import roi_align_rotated as _native

__all__ = ["roi_align_rotated", "roi_align_rotated_backward", "RoIAlignRotated"]
_GRAD_NAMES = checks.Names(grads="grad_output")


def _float_scale(spatial_scale):
    """mmcv's ``float spatial_scale``: the value rounded to float32."""
    return _checks.representable("spatial_scale",
                                 _checks.require_number("spatial_scale", spatial_scale),
                                 np.float32)


def _is_half(array):
    return str(getattr(array, "dtype", "")).split(".")[-1] == "float16"


def _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise):
    return checks.Options(output_size, _float_scale(spatial_scale), sampling_ratio, aligned,
                          clockwise, "mmcv")


def _in_data_type(call, rois):
    """(call, rois) as mmcv computes a checked NumPy call: for float16 the scale rounded to
    half and every operation rounded to half, the rois converted to float16."""
    if call.kernel_dtype != np.float16:
        return call, rois
    scale = _checks.representable("spatial_scale", call.options.spatial_scale, np.float16)
    with np.errstate(over="ignore"):  # rois beyond half's range become inf, then refused
        rois = rois.astype(np.float16)
    return call._replace(options=call.options.with_scale(scale), half_arithmetic=True), rois


@_dispatch.script_as("script.mmcv_roi_align_rotated")
def roi_align_rotated(input: ArrayOrTensor, rois: ArrayOrTensor,
                      output_size: int | Sequence[int], spatial_scale: float,
                      sampling_ratio: int = 0, aligned: bool = True,
                      clockwise: bool = False) -> ArrayOrTensor:
    """``mmcv.ops.roi_align_rotated(input, rois, output_size, spatial_scale,
    sampling_ratio=0, aligned=True, clockwise=False)``: ``[K, C, *output_size]`` of the
    input's dtype (float32/float64 tensors differentiable, also w.r.t. the rois, which mmcv
    is not)."""
    if not _is_half(input):
        return _native(input, rois, output_size, spatial_scale=_float_scale(spatial_scale),
                       sampling_ratio=sampling_ratio, aligned=aligned, clockwise=clockwise,
                       convention="mmcv")
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("compat.host_call")(
            roi_align_rotated, input, rois, output_size, spatial_scale, sampling_ratio,
            aligned, clockwise)
    input, rois = _arrays.native_byte_order(input, rois)
    call = checks.check_forward(_checks.NUMPY, input, rois,
                                _options(output_size, spatial_scale, sampling_ratio, aligned,
                                         clockwise))
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], call)
    return api.run_forward(call, input, rois, indices)


def roi_align_rotated_backward(grad_output: ArrayOrTensor, rois: ArrayOrTensor,
                               input_shape: Sequence[int], output_size: int | Sequence[int],
                               spatial_scale: float, sampling_ratio: int = 0,
                               aligned: bool = True, clockwise: bool = False
                               ) -> ArrayOrTensor:
    """The input gradient exactly as mmcv's backward computes it (float16 in half
    arithmetic): ``input_shape`` in grad_output's dtype, on the host for tensors.

    Example:
        >>> import numpy as np
        >>> roi_align_rotated_backward(np.ones((1, 1, 1, 1), np.float16),
        ...     np.array([[0, 1, 1, 1, 1, 0]], np.float16), (1, 1, 2, 2), 1, 1.0, 1)[0, 0]
        array([[0.25, 0.25],
               [0.25, 0.25]], dtype=float16)
    """
    if _checks.any_tensor(grad_output, rois):
        return _dispatch.tensor_implementation("compat.host_call")(
            roi_align_rotated_backward, grad_output, rois, input_shape, output_size,
            spatial_scale, sampling_ratio, aligned, clockwise)
    grad_output, rois = _arrays.native_byte_order(grad_output, rois)
    call = checks.check_grad_input(_checks.NUMPY, grad_output, rois, input_shape,
                                   _options(output_size, spatial_scale, sampling_ratio,
                                            aligned, clockwise), _GRAD_NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], call)
    return api.run_grad_input(call, grad_output, rois, indices)


class RoIAlignRotated:
    """``mmcv.ops.RoIAlignRotated(output_size, spatial_scale=1.0, sampling_ratio=0,
    aligned=True, clockwise=False)`` (mmcv 2.2 has no default for ``spatial_scale``).

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise), called with
    ``(input, rois)`` as NumPy arrays or tensors. torch is imported when the first instance
    is made, not with this module.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RoIAlignRotated:
        if cls is RoIAlignRotated:
            try:  # the torch.nn.Module subclass that roiops.torch registers
                cls = _dispatch.tensor_implementation("compat.mmcv_RoIAlignRotated")
            except ImportError:  # no torch: a plain callable
                pass
        return super().__new__(cls)

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = 0, aligned: bool = True,
                 clockwise: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.clockwise = clockwise

    def forward(self, input: ArrayOrTensor, rois: ArrayOrTensor) -> ArrayOrTensor:
        return roi_align_rotated(input, rois, self.output_size, self.spatial_scale,
                                 self.sampling_ratio, self.aligned, self.clockwise)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned}, clockwise={self.clockwise})")
