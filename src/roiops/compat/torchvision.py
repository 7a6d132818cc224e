"""torchvision's ``roi_align`` and ``roi_pool``, bit for bit (torchvision 0.28 CPU), on arrays.

float16 computes every operation in half as torchvision's CPU kernel does; float32 and
float64 are exact. Where torchvision is undefined (docs/decisions.md) roiops raises ValueError for
out-of-range batch indices and non-finite boxes, does not read samples outside the map (so an
inf or NaN at pixel (0, 0) does not poison other outputs), returns zeros instead of
torchvision's ``std::vector`` error for reversed aligned boxes, and accepts boxes of any float
dtype (converted to the input's dtype). On tensors ``roi_align`` and ``RoIAlign`` are a drop-in
(docs/torchvision.md#replacing-torchvision): scriptable, FX leaves, autocast, bfloat16.

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

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..ps_roi_align import api as ps_api
from ..ps_roi_align import checks as ps_checks
from ..ps_roi_pool import api as ps_pool_api
from ..ps_roi_pool import checks as ps_pool_checks
from ..roi_align import api, checks
from ..roi_pool import api as pool_api
from ..roi_pool import checks as pool_checks
from ._torchvision_rules import TorchvisionModule, class_name, in_data_type, rois_from_boxes
from .torchvision_multiscale import MultiScaleRoIAlign as MultiScaleRoIAlign

_NAMES = checks.Names(rois="boxes")
_GRAD_NAMES = _NAMES._replace(grads="grad_output")
_POOL_NAMES = pool_checks.Names(rois="boxes", grads="grad_output")


def _has_tensor(input, boxes):
    return _checks.any_tensor(input, boxes, *(boxes if isinstance(boxes, (list, tuple)) else ()))


def _in_data_type(call, rois):
    """(call, rois) as torchvision computes: :func:`in_data_type`, the boxes converted to the
    data's dtype."""
    with np.errstate(over="ignore"):  # boxes beyond the data's range become inf, then refused
        rois = rois.astype(call.kernel_dtype, copy=False)
    return in_data_type(call), rois


def _options(output_size, spatial_scale, sampling_ratio, aligned):
    return checks.Options(output_size, spatial_scale, sampling_ratio, aligned, "torchvision", 1)


