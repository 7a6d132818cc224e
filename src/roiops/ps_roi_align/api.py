"""ps_roi_align and its gradients: the native API (docs/api.md) over the Numba kernels.

Position-sensitive RoI Align (R-FCN): torchvision's ``ps_roi_align`` arithmetic
(docs/position_sensitive.md#ps_roi_align). Each entry point checks its call with the validator of
``roiops.ps_roi_align.checks`` and hands the record to a ``run_*`` function, which
``roiops.compat.torchvision`` and ``roiops.torch.ops`` call too; tensors go to
``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align.checks import (
    check_compute_type,
    check_forward_run,
    check_grad_input_run,
    check_roi_values,
)
from . import checks, cpu
from .checks import Options


def run_forward(call, input, rois, indices, out=None):
    """The kernel call of a checked ``call`` (``out`` checked too)."""
    check_forward_run(call, fresh_result=out is None)
    result = np.empty(call.result_shape, call.kernel_dtype) if out is None else out
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        F = call.F
        cpu.forward(_arrays.kernel_input(input, F), _arrays.kernel_input(rois, F), indices,
                    *call.options.kernel_args(F), call.half_arithmetic, target, out_half, F)
    return result


def run_grad_input(call, grads, rois, indices):
    """The input gradient of a checked ``call`` (NCHW, C-contiguous)."""
    check_grad_input_run(call)
    F = call.F
    total = np.empty(call.input_shape, F)  # the kernel writes every element, rois or none
    if total.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), _arrays.kernel_input(rois, F), indices,
                       *call.options.kernel_args(F), call.half_arithmetic, total, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


def run_grad_boxes(call, grads, input, rois, indices):
    """The box gradient of a checked ``call``: ``[K, 5]``."""
    check_compute_type(call)
    F = call.F
    total = np.zeros((call.num_rois, 5), F)
    if grads.size:
        cpu.grad_boxes(_arrays.kernel_input(grads, F), _arrays.kernel_input(input, F),
                       _arrays.kernel_input(rois, F), indices, *call.options.kernel_args(F),
                       total, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


def ps_roi_align(input: ArrayOrTensor, rois: ArrayOrTensor, output_size: int | Sequence[int],
                 *, spatial_scale: float = 1.0, sampling_ratio: int = -1,
                 out: ArrayOrTensor | None = None) -> ArrayOrTensor:
    """Position-sensitive RoI Align (R-FCN): bin ``(c, ph, pw)`` averages bilinear samples of
    input channel ``(c * PH + ph) * PW + pw``.

    torchvision's ``ps_roi_align`` arithmetic: boxes shifted by -0.5 pixel, no minimum
    size, ``ceil(bin size)`` samples per bin axis when ``sampling_ratio <= 0``, and the sum
    divided by ``gh * gw`` (an empty grid gives NaN, as torchvision's). Bit-identical to its
    CPU kernel for float32 and float64; float16 is computed in float32 and rounded once
    (``roiops.compat.torchvision.ps_roi_align`` computes in half, as torchvision does).

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64 position-sensitive score maps,
            ``C = C_out * PH * PW``.
        rois: ``[K, 5]`` float rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates.
        output_size: ``(PH, PW)`` or one int for both.
        spatial_scale: feature-map size over image size, e.g. 1/16.
        sampling_ratio: samples per bin axis, at most 1024; ``<= 0``: ``ceil(bin size)``.
        out: optional C-contiguous result array to write into.

    Returns:
        ``[K, C_out, PH, PW]`` of ``input.dtype``.

    Raises:
        TypeError: non-array arguments, unsupported dtypes, non-int ``sampling_ratio``.
        ValueError: wrong shapes, ``C`` not a multiple of ``PH * PW``, non-positive sizes,
            ``sampling_ratio`` above 1024, a ``spatial_scale`` that overflows the compute
            type, non-finite rois, batch indices outside the batch, a result larger than
            the memory, ``out`` sharing memory with an input (docs/errors.md).

    Example:
        >>> import numpy as np, roiops
        >>> x = np.zeros((1, 4, 3, 3), np.float32)
        >>> x[0, 3] = 8   # channel 3 feeds bin (1, 1) of output channel 0
        >>> roiops.ps_roi_align(x, np.array([[0, 0, 0, 3, 3]], np.float32), 2)[0, 0]
        array([[0., 0.],
               [0., 8.]], dtype=float32)
    """
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("ps_roi_align")(
            input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, out=out)

    options = Options(output_size, spatial_scale, sampling_ratio)
    input, rois = _arrays.native_byte_order(input, rois)
    call = checks.check_forward(_checks.NUMPY, input, rois, options)
    indices = check_roi_values(rois, call.input_shape[0], options.convention)
    if out is not None:
        _arrays.check_out(out, call.result_shape, call.kernel_dtype,
                          {"input": input, "rois": rois})
    return run_forward(call, input, rois, indices, out)


def ps_roi_align_grad_input(grads: ArrayOrTensor, rois: ArrayOrTensor,
                            input_shape: Sequence[int], output_size: int | Sequence[int], *,
                            spatial_scale: float = 1.0, sampling_ratio: int = -1
                            ) -> ArrayOrTensor:
    """Gradient of :func:`ps_roi_align` with respect to the input (the true adjoint).

    Each element receives its adds in torchvision's sequential order (rois, samples,
    corners), so the result is deterministic and equal to torchvision's CPU backward.

    Args:
        grads: ``[K, C_out, PH, PW]`` float16/32/64.
        input_shape: ``(N, C, H, W)`` with ``C = C_out * PH * PW``.
        rois, output_size and options: as in :func:`ps_roi_align`.

    Returns:
        ``input_shape`` array of ``grads.dtype``.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.ps_roi_align_grad_input(np.ones((1, 1, 1, 1), np.float32),
        ...     np.array([[0, 1, 1, 3, 3]], np.float32), (1, 1, 4, 4), 1, sampling_ratio=1)
        >>> g[0, 0]
        array([[0.  , 0.  , 0.  , 0.  ],
               [0.  , 0.25, 0.25, 0.  ],
               [0.  , 0.25, 0.25, 0.  ],
               [0.  , 0.  , 0.  , 0.  ]], dtype=float32)
    """
    if _checks.any_tensor(grads, rois):
        return _dispatch.tensor_implementation("ps_roi_align_grad_input")(
            grads, rois, input_shape, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio)

    options = Options(output_size, spatial_scale, sampling_ratio)
    grads, rois = _arrays.native_byte_order(grads, rois)
    call = checks.check_grad_input(_checks.NUMPY, grads, rois, input_shape, options)
    indices = check_roi_values(rois, call.input_shape[0], options.convention)
    return run_grad_input(call, grads, rois, indices)


def ps_roi_align_grad_boxes(grads: ArrayOrTensor, input: ArrayOrTensor, rois: ArrayOrTensor,
                            output_size: int | Sequence[int], *, spatial_scale: float = 1.0,
                            sampling_ratio: int = -1) -> ArrayOrTensor:
    """Gradient of :func:`ps_roi_align` with respect to the roi coordinates (torchvision has
    none).

    roi_align's box gradient (docs/arithmetic.md#roi_align-box-gradient) with each bin
    reading its own channel: the derivative with the sample grid held fixed, zero where the
    forward is locally constant in a coordinate; the batch-index column gets zero.

    Args:
        grads: ``[K, C_out, PH, PW]``.
        input, rois, output_size and options: as in :func:`ps_roi_align`.

    Returns:
        ``[K, 5]`` of ``input.dtype``: d/d``(batch_index, x1, y1, x2, y2)``.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)   # value = 4*y + x
        >>> roiops.ps_roi_align_grad_boxes(np.ones((1, 1, 1, 1)), x,
        ...     np.array([[0, 1.5, 1.5, 2.5, 2.5]]), 1, sampling_ratio=1)
        array([[0. , 0.5, 2. , 0.5, 2. ]])
    """
    if _checks.any_tensor(grads, input, rois):
        return _dispatch.tensor_implementation("ps_roi_align_grad_boxes")(
            grads, input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio)

    options = Options(output_size, spatial_scale, sampling_ratio)
    grads, input, rois = _arrays.native_byte_order(grads, input, rois)
    call = checks.check_grad_boxes(_checks.NUMPY, grads, input, rois, options)
    indices = check_roi_values(rois, call.input_shape[0], options.convention)
    return run_grad_boxes(call, grads, input, rois, indices)
