"""roi_align and its gradients: the native API (docs/api.md) over the Numba kernels.

Two conventions share one kernel: ``"torchvision"`` (``aligned``, minimum size 1 when not
aligned, ceil adaptive grid, batch index truncated) and ``"mindspore"`` (``roi_end_mode``,
floor adaptive grid, batch index ``rint(v + 7e-5)``). Every switch:
docs/conventions.md#roi_align-switches.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks
from .._typing import ArrayOrTensor
from . import conventions, cpu

CONVENTIONS = conventions.NAMES
_MINDSPORE_INDEX_BIAS = np.float32(7e-5)


class Options:
    """Validated roi_align options, shared by the forward and both gradients; ``convention``
    is the selected :class:`roiops.roi_align.conventions.Convention` record."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned, convention,
                 roi_end_mode):
        self.pooled_height, self.pooled_width = _checks.size_pair(
            "output_size", output_size, allow_int=True)
        self.spatial_scale = _checks.require_number("spatial_scale", spatial_scale)
        # A comparison, not np.isfinite: torch.compile traces it, also for a symbolic float.
        if not -math.inf < self.spatial_scale < math.inf:
            raise ValueError(f"spatial_scale must be finite, got {spatial_scale!r}")
        self.sampling_ratio = _checks.require_sampling_ratio("sampling_ratio", sampling_ratio)
        self.convention = conventions.convention(convention, aligned, roi_end_mode)
        self.aligned = bool(aligned)
        self.roi_end_mode = int(roi_end_mode)

    def kernel_args(self, F):
        return F(self.spatial_scale), self.sampling_ratio, self.convention.geometry


def batch_indices(rois, batch, convention, name="rois"):
    """Each peer's batch index of the rois, range-checked as that peer defines it
    (docs/decisions.md#batch-index-out-of-range).

    torchvision truncates toward zero and the truncated index must lie in ``[0, N)``;
    MindSpore requires the raw value in ``[0, N - 1]`` and then rounds ``v + 7e-5`` half to
    even in float32.
    """
    column = rois[:, 0]
    if convention.rounded_batch_index:
        raw = column.astype(np.float32)
        bad = (raw < 0) | (raw > np.float32(batch - 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} batch index must be in [0, {batch - 1}], "
                             f"row {row} is {column[row].item()!r}")
        return np.rint(raw + _MINDSPORE_INDEX_BIAS).astype(np.int64)
    truncated = np.trunc(column)
    # in range before the cast: a value beyond int64 (1e30) has no int64 to become
    _checks.require_indices_in_range(f"{name} batch index", truncated, batch, shown=column)
    return truncated.astype(np.int64)


def check_rois(rois, batch, options, name="rois"):
    """Validate rois ``[K, 5]`` (``name`` in messages: torchvision's ``boxes``); return their
    batch indices."""
    _checks.require_array(name, rois)
    _checks.require_dtype(name, rois, _checks.FLOAT_DTYPES)
    _checks.require_shape(name, rois, ("num_rois", 5))
    _checks.require_finite_rows(name, rois)
    return batch_indices(rois, batch, options.convention, name)


def check_input(name, input):
    _checks.require_array(name, input)
    _checks.require_dtype(name, input, _checks.FLOAT_DTYPES)
    _checks.require_shape(name, input, ("batch", "channels", "height", "width"))
    _checks.require_positive_image_size(name, input.shape[2], input.shape[3])


def check_grads(grads, num_rois, channels, options, name="grads"):
    """Validate the pooled gradient (``name`` in messages: MindSpore's ``dy``, torchvision's
    ``grad_output``)."""
    _checks.require_array(name, grads)
    _checks.require_dtype(name, grads, _checks.FLOAT_DTYPES)
    expected = (num_rois, channels, options.pooled_height, options.pooled_width)
    if grads.shape != expected:
        raise ValueError(f"{name} must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {expected}, got {grads.shape}")


def forward_shape(num_rois, channels, options):
    return (num_rois, channels, options.pooled_height, options.pooled_width)


def check_compute_type(options, F):
    """ValueError if the spatial scale overflows the compute type ``F`` (1e39 in float32)."""
    _checks.representable("spatial_scale", options.spatial_scale, F)


def check_forward_run(options, shape, out_dtype, F, fresh_result=True, size_name="output_size",
                      device=None):
    """The checks that need ``F`` and the result ``shape``, before allocating the result."""
    check_compute_type(options, F)
    buffers = [(shape, np.dtype(out_dtype).itemsize)] if fresh_result else []
    _checks.require_memory(size_name, (options.pooled_height, options.pooled_width), buffers,
                           device)


