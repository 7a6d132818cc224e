"""roi_pool and its input gradient: the native API (docs/api.md) over the Numba kernels.

torchvision's RoI max pooling (Fast R-CNN), bit for bit (docs/roi_pool.md). Each entry point
checks its call with the validator of ``roiops.roi_pool.checks`` and hands the record to a
``run_*`` function, which the compatibility layer calls too with its framework's record;
tensors go to ``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from . import checks, cpu
from .checks import Options

# The argmax the kernel writes to when the caller does not want it: one element, never read.
_NO_ARGMAX = np.empty((1, 1, 1, 1), np.int32)


def run_forward(call, input, rois, indices, out=None, with_argmax=False):
    """The kernel call of a checked ``call`` (``out`` checked too): the result, and with
    ``with_argmax`` the ``(result, argmax)`` pair."""
    checks.check_forward_run(call, fresh_result=out is None, with_argmax=with_argmax)
    result = np.empty(call.result_shape, call.kernel_dtype) if out is None else out
    argmax = np.empty(call.result_shape, np.int32) if with_argmax else _NO_ARGMAX
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        F = call.F
        cpu.forward(_arrays.kernel_input(input, F), _arrays.kernel_input(rois, F), indices,
                    F(call.options.spatial_scale), call.half_arithmetic, target, out_half,
                    argmax, with_argmax, F)
    return (result, argmax) if with_argmax else result


def run_grad_input(call, grads, argmax, indices):
    """The input gradient of a checked ``call``: ``[N, C, H, W]`` C-contiguous."""
    checks.check_grad_input_run(call)
    F = call.F
    total = np.zeros(call.input_shape, F)
    if grads.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), argmax, indices, call.half_arithmetic,
                       total)
    with np.errstate(over="ignore"):  # a float16 sum beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


@_dispatch.script_as("script.roi_pool")
def roi_pool(input: ArrayOrTensor, rois: ArrayOrTensor, output_size: int | Sequence[int], *,
             spatial_scale: float = 1.0, return_argmax: bool = False,
             out: ArrayOrTensor | None = None
             ) -> ArrayOrTensor | tuple[ArrayOrTensor, ArrayOrTensor]:
    """RoI max pooling (Fast R-CNN): the maximum of each bin of each roi, per channel.

    Bit-identical to torchvision's CPU ``roi_pool`` for float32 and float64 input (and for
    float16: a maximum is exact in any precision; the bin edges are computed in float32).
    Roi corners are rounded to whole feature pixels (``round(x * spatial_scale)``, halves away
    from zero), a roi spans ``x2 - x1 + 1`` pixels (at least 1), and bin ``p`` of ``n`` covers
    ``[floor(p * size/n), ceil((p + 1) * size/n))`` clipped to the map. An empty bin gives 0;
    ties keep the first pixel in row-major order; NaN never wins (a bin of NaN gives
    -3.4028235e+38, torchvision's starting value, -inf in float16). docs/roi_pool.md.

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64 feature maps (``H * W`` at most
            2**31 - 1: the argmax is an int32 plane index).
        rois: ``[K, 5]`` float rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates.
        output_size: ``(pooled_height, pooled_width)`` or one int for both.
        spatial_scale: feature-map size over image size, e.g. 1/16.
        return_argmax: also return the int32 flat index (``h * W + w``) of each maximum in its
            plane, -1 where a bin has none; :func:`roi_pool_grad_input` takes it.
        out: optional C-contiguous result array to write into.

    Returns:
        ``[K, C, pooled_height, pooled_width]`` of ``input.dtype``; with ``return_argmax``
        the pair ``(output, argmax)``.

    Raises:
        TypeError: non-array arguments, unsupported dtypes, a non-bool ``return_argmax``.
        ValueError: wrong shapes, non-positive sizes, a non-finite ``spatial_scale`` or one
            that overflows the compute type, non-finite rois, batch indices outside the batch,
            planes of 2**31 elements or more, a result larger than the machine's memory,
            ``out`` sharing memory with an input. docs/errors.md lists every rule.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> rois = np.array([[0, 0, 0, 3, 3]], np.float32)
        >>> out, argmax = roiops.roi_pool(x, rois, 2, return_argmax=True)
        >>> out[0, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
        >>> argmax[0, 0]
        array([[ 5,  7],
               [13, 15]], dtype=int32)
    """
    if not isinstance(return_argmax, (bool, np.bool_)):
        raise TypeError(f"return_argmax must be a bool, got {type(return_argmax).__name__}")
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("roi_pool")(
            input, rois, output_size, spatial_scale=spatial_scale,
            return_argmax=return_argmax, out=out)

    options = Options(output_size, spatial_scale)
    input, rois = _arrays.native_byte_order(input, rois)
    call = checks.check_forward(_checks.NUMPY, input, rois, options)
    indices = checks.check_roi_values(rois, call.input_shape[0])
    if out is not None:
        _arrays.check_out(out, call.result_shape, call.kernel_dtype,
                          {"input": input, "rois": rois})
    return run_forward(call, input, rois, indices, out, bool(return_argmax))


def roi_pool_grad_input(grads: ArrayOrTensor, argmax: ArrayOrTensor, rois: ArrayOrTensor,
                        input_shape: Sequence[int]) -> ArrayOrTensor:
    """Gradient of :func:`roi_pool` with respect to the input.

    Each bin's gradient goes to the pixel its maximum came from (``argmax``, as returned by
    ``roi_pool(..., return_argmax=True)``); a bin without one (-1) passes nothing. Each
    element receives its adds in torchvision's sequential order (roi, ph, pw), summed in
    float32 (float64 for float64 grads) and rounded once: equal to torchvision's backward.
    There is no gradient with respect to the rois: the result is piecewise constant in them
    (corners are rounded to whole pixels).

    Args:
        grads: ``[K, C, pooled_height, pooled_width]`` float16/32/64.
        argmax: int32 or int64 of the same shape, values in ``[-1, H * W)``.
        rois: the forward's ``[K, 5]`` rois (their batch indices are used).
        input_shape: ``(N, C, H, W)``.

    Returns:
        ``input_shape`` array of ``grads.dtype`` (C-contiguous).

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> rois = np.array([[0, 0, 0, 3, 3]], np.float32)
        >>> _, argmax = roiops.roi_pool(x, rois, 2, return_argmax=True)
        >>> roiops.roi_pool_grad_input(np.ones((1, 1, 2, 2), np.float32), argmax, rois,
        ...                            x.shape)[0, 0]
        array([[0., 0., 0., 0.],
               [0., 1., 0., 1.],
               [0., 0., 0., 0.],
               [0., 1., 0., 1.]], dtype=float32)
    """
    if _checks.any_tensor(grads, argmax, rois):
        return _dispatch.tensor_implementation("roi_pool_grad_input")(
            grads, argmax, rois, input_shape)

    grads, argmax, rois = _arrays.native_byte_order(grads, argmax, rois)
    call = checks.check_grad_input(_checks.NUMPY, grads, argmax, rois, input_shape)
    indices = checks.check_roi_values(rois, call.input_shape[0])
    checks.check_argmax_values(argmax, call.input_shape[2] * call.input_shape[3])
    return run_grad_input(call, grads, argmax, indices)
