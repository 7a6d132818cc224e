"""Multi-scale RoI Align (FPN) and its gradients: the native API over the fused kernels.

Each roi is pooled by roi_align (torchvision's convention) from one level of a feature
pyramid, at that level's scale; the level is given or chosen by torchvision's level mapper
(``roiops.multi_scale_roi_align.levels``). One kernel call serves every roi and level
(docs/multi_scale.md). Tensors go to ``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from . import checks, cpu
from . import levels as level_mapper


def numpy_levels(rois, scales, canonical_scale, canonical_level):
    """The level of every roi ``[K, 5]`` by the level mapper; all 0 for one level (as
    torchvision, which maps only pyramids of two levels or more)."""
    if len(scales) == 1:
        return np.zeros(rois.shape[0], np.int64)
    k_min, k_max = level_mapper.level_range(scales)
    return level_mapper.fpn_levels(level_mapper.NUMPY, rois[:, 1:5], k_min, k_max,
                                   len(scales), canonical_scale, canonical_level)


def _kernel_scales(call):
    return tuple(call.F(s) for s in call.scales)


def run_forward(call, features, rois, indices, levels):
    """The kernel call of a checked ``call``: ``[K, C, PH, PW]`` of ``call.kernel_dtype``."""
    checks.check_run(call)
    result = np.empty(call.result_shape, call.kernel_dtype)
    target, out_half = _arrays.kernel_output(result)
    if result.size:
        F = call.F
        options = call.options
        cpu.forward([_arrays.kernel_input(f, F) for f in features],
                    _arrays.kernel_input(rois, F), indices, levels, _kernel_scales(call),
                    options.sampling_ratio, options.convention.geometry, call.half_arithmetic,
                    target, out_half, F)
    return result


def run_grad_input(call, grads, rois, indices, levels):
    """The input gradient of every level of a checked ``call``: a list of C-contiguous
    arrays of the levels' shapes."""
    checks.check_run(call, result="levels")
    F = call.F
    allocate = np.empty if grads.size else np.zeros  # the kernel writes every element
    gradients = [allocate(shape, F) for shape in call.level_shapes]
    if grads.size:
        options = call.options
        cpu.grad_input(_arrays.kernel_input(grads, F), _arrays.kernel_input(rois, F), indices,
                       levels, _kernel_scales(call), options.sampling_ratio,
                       options.convention.geometry, call.half_arithmetic, gradients, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return [g.astype(call.kernel_dtype, copy=False) for g in gradients]


def run_grad_boxes(call, grads, features, rois, indices, levels):
    """The box gradient of a checked ``call``: ``[K, 5]``."""
    checks.check_run(call, result=None)
    F = call.F
    total = np.zeros((call.num_rois, 5), F)
    if grads.size:
        options = call.options
        cpu.grad_boxes(_arrays.kernel_input(grads, F), [_arrays.kernel_input(f, F)
                                                        for f in features],
                       _arrays.kernel_input(rois, F), indices, levels, _kernel_scales(call),
                       options.sampling_ratio, options.convention.geometry, total, F)
    with np.errstate(over="ignore"):
        return total.astype(call.kernel_dtype, copy=False)


def _prepare(features, rois, levels, scales, canonical_scale, canonical_level, call):
    """The host's value checks and the levels (given or mapped)."""
    if levels is None:
        checks.check_values(rois, np.zeros(rois.shape[0], np.int64), call.level_shapes[0][0],
                            len(call.scales))
        levels = numpy_levels(rois, call.scales, canonical_scale, canonical_level)
    return checks.check_values(rois, levels, call.level_shapes[0][0], len(call.scales))


def multi_scale_roi_align(features: Sequence[ArrayOrTensor], rois: ArrayOrTensor,
                          output_size: int | Sequence[int], scales: Sequence[float], *,
                          sampling_ratio: int = -1, aligned: bool = False,
                          levels: ArrayOrTensor | None = None, canonical_scale: float = 224,
                          canonical_level: int = 4) -> ArrayOrTensor:
    """RoI Align over a feature pyramid: each roi pooled from its level, in one fused call.

    Roi ``k`` is ``roi_align(features[l], rois[k], output_size, spatial_scale=scales[l],
    sampling_ratio, aligned)`` with ``l = levels[k]`` (torchvision's convention, exactly);
    without ``levels``, ``l`` is torchvision's FPN level mapper:
    ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)`` clamped to the
    levels numbered ``-log2(scales[0]) .. -log2(scales[-1])``, in the rois' dtype; a roi
    mapped to a level without a map (scales that do not halve level by level) gives zeros,
    as in torchvision.

    Args:
        features: a list of ``[N, C, H_l, W_l]`` float16/32/64 maps, one per level (one
            dtype, batch size and channel count).
        rois: ``[K, 5]`` float rows ``(batch_index, x1, y1, x2, y2)`` in image pixels.
        output_size: ``(pooled_height, pooled_width)`` or one int.
        scales: each level's spatial scale (map size over image size), e.g.
            ``[1/4, 1/8, 1/16, 1/32]``.
        sampling_ratio: samples per bin axis, ``<= 0`` adaptive (``ceil(roi/bins)``).
        aligned: shift boxes by -0.5 pixel (torchvision's ``aligned``).
        levels: optional ``[K]`` integer level of every roi, in ``[-1, len(features))``;
            ``-1`` (the mapper's answer for a box of NaN area) gives zeros.
        canonical_scale, canonical_level: the level mapper's constants (FPN's 224 and 4).

    Returns:
        ``[K, C, pooled_height, pooled_width]`` of the features' dtype (float16 computed in
        float32 and rounded once).

    Raises:
        TypeError: non-array or non-list arguments, unsupported or mixed dtypes.
        ValueError: wrong shapes, levels that differ in batch size or channels, a scale per
            level missing or not positive, non-finite rois, batch indices outside the batch,
            levels outside ``[-1, len(features))``. docs/errors.md lists every rule.

    Example:
        >>> import numpy as np, roiops
        >>> p2 = np.ones((1, 1, 64, 64), np.float32); p3 = 2 * np.ones((1, 1, 32, 32), np.float32)
        >>> rois = np.array([[0, 0, 0, 40, 40], [0, 0, 0, 200, 200]], np.float32)
        >>> roiops.multi_scale_roi_align([p2, p3], rois, 1, [1 / 4, 1 / 8],
        ...                              sampling_ratio=2)[:, 0, 0, 0]   # level 2, level 3
        array([1., 2.], dtype=float32)
    """
    if _checks.any_tensor(rois, levels, *(features if isinstance(features, (list, tuple))
                                            else (features,))):
        return _dispatch.tensor_implementation("multi_scale_roi_align")(
            features, rois, output_size, scales, sampling_ratio=sampling_ratio,
            aligned=aligned, levels=levels, canonical_scale=canonical_scale,
            canonical_level=canonical_level)
    options = checks.options(output_size, sampling_ratio, aligned)
    canonical_scale, canonical_level = checks.check_level_args(canonical_scale,
                                                               canonical_level)
    if isinstance(features, (list, tuple)):
        features = _arrays.native_byte_order(list(features))
    rois = _arrays.native_byte_order(rois)
    call = checks.check_forward(_checks.NUMPY, features, rois, levels, scales, options)
    indices, levels = _prepare(features, rois, levels, scales, canonical_scale,
                               canonical_level, call)
    return run_forward(call, features, rois, indices, levels)


def multi_scale_roi_align_grad_input(grads: ArrayOrTensor, rois: ArrayOrTensor,
                                     levels: ArrayOrTensor,
                                     level_shapes: Sequence[Sequence[int]],
                                     output_size: int | Sequence[int],
                                     scales: Sequence[float], *, sampling_ratio: int = -1,
                                     aligned: bool = False) -> list:
    """Gradient of :func:`multi_scale_roi_align` with respect to every level (the adjoint).

    Each level's elements receive their adds in the sequential order of that level's rois
    (roi, bin, sample, corner), as torchvision's per-level CPU backward: deterministic.

    Args:
        grads: ``[K, C, pooled_height, pooled_width]``.
        levels: ``[K]`` the level of every roi (as the forward used it, e.g. from
            :func:`roiops.multi_scale_roi_align.api.numpy_levels`).
        level_shapes: ``(N, C, H_l, W_l)`` of every level.
        rois, output_size, scales and options: as in :func:`multi_scale_roi_align`.

    Returns:
        a list of C-contiguous arrays of ``level_shapes`` and ``grads.dtype``.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.multi_scale_roi_align_grad_input(
        ...     np.ones((1, 1, 1, 1), np.float32), np.array([[0, 4, 4, 12, 12]], np.float32),
        ...     np.array([1]), [(1, 1, 8, 8), (1, 1, 4, 4)], 1, [1 / 2, 1 / 4],
        ...     sampling_ratio=1)
        >>> float(g[0].sum()), float(g[1].sum()), float(g[1][0, 0, 2, 2])
        (0.0, 1.0, 1.0)
    """
    if _checks.any_tensor(grads, rois, levels):
        return _dispatch.tensor_implementation("multi_scale_roi_align_grad_input")(
            grads, rois, levels, level_shapes, output_size, scales,
            sampling_ratio=sampling_ratio, aligned=aligned)
    options = checks.options(output_size, sampling_ratio, aligned)
    grads, rois, levels = _arrays.native_byte_order(grads, rois, levels)
    if levels is None:
        raise TypeError("levels must be an integer array of the rois' levels, got None")
    call = checks.check_grad_input(_checks.NUMPY, grads, rois, levels, level_shapes, scales,
                                   options)
    indices, levels = checks.check_values(rois, levels, call.level_shapes[0][0],
                                          len(call.scales))
    return run_grad_input(call, grads, rois, indices, levels)


def multi_scale_roi_align_grad_boxes(grads: ArrayOrTensor, features: Sequence[ArrayOrTensor],
                                     rois: ArrayOrTensor, levels: ArrayOrTensor,
                                     output_size: int | Sequence[int],
                                     scales: Sequence[float], *, sampling_ratio: int = -1,
                                     aligned: bool = False) -> ArrayOrTensor:
    """Gradient of :func:`multi_scale_roi_align` with respect to the roi coordinates:
    roi_align's box gradient (docs/arithmetic.md#roi_align-box-gradient) of every roi on its
    level, with the levels held fixed (they are piecewise constant in the box). A roi without
    a level, and the batch-index column, get zero.

    Returns:
        ``[K, 5]`` of the features' dtype.

    Example:
        >>> import numpy as np, roiops
        >>> ramp = np.arange(8, dtype=np.float64)[None, None, None, :].repeat(8, axis=2)
        >>> roiops.multi_scale_roi_align_grad_boxes(
        ...     np.ones((1, 1, 1, 1)), [ramp], np.array([[0, 4, 4, 8, 8]], np.float64),
        ...     np.array([0]), 1, [1 / 2], sampling_ratio=1)
        array([[0.  , 0.25, 0.  , 0.25, 0.  ]])
    """
    feature_list = features if isinstance(features, (list, tuple)) else (features,)
    if _checks.any_tensor(grads, rois, levels, *feature_list):
        return _dispatch.tensor_implementation("multi_scale_roi_align_grad_boxes")(
            grads, features, rois, levels, output_size, scales,
            sampling_ratio=sampling_ratio, aligned=aligned)
    options = checks.options(output_size, sampling_ratio, aligned)
    if isinstance(features, (list, tuple)):
        features = _arrays.native_byte_order(list(features))
    grads, rois, levels = _arrays.native_byte_order(grads, rois, levels)
    if levels is None:
        raise TypeError("levels must be an integer array of the rois' levels, got None")
    call = checks.check_grad_boxes(_checks.NUMPY, grads, features, rois, levels, scales,
                                   options)
    indices, levels = checks.check_values(rois, levels, call.level_shapes[0][0],
                                          len(call.scales))
    return run_grad_boxes(call, grads, features, rois, indices, levels)