@_dispatch.script_as("script.torchvision_roi_align")
def roi_align(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
              output_size: int | Sequence[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> ArrayOrTensor:
    """``torchvision.ops.roi_align`` on NumPy arrays or tensors.

    input ``[N,C,H,W]`` float16/32/64; boxes a ``[K,5]`` array ``(batch_index, x1, y1, x2,
    y2)`` or a list of ``[L,4]`` arrays; output_size an int or ``(height, width)``.
    Returns ``[K,C,height,width]`` of the input's dtype. Tensors run
    ``torch.ops.roiops.roi_align_torchvision`` and may also be bfloat16 (computed in float32
    with float32 boxes, the result rounded once); under ``torch.autocast`` float16 and
    bfloat16 run in float32 and the result is cast back, as in torchvision.
    """
    if _has_tensor(input, boxes):
        return _dispatch.tensor_implementation("compat.torchvision_roi_align")(
            input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
    input, boxes = _arrays.native_byte_order(input, boxes)
    rois = rois_from_boxes(boxes)
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
    rois = rois_from_boxes(boxes)
    call = checks.check_grad_input(_checks.NUMPY, grad_output, rois, input_shape,
                                   _options(output_size, spatial_scale, sampling_ratio,
                                            aligned), _GRAD_NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], call.options.convention,
                                      "boxes")
    return api.run_grad_input(call, grad_output, rois, indices)


@_dispatch.script_as("script.torchvision_ps_roi_align")
def ps_roi_align(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                 output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = -1) -> ArrayOrTensor:
    """``torchvision.ops.ps_roi_align``: input ``[N,C,H,W]`` float16/32/64 with ``C`` a
    multiple of ``height * width``; boxes as in :func:`roi_align`. Returns
    ``[K, C/(height*width), height, width]`` of the input's dtype (float16 in half).

    Example:
        >>> import numpy as np
        >>> from roiops.compat.torchvision import ps_roi_align
        >>> x = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1)
        >>> ps_roi_align(x, [np.array([[0, 0, 1, 1]], np.float32)], 2)[0, 0]
        array([[0., 1.],
               [2., 3.]], dtype=float32)
    """
    if _has_tensor(input, boxes):
        return _dispatch.tensor_implementation("compat.torchvision_ps_roi_align")(
            input, boxes, output_size, spatial_scale, sampling_ratio)
    options = ps_checks.Options(output_size, spatial_scale, sampling_ratio)
    return _ps_forward(ps_api.run_forward, input, boxes, options)


def _ps_forward(run, input, boxes, options):
    """A position-sensitive forward in torchvision's arithmetic for the input's dtype."""
    input, boxes = _arrays.native_byte_order(input, boxes)
    rois = rois_from_boxes(boxes)
    call = ps_checks.check_forward(_checks.NUMPY, input, rois, options, _NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], options.convention, "boxes")
    return run(call, input, rois, indices)


def _ps_backward(run, grad_output, boxes, input_shape, options):
    """A position-sensitive input gradient as torchvision's backward computes it."""
    grad_output, boxes = _arrays.native_byte_order(grad_output, boxes)
    rois = rois_from_boxes(boxes)
    call = ps_checks.check_grad_input(_checks.NUMPY, grad_output, rois, input_shape, options,
                                      _GRAD_NAMES)
    call, rois = _in_data_type(call, rois)
    indices = checks.check_roi_values(rois, call.input_shape[0], options.convention, "boxes")
    return run(call, grad_output, rois, indices)


def ps_roi_align_backward(grad_output: ArrayOrTensor,
                          boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                          input_shape: Sequence[int], output_size: int | Sequence[int],
                          spatial_scale: float = 1.0, sampling_ratio: int = -1
                          ) -> ArrayOrTensor:
    """The input gradient exactly as torchvision's ``ps_roi_align`` backward computes it
    (half included): grad_output ``[K, C/(height*width), height, width]``; returns
    ``input_shape`` in grad_output's dtype."""
    if _has_tensor(grad_output, boxes):
        return _dispatch.tensor_implementation("compat.host_call")(
            ps_roi_align_backward, grad_output, boxes, input_shape, output_size,
            spatial_scale, sampling_ratio)
    options = ps_checks.Options(output_size, spatial_scale, sampling_ratio)
    return _ps_backward(ps_api.run_grad_input, grad_output, boxes, input_shape, options)


@_dispatch.script_as("script.torchvision_ps_roi_pool")
def ps_roi_pool(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                output_size: int | Sequence[int], spatial_scale: float = 1.0) -> ArrayOrTensor:
    """``torchvision.ops.ps_roi_pool``: input ``[N,C,H,W]`` float16/32/64 with ``C`` a multiple
    of ``height * width``; boxes as in :func:`roi_align`. Returns
    ``[K, C/(height*width), height, width]`` of the input's dtype (float16 in half).

    Example:
        >>> import numpy as np
        >>> from roiops.compat.torchvision import ps_roi_pool
        >>> x = np.arange(36, dtype=np.float32).reshape(1, 4, 3, 3)
        >>> ps_roi_pool(x, [np.array([[0, 0, 2, 2]], np.float32)], 2)[0, 0]
        array([[ 0., 10.],
               [21., 31.]], dtype=float32)
    """
    if _has_tensor(input, boxes):
        return _dispatch.tensor_implementation("compat.torchvision_ps_roi_pool")(
            input, boxes, output_size, spatial_scale)
    return _ps_forward(ps_pool_api.run_forward, input, boxes,
                       ps_pool_checks.Options(output_size, spatial_scale))


def ps_roi_pool_backward(grad_output: ArrayOrTensor,
                         boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                         input_shape: Sequence[int], output_size: int | Sequence[int],
                         spatial_scale: float = 1.0) -> ArrayOrTensor:
    """The input gradient exactly as torchvision's ``ps_roi_pool`` backward computes it
    (half included; its bins reach the last row and column, unlike its forward's)."""
    if _has_tensor(grad_output, boxes):
        return _dispatch.tensor_implementation("compat.host_call")(
            ps_roi_pool_backward, grad_output, boxes, input_shape, output_size, spatial_scale)
    return _ps_backward(ps_pool_api.run_grad_input, grad_output, boxes, input_shape,
                        ps_pool_checks.Options(output_size, spatial_scale))


class PSRoIAlign(TorchvisionModule):
    """``torchvision.ops.PSRoIAlign(output_size, spatial_scale, sampling_ratio)``, called with
    ``(input, rois)`` as NumPy arrays or tensors."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float,
                 sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: ArrayOrTensor,
                rois: ArrayOrTensor | Sequence[ArrayOrTensor]) -> ArrayOrTensor:
        return ps_roi_align(input, rois, self.output_size, self.spatial_scale,
                            self.sampling_ratio)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{class_name(self)}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio})")


class PSRoIPool(TorchvisionModule):
    """``torchvision.ops.PSRoIPool(output_size, spatial_scale)``, called with ``(input, rois)``
    as NumPy arrays or tensors."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: ArrayOrTensor,
                rois: ArrayOrTensor | Sequence[ArrayOrTensor]) -> ArrayOrTensor:
        return ps_roi_pool(input, rois, self.output_size, self.spatial_scale)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{class_name(self)}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")


