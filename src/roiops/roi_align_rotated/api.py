"""Rotated RoI Align and its gradients: the native API (docs/api.md) over the Numba kernels.

Two conventions share one kernel: ``"detectron2"`` (``ROIAlignRotated``: angles in degrees,
counter-clockwise, always aligned) and ``"mmcv"`` (``RoIAlignRotated``: angles in radians,
``aligned`` and ``clockwise`` options). The arithmetic of both: docs/rotated.md.

Each entry point checks its call with ``roiops.roi_align_rotated.checks`` and hands the record
to a ``run_*`` function, which the compatibility layers call too with their framework's
record; tensors go to ``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from . import checks, conventions, cpu
from .checks import Options, check_compute_type, check_forward_run, check_grad_input_run

CONVENTIONS = conventions.NAMES


def angle_unit(geometry):
    """The angle's radians per unit of the roi's angle column, with its sign."""
    return geometry.angle_sign * (math.pi / 180.0 if geometry.degrees else 1.0)


def geometry(call, rois, half=None):
    """The kernels' per-roi geometry of a checked call (in its half arithmetic unless
    ``half`` says), after refusing rois whose adaptive grid is too large to run
    (``checks.check_samples``)."""
    F = call.F
    half = call.half_arithmetic if half is None else half
    geo = cpu.geometry_of(_arrays.kernel_input(rois, F), *call.options.kernel_args(F),
                          *call.options.output_size, half, F)
    checks.check_samples(call, geo.grid_h, geo.grid_w, call.names.rois)
    return geo


def run_forward(call, input, rois, indices):
    """The kernel call of a checked ``call``."""
    check_forward_run(call)
    geo = geometry(call, rois)
    result = np.empty(call.result_shape, call.kernel_dtype)
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        cpu.forward(_arrays.kernel_input(input, call.F), rois, indices, geo,
                    call.half_arithmetic, target, out_half, call.F)
    return result


def run_grad_input(call, grads, rois, indices):
    """The input gradient of a checked ``call`` (``grads``' dtype), stored channels-last as
    roi_align's: the dense path accumulates straight into it, no result-sized temporary."""
    check_grad_input_run(call)
    geo = geometry(call, rois)
    F = call.F
    batch, channels, height, width = call.input_shape
    channels_last = np.zeros((batch, height, width, channels), F)
    total = channels_last.transpose(0, 3, 1, 2)
    if grads.size:
        cpu.grad_input(_arrays.kernel_input(grads, F), indices, geo, call.half_arithmetic,
                       total, channels_last, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


def run_grad_boxes(call, grads, input, rois, indices):
    """The box gradient of a checked ``call``: ``[K, 6]``."""
    check_compute_type(call)
    geo = geometry(call, rois, half=False)
    F = call.F
    total = np.zeros((call.num_rois, 6), F)
    if grads.size:
        cpu.grad_boxes(_arrays.kernel_input(grads, F), _arrays.kernel_input(input, F), indices,
                       F(call.options.spatial_scale),
                       F(angle_unit(call.options.convention.geometry)), geo, total, F)
    with np.errstate(over="ignore"):
        return total.astype(call.kernel_dtype, copy=False)


def _prepare(check, arrays, rois_position, options, *args):
    """Native byte order, the validator, the host's value checks: ``(call, arrays, indices)``."""
    arrays = _arrays.native_byte_order(*arrays)
    call = check(_checks.NUMPY, *arrays, *args, options)
    rois = arrays[rois_position]
    indices = checks.check_roi_values(rois, call.input_shape[0], call)
    return call, arrays, indices


@_dispatch.script_as("script.roi_align_rotated")
def roi_align_rotated(input: ArrayOrTensor, rois: ArrayOrTensor,
                      output_size: int | Sequence[int], *, spatial_scale: float = 1.0,
                      sampling_ratio: int = 0, aligned: bool = True, clockwise: bool = False,
                      convention: str = "detectron2") -> ArrayOrTensor:
    """Rotated RoI Align: average ``gh x gw`` bilinear samples of a rotated grid per bin.

    Bit-identical to detectron2's CPU ``ROIAlignRotated`` (``convention="detectron2"``) or
    mmcv's CPU ``roi_align_rotated`` (``"mmcv"``) for float32 and float64 input; float16 is
    computed in float32 and rounded once (docs/rotated.md).

    Args:
        input: ``[N, C, H, W]`` float16, float32 or float64 feature maps.
        rois: ``[K, 6]`` float rows ``(batch_index, cx, cy, w, h, angle)`` in image
            coordinates (multiplied by ``spatial_scale``); the angle in degrees
            (detectron2) or radians (mmcv), counter-clockwise unless ``clockwise``.
        output_size: ``(pooled_height, pooled_width)`` or one int for both.
        spatial_scale: feature-map size over image size, e.g. 1/16.
        sampling_ratio: samples per bin along each axis, at most 1024; ``<= 0`` picks
            ``ceil(roi size / bins)`` on each axis.
        aligned: mmcv only: ``False`` drops the -0.5 pixel shift and holds sizes at 1 at
            least (mmcv's legacy mode).
        clockwise: mmcv only: the angle turns clockwise.
        convention: ``"detectron2"`` or ``"mmcv"``.

    Returns:
        ``[K, C, pooled_height, pooled_width]`` of ``input.dtype``.

    Raises:
        TypeError: non-array arguments, unsupported dtypes, non-bool ``aligned`` or
            ``clockwise``, non-int ``sampling_ratio``.
        ValueError: wrong shapes, non-positive sizes, unknown or mismatched options,
            ``sampling_ratio`` above 1024, non-finite rois, batch indices outside the batch,
            negative sizes in an aligned convention, a roi needing more than 2**31 - 1
            samples, a result larger than the machine's memory. docs/errors.md lists every
            rule.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
        >>> rois = np.array([[0, 2, 2, 2, 2, 90]], np.float32)   # centre (2, 2), 2x2, 90°
        >>> roiops.roi_align_rotated(x, rois, 2, sampling_ratio=1)[0, 0]
        array([[11.,  6.],
               [12.,  7.]], dtype=float32)
    """
    if _checks.any_tensor(input, rois):
        return _dispatch.tensor_implementation("roi_align_rotated")(
            input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, clockwise=clockwise,
            convention=convention)
    options = Options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                      convention)
    call, (input, rois), indices = _prepare(checks.check_forward, (input, rois), 1, options)
    return run_forward(call, input, rois, indices)


def roi_align_rotated_grad_input(grads: ArrayOrTensor, rois: ArrayOrTensor,
                                 input_shape: Sequence[int], output_size: int | Sequence[int],
                                 *, spatial_scale: float = 1.0, sampling_ratio: int = 0,
                                 aligned: bool = True, clockwise: bool = False,
                                 convention: str = "detectron2") -> ArrayOrTensor:
    """Gradient of :func:`roi_align_rotated` with respect to the input (the true adjoint).

    Each ``input`` element receives its contributions in the frameworks' sequential order
    (rois, bins, samples, corners), so the result is deterministic and equal to their CPU
    backward.

    Args:
        grads: ``[K, C, pooled_height, pooled_width]`` float16/32/64.
        input_shape: ``(N, C, H, W)``.
        rois, output_size and options: as in :func:`roi_align_rotated`.

    Returns:
        ``input_shape`` array of ``grads.dtype``, in channels-last memory order (strides of
        ``[N, H, W, C]``): ``np.ascontiguousarray`` gives NCHW.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.roi_align_rotated_grad_input(np.ones((1, 1, 1, 1), np.float32),
        ...     np.array([[0, 2, 2, 1, 1, 0]], np.float32), (1, 1, 3, 3), 1,
        ...     sampling_ratio=1)
        >>> g[0, 0]
        array([[0.  , 0.  , 0.  ],
               [0.  , 0.25, 0.25],
               [0.  , 0.25, 0.25]], dtype=float32)
    """
    if _checks.any_tensor(grads, rois):
        return _dispatch.tensor_implementation("roi_align_rotated_grad_input")(
            grads, rois, input_shape, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, clockwise=clockwise,
            convention=convention)
    options = Options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                      convention)
    call, (grads, rois), indices = _prepare(checks.check_grad_input, (grads, rois), 1,
                                            options, input_shape)
    return run_grad_input(call, grads, rois, indices)


