"""roi_align and its gradients: the native API (docs/api.md) over the Numba kernels.

Two conventions share one kernel: ``"torchvision"`` (``aligned``, minimum size 1 when not
aligned, ceil adaptive grid, batch index truncated) and ``"mindspore"`` (``roi_end_mode``,
floor adaptive grid, batch index ``rint(v + 7e-5)``). Every switch:
docs/conventions.md#roi_align-switches.

Each entry point checks its call with the validator of ``roiops.roi_align.checks`` and
hands the record to a ``run_*`` function, which the compatibility layers call too with their
framework's record; tensors go to ``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from . import checks, conventions, cpu
from .checks import Options, check_compute_type, check_forward_run, check_grad_input_run

CONVENTIONS = conventions.NAMES


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
    """The input gradient of a checked ``call``, stored channels-last.

    Channels-last memory lets the kernel accumulate the dense case (four taps of a sample
    contiguous over channels) directly in the result, with no result-sized temporary; the
    values do not depend on the layout.
    """
    check_grad_input_run(call)
    batch, channels, height, width = call.input_shape
    F = call.F
    channels_last = np.zeros((batch, height, width, channels), F)
    total = channels_last.transpose(0, 3, 1, 2)
    if grads.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), _arrays.kernel_input(rois, F), indices,
                       *call.options.kernel_args(F), call.half_arithmetic, total,
                       channels_last, F)
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


@_dispatch.script_as("script.roi_align")
def roi_align(input: ArrayOrTensor, rois: ArrayOrTensor, output_size: int | Sequence[int], *,
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False,
              convention: str = "torchvision", roi_end_mode: int = 1,
              out: ArrayOrTensor | None = None) -> ArrayOrTensor:
    """RoI Align (Mask R-CNN): average ``sampling_ratio``² bilinear samples per output bin.

    Bit-identical to torchvision's CPU ``roi_align`` (``convention="torchvision"``) or
    MindSpore's ``ROIAlign`` (``"mindspore"``) for float32 and float64 input; float16 is
    computed in float32 and rounded once.

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64 feature maps (tensors: bfloat16
            too, computed in float32 and rounded once; autocast runs half types in float32).
        rois: ``[K, 5]`` float rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates
            (multiplied by ``spatial_scale`` to reach the feature map).
        output_size: ``(pooled_height, pooled_width)`` or one int for both.
        spatial_scale: feature-map size over image size, e.g. 1/16.
        sampling_ratio: samples per bin along each axis, at most 1024 (the work grows with
            its square; more cannot change a bilinear average); ``<= 0`` picks it from the
            roi size (torchvision ``ceil(roi/bins)``, MindSpore ``floor(roi/bins)``, which
            can give NaN for rois smaller than the output: MindSpore's own result).
        aligned: torchvision only: shift boxes by -0.5 pixel (pixel centres at .5).
        convention: ``"torchvision"`` or ``"mindspore"``.
        roi_end_mode: MindSpore only: 1 adds one pixel to the end coordinates before scaling.
        out: optional C-contiguous result array to write into.

    Returns:
        ``[K, C, pooled_height, pooled_width]`` of ``input.dtype``.

    Raises:
        TypeError: non-array arguments (masked arrays and ``np.matrix`` too), unsupported
            dtypes, non-int ``sampling_ratio``.
        ValueError: wrong shapes, non-positive sizes, unknown or mismatched options,
            ``sampling_ratio`` above 1024, a ``spatial_scale`` that overflows the compute
            type, non-finite rois, batch indices outside the batch, a result larger than the
            machine's memory, ``out`` sharing memory with an input. docs/errors.md lists
            every rule.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> rois = np.array([[0, 0.5, 0.5, 2.5, 2.5]], np.float32)
        >>> roiops.roi_align(x, rois, 2, sampling_ratio=2, aligned=True)[0, 0]
        array([[2.5, 3.5],
               [6.5, 7.5]], dtype=float32)
    """
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("roi_align")(
            input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode, out=out)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    input, rois = _arrays.native_byte_order(input, rois)
    call = checks.check_forward(_checks.NUMPY, input, rois, options)
    indices = checks.check_roi_values(rois, call.input_shape[0], options.convention)
    if out is not None:
        _arrays.check_out(out, call.result_shape, call.kernel_dtype,
                          {"input": input, "rois": rois})
    return run_forward(call, input, rois, indices, out)


def roi_align_grad_input(grads: ArrayOrTensor, rois: ArrayOrTensor, input_shape: Sequence[int],
                         output_size: int | Sequence[int], *, spatial_scale: float = 1.0,
                         sampling_ratio: int = -1, aligned: bool = False,
                         convention: str = "torchvision", roi_end_mode: int = 1
                         ) -> ArrayOrTensor:
    """Gradient of :func:`roi_align` with respect to the input (the true adjoint).

    Each ``input`` element receives its contributions in the sequential order (rois, bins,
    samples, corners), so the result is deterministic and equal to torchvision's CPU
    backward; with ``convention="mindspore"`` it follows the given ``roi_end_mode`` (unlike
    MindSpore's ROIAlignGrad, which always uses 1; see ``roiops.compat.mindspore``).

    Args:
        grads: ``[K, C, pooled_height, pooled_width]`` float16/32/64.
        input_shape: ``(N, C, H, W)``.
        rois, output_size and options: as in :func:`roi_align`.

    Returns:
        ``input_shape`` array of ``grads.dtype``, in channels-last memory order (strides of
        ``[N, H, W, C]``, like torch's ``channels_last``): ``np.ascontiguousarray`` gives NCHW.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.roi_align_grad_input(np.ones((1, 1, 1, 1), np.float32),
        ...     np.array([[0, 1, 1, 3, 3]], np.float32), (1, 1, 4, 4), 1,
        ...     sampling_ratio=1, aligned=True)
        >>> g[0, 0]
        array([[0.  , 0.  , 0.  , 0.  ],
               [0.  , 0.25, 0.25, 0.  ],
               [0.  , 0.25, 0.25, 0.  ],
               [0.  , 0.  , 0.  , 0.  ]], dtype=float32)
    """
    if _checks.any_tensor(grads, rois):
        return _dispatch.tensor_implementation("roi_align_grad_input")(
            grads, rois, input_shape, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    grads, rois = _arrays.native_byte_order(grads, rois)
    call = checks.check_grad_input(_checks.NUMPY, grads, rois, input_shape, options)
    indices = checks.check_roi_values(rois, call.input_shape[0], options.convention)
    return run_grad_input(call, grads, rois, indices)


def roi_align_grad_boxes(grads: ArrayOrTensor, input: ArrayOrTensor, rois: ArrayOrTensor,
                         output_size: int | Sequence[int], *, spatial_scale: float = 1.0,
                         sampling_ratio: int = -1, aligned: bool = False,
                         convention: str = "torchvision", roi_end_mode: int = 1
                         ) -> ArrayOrTensor:
    """Gradient of :func:`roi_align` with respect to the roi coordinates (no peer has one).

    The derivative of the forward with the sample grid held fixed
    (docs/arithmetic.md#roi_align-box-gradient): zero
    where the forward is locally constant in a coordinate (clamped minimum size, samples
    clamped at the border or outside the map). The batch-index column gets zero.

    Args:
        grads: ``[K, C, pooled_height, pooled_width]``.
        input, rois, output_size and options: as in :func:`roi_align`.

    Returns:
        ``[K, 5]`` of ``input.dtype``: d/d``(batch_index, x1, y1, x2, y2)``.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)   # value = 4*y + x
        >>> roiops.roi_align_grad_boxes(np.ones((1, 1, 1, 1)), x,
        ...     np.array([[0, 1, 1, 2, 2]], np.float64), 1, sampling_ratio=1, aligned=True)
        array([[0. , 0.5, 2. , 0.5, 2. ]])
    """
    if _checks.any_tensor(grads, input, rois):
        return _dispatch.tensor_implementation("roi_align_grad_boxes")(
            grads, input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    grads, input, rois = _arrays.native_byte_order(grads, input, rois)
    call = checks.check_grad_boxes(_checks.NUMPY, grads, input, rois, options)
    indices = checks.check_roi_values(rois, call.input_shape[0], options.convention)
    return run_grad_boxes(call, grads, input, rois, indices)