class RoIAlign(TorchvisionModule):
    """``torchvision.ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise); called with
    ``(input, rois)`` as NumPy arrays or tensors. torch is imported when the first instance
    is made, not with this module. The module works under ``torch.jit.script`` and
    ``torch.fx.symbolic_trace`` (``roi_align`` a leaf).
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

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{class_name(self)}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned})")


@_dispatch.script_as("script.torchvision_roi_pool")
def roi_pool(input: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
             output_size: int | Sequence[int], spatial_scale: float = 1.0) -> ArrayOrTensor:
    """``torchvision.ops.roi_pool`` on NumPy arrays (or tensors).

    input ``[N,C,H,W]`` float16/32/64; boxes a ``[K,5]`` array ``(batch_index, x1, y1, x2,
    y2)`` or a list of ``[L,4]`` arrays, converted to the input's dtype; output_size an int
    or ``(height, width)``. Returns ``[K,C,height,width]`` of the input's dtype.

    Example:
        >>> import numpy as np
        >>> from roiops.compat.torchvision import roi_pool
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> roi_pool(x, [np.array([[0, 0, 3, 3]], np.float32)], 2)[0, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """
    if _has_tensor(input, boxes):
        return _dispatch.tensor_implementation("compat.torchvision_roi_pool")(
            input, boxes, output_size, spatial_scale)
    input, boxes = _arrays.native_byte_order(input, boxes)
    rois = rois_from_boxes(boxes)
    call = pool_checks.check_forward(_checks.NUMPY, input, rois,
                                     pool_checks.Options(output_size, spatial_scale),
                                     _POOL_NAMES)
    if call.kernel_dtype == np.float16:  # torchvision's half kernel
        call = pool_checks.half_arithmetic(call)
    with np.errstate(over="ignore"):  # boxes beyond the data's range become inf, then refused
        rois = rois.astype(call.kernel_dtype, copy=False)
    indices = pool_checks.check_roi_values(rois, call.input_shape[0], "boxes")
    return pool_api.run_forward(call, input, rois, indices)


def roi_pool_backward(grad_output: ArrayOrTensor, boxes: ArrayOrTensor | Sequence[ArrayOrTensor],
                      argmax: ArrayOrTensor, input_shape: Sequence[int]) -> ArrayOrTensor:
    """The input gradient exactly as torchvision's ``_roi_pool_backward`` computes it (float16
    summed in half), for NumPy users: ``grad_output`` ``[K,C,height,width]`` added at
    ``argmax`` (the forward's, ``roiops.roi_pool(..., return_argmax=True)``);
    ``input_shape`` ``(N,C,H,W)``; returns ``input_shape`` in grad_output's dtype."""
    if _checks.any_tensor(grad_output, argmax, boxes, *(
            boxes if isinstance(boxes, (list, tuple)) else ())):
        return _dispatch.tensor_implementation("compat.host_call")(
            roi_pool_backward, grad_output, boxes, argmax, input_shape)
    grad_output, boxes, argmax = _arrays.native_byte_order(grad_output, boxes, argmax)
    rois = rois_from_boxes(boxes)
    call = pool_checks.check_grad_input(_checks.NUMPY, grad_output, argmax, rois, input_shape,
                                        _POOL_NAMES)
    call = call._replace(half_arithmetic=call.kernel_dtype == np.float16)
    indices = pool_checks.check_roi_values(rois, call.input_shape[0], "boxes")
    pool_checks.check_argmax_values(argmax, call.input_shape[2] * call.input_shape[3])
    return pool_api.run_grad_input(call, grad_output, argmax, indices)


class RoIPool(TorchvisionModule):
    """``torchvision.ops.RoIPool(output_size, spatial_scale)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise); called with
    ``(input, rois)`` as NumPy arrays or tensors.
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: ArrayOrTensor,
                rois: ArrayOrTensor | Sequence[ArrayOrTensor]) -> ArrayOrTensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{class_name(self)}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")