def roi_align_rotated_grad_boxes(grads: ArrayOrTensor, input: ArrayOrTensor,
                                 rois: ArrayOrTensor, output_size: int | Sequence[int], *,
                                 spatial_scale: float = 1.0, sampling_ratio: int = 0,
                                 aligned: bool = True, clockwise: bool = False,
                                 convention: str = "detectron2") -> ArrayOrTensor:
    """Gradient of :func:`roi_align_rotated` with respect to the rois (no framework has one).

    The derivative of the forward with the sample grid held fixed
    (docs/rotated.md#box-gradient): zero where the forward is locally constant in a
    coordinate (samples clamped at the border or outside the map, a size held at 1). The
    batch-index column gets zero; the angle's derivative is per unit of the angle column
    (per degree for detectron2, per radian for mmcv).

    Args:
        grads: ``[K, C, pooled_height, pooled_width]``.
        input, rois, output_size and options: as in :func:`roi_align_rotated`.

    Returns:
        ``[K, 6]`` of ``input.dtype``: d/d``(batch_index, cx, cy, w, h, angle)``.

    Example:
        >>> import numpy as np, roiops
        >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)   # value = 4*y + x
        >>> roiops.roi_align_rotated_grad_boxes(np.ones((1, 1, 1, 1)), x,
        ...     np.array([[0, 2, 2, 1, 1, 0]], np.float64), 1, sampling_ratio=1)
        array([[0., 1., 4., 0., 0., 0.]])
    """
    if _checks.any_tensor(grads, input, rois):
        return _dispatch.tensor_implementation("roi_align_rotated_grad_boxes")(
            grads, input, rois, output_size, spatial_scale=spatial_scale,
            sampling_ratio=sampling_ratio, aligned=aligned, clockwise=clockwise,
            convention=convention)
    options = Options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                      convention)
    call, (grads, input, rois), indices = _prepare(checks.check_grad_boxes,
                                                   (grads, input, rois), 2, options)
    return run_grad_boxes(call, grads, input, rois, indices)