def check_grad_input_run(options, input_shape, out_dtype, F, size_name="input_shape",
                         device=None):
    """The checks that need ``F`` and the gradient's size, before allocating: the
    accumulator in ``F`` and, when ``out_dtype`` differs, the result."""
    check_compute_type(options, F)
    buffers = [(input_shape, np.dtype(F).itemsize)]
    if np.dtype(out_dtype) != np.dtype(F):
        buffers.append((input_shape, np.dtype(out_dtype).itemsize))
    _checks.require_memory(size_name, input_shape, buffers, device)


def run_forward(input, rois, indices, options, F, out_dtype, half_arithmetic=False, out=None,
                size_name="output_size"):
    """Kernel call for validated arguments (``out`` too); ``size_name`` names the pooled size
    in messages."""
    shape = forward_shape(rois.shape[0], input.shape[1], options)
    check_forward_run(options, shape, out_dtype, F, fresh_result=out is None,
                      size_name=size_name)
    result = np.empty(shape, out_dtype) if out is None else out
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        cpu.forward(_arrays.kernel_input(input, F), _arrays.kernel_input(rois, F), indices,
                    *options.kernel_args(F), half_arithmetic, target, out_half, F)
    return result


def run_grad_input(grads, rois, indices, input_shape, options, F, out_dtype,
                   half_arithmetic=False, size_name="input_shape"):
    """The input gradient, ``input_shape`` ``[N, C, H, W]`` (named ``size_name`` in messages)
    stored channels-last.

    Channels-last memory lets the kernel accumulate the dense case (four taps of a sample
    contiguous over channels) directly in the result, with no result-sized temporary; the
    values do not depend on the layout.
    """
    check_grad_input_run(options, input_shape, out_dtype, F, size_name)
    batch, channels, height, width = input_shape
    channels_last = np.zeros((batch, height, width, channels), F)
    total = channels_last.transpose(0, 3, 1, 2)
    if grads.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), _arrays.kernel_input(rois, F), indices,
                       *options.kernel_args(F), half_arithmetic, total, channels_last, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(out_dtype, copy=False)


def run_grad_boxes(grads, input, rois, indices, options, F, out_dtype):
    check_compute_type(options, F)
    total = np.zeros((rois.shape[0], 5), F)
    if grads.size:
        cpu.grad_boxes(_arrays.kernel_input(grads, F), _arrays.kernel_input(input, F),
                       _arrays.kernel_input(rois, F), indices, *options.kernel_args(F), total, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(out_dtype, copy=False)


def roi_align(input: ArrayOrTensor, rois: ArrayOrTensor, output_size: int | Sequence[int], *,
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False,
              convention: str = "torchvision", roi_end_mode: int = 1,
              out: ArrayOrTensor | None = None) -> ArrayOrTensor:
    """RoI Align (Mask R-CNN): average ``sampling_ratio``² bilinear samples per output bin.

    Bit-identical to torchvision's CPU ``roi_align`` (``convention="torchvision"``) or
    MindSpore's ``ROIAlign`` (``"mindspore"``) for float32 and float64 input; float16 is
    computed in float32 and rounded once.

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64 feature maps.
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
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.roi_align(
            input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode, out=out)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    input, rois = _arrays.native_byte_order(input, rois)
    check_input("input", input)
    indices = check_rois(rois, input.shape[0], options)
    F = _arrays.native_compute_type(input.dtype)
    if out is not None:
        _arrays.check_out(out, forward_shape(rois.shape[0], input.shape[1], options),
                          input.dtype, {"input": input, "rois": rois})
    return run_forward(input, rois, indices, options, F, input.dtype, out=out)


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
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.roi_align_grad_input(
            grads, rois, input_shape, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    grads, rois = _arrays.native_byte_order(grads, rois)
    input_shape = check_input_shape(input_shape)
    indices = check_rois(rois, input_shape[0], options)
    check_grads(grads, rois.shape[0], input_shape[1], options)
    F = _arrays.native_compute_type(grads.dtype)
    return run_grad_input(grads, rois, indices, input_shape, options, F, grads.dtype)


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
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.roi_align_grad_boxes(
            grads, input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
            roi_end_mode=roi_end_mode)

    options = Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                      roi_end_mode)
    grads, input, rois = _arrays.native_byte_order(grads, input, rois)
    check_input("input", input)
    indices = check_rois(rois, input.shape[0], options)
    check_grads(grads, rois.shape[0], input.shape[1], options)
    F = _arrays.native_compute_type(input.dtype)
    return run_grad_boxes(grads, input, rois, indices, options, F, input.dtype)


def check_input_shape(input_shape, name="input_shape"):
    """The input shape as Python ints (``name`` is the argument's name in messages)."""
    dims = _checks.array_shape(name, input_shape, "(N, C, H, W)")
    _checks.require_positive_image_size(name, dims[2], dims[3])
    return dims
