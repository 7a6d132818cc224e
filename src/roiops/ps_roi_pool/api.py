"""ps_roi_pool and its input gradient: the native API (docs/api.md) over the Numba kernels.

Position-sensitive RoI average pooling (R-FCN) with torchvision's ``ps_roi_pool``
arithmetic (docs/position_sensitive.md#ps_roi_pool). The output is piecewise constant in the roi
coordinates (they are rounded to whole pixels), so there is no box gradient: its derivative
is zero almost everywhere and undefined at the rounding steps.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align.checks import check_forward_run, check_grad_input_run, check_roi_values
from . import checks, cpu
from .checks import Options
from .conventions import BACKWARD, FORWARD


def run_forward(call, input, rois, indices, out=None):
    """The kernel call of a checked ``call`` (``out`` checked too)."""
    check_forward_run(call, fresh_result=out is None)
    result = np.empty(call.result_shape, call.kernel_dtype) if out is None else out
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        F = call.F
        cpu.forward(_arrays.kernel_input(input, F), _arrays.kernel_input(rois, F), indices,
                    *call.options.kernel_args(F), FORWARD, call.half_arithmetic, target,
                    out_half, F)
    return result


def run_grad_input(call, grads, rois, indices):
    """The input gradient of a checked ``call`` (NCHW, C-contiguous)."""
    check_grad_input_run(call)
    F = call.F
    total = np.empty(call.input_shape, F)  # the kernel writes every element, rois or none
    if total.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), _arrays.kernel_input(rois, F), indices,
                       *call.options.kernel_args(F), BACKWARD, call.half_arithmetic, total, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


def ps_roi_pool(input: ArrayOrTensor, rois: ArrayOrTensor, output_size: int | Sequence[int],
                *, spatial_scale: float = 1.0, out: ArrayOrTensor | None = None
                ) -> ArrayOrTensor:
    """Position-sensitive RoI average pooling (R-FCN): bin ``(c, ph, pw)`` is the mean of
    input channel ``(c * PH + ph) * PW + pw`` over the bin.

    torchvision's ``ps_roi_pool`` arithmetic: roi corners ``round(coordinate * scale)`` (half
    away from zero), size at least 1 pixel, bin ``p`` from ``floor(p * bin)`` to
    ``ceil((p + 1) * bin)`` past the roi start, clipped to ``[0, size - 1]`` (so the last row
    and column are never pooled, as in torchvision), an empty bin 0. Bit-identical to its
    CPU kernel for float32 and float64; float16 is computed in float32 and rounded once
    (``roiops.compat.torchvision.ps_roi_pool`` computes in half, as torchvision does).

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64, ``C = C_out * PH * PW``.
        rois: ``[K, 5]`` float rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates.
        output_size: ``(PH, PW)`` or one int for both.
        spatial_scale: feature-map size over image size, e.g. 1/16.
        out: optional C-contiguous result array to write into.

    Returns:
        ``[K, C_out, PH, PW]`` of ``input.dtype``.

    Raises:
        TypeError: non-array arguments, unsupported dtypes.
        ValueError: wrong shapes, ``C`` not a multiple of ``PH * PW``, non-positive sizes, a
            ``spatial_scale`` that overflows the compute type, non-finite rois, batch indices
            outside the batch, a result larger than the memory, ``out`` sharing memory with
            an input (docs/errors.md).

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(36, dtype=np.float32).reshape(1, 4, 3, 3)
        >>> roiops.ps_roi_pool(x, np.array([[0, 0, 0, 2, 2]], np.float32), 2)[0, 0]
        array([[ 0., 10.],
               [21., 31.]], dtype=float32)
    """
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("ps_roi_pool")(
            input, rois, output_size, spatial_scale=spatial_scale, out=out)

    options = Options(output_size, spatial_scale)
    input, rois = _arrays.native_byte_order(input, rois)
    call = checks.check_forward(_checks.NUMPY, input, rois, options)
    indices = check_roi_values(rois, call.input_shape[0], options.convention)
    if out is not None:
        _arrays.check_out(out, call.result_shape, call.kernel_dtype,
                          {"input": input, "rois": rois})
    return run_forward(call, input, rois, indices, out)


def ps_roi_pool_grad_input(grads: ArrayOrTensor, rois: ArrayOrTensor,
                           input_shape: Sequence[int], output_size: int | Sequence[int], *,
                           spatial_scale: float = 1.0) -> ArrayOrTensor:
    """Gradient of :func:`ps_roi_pool` with respect to the input, as torchvision computes it.

    Each bin's gradient divided by its area is added to every pixel of the bin, in
    torchvision's sequential order. torchvision's backward clips bins to ``[0, size]``
    where its forward clips to ``[0, size - 1]``, and rounds float64 coordinates through
    float32; roiops reproduces both, so bins that reach the last row or column spread their
    gradient over pixels (and an area) that the forward did not pool
    (docs/position_sensitive.md#ps_roi_pool).

    Args:
        grads: ``[K, C_out, PH, PW]`` float16/32/64.
        input_shape: ``(N, C, H, W)`` with ``C = C_out * PH * PW``.
        rois, output_size, spatial_scale: as in :func:`ps_roi_pool`.

    Returns:
        ``input_shape`` array of ``grads.dtype``.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.ps_roi_pool_grad_input(np.full((1, 1, 1, 1), 4, np.float32),
        ...     np.array([[0, 1, 1, 3, 3]], np.float32), (1, 1, 4, 4), 1)
        >>> g[0, 0]
        array([[0., 0., 0., 0.],
               [0., 1., 1., 0.],
               [0., 1., 1., 0.],
               [0., 0., 0., 0.]], dtype=float32)
    """
    if _checks.any_tensor(grads, rois):
        return _dispatch.tensor_implementation("ps_roi_pool_grad_input")(
            grads, rois, input_shape, output_size, spatial_scale=spatial_scale)

    options = Options(output_size, spatial_scale)
    grads, rois = _arrays.native_byte_order(grads, rois)
    call = checks.check_grad_input(_checks.NUMPY, grads, rois, input_shape, options)
    indices = check_roi_values(rois, call.input_shape[0], options.convention)
    return run_grad_input(call, grads, rois, indices)
