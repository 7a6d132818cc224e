"""The one validator of multi-scale RoI Align and its gradients (docs/errors.md).

Every entry point (the NumPy functions, the torch functions, ``compat.torchvision``) calls
:func:`check_forward`, :func:`check_grad_input` or :func:`check_grad_boxes` with the kind of
its arrays and its argument names; they read metadata only (the list of levels, shapes,
dtypes, the options) and return a :class:`MultiScale` record. The values (finite rois, batch
indices, levels in range) are checked next to the kernels by :func:`check_values`.
"""
import math
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays, _checks
from ..roi_align import checks as roi_checks


class Names(NamedTuple):
    """The arguments' names in messages: each entry point's spelling."""
    features: str = "features"
    rois: str = "rois"
    levels: str = "levels"
    scales: str = "scales"
    grads: str = "grads"
    output_size: str = "output_size"


NATIVE = Names()


class MultiScale(NamedTuple):
    """A checked call: what the kernels and the result allocation need."""
    level_shapes: tuple   # ((N, C, H, W) of every level)
    num_rois: int
    options: roi_checks.Options  # output size, sampling ratio, aligned (its scale unused)
    scales: tuple         # each level's spatial scale, as the kernels take it (Python floats)
    out_dtype: Any        # the result's dtype, of the arrays' kind
    kernel_dtype: np.dtype
    F: type
    result_shape: tuple
    names: Names = NATIVE
    half_arithmetic: bool = False  # torchvision's float16 arithmetic (compat.torchvision)


def options(output_size, sampling_ratio, aligned):
    """The roi_align options shared by every level (torchvision's convention)."""
    return roi_checks.Options(output_size, 1.0, sampling_ratio, aligned, "torchvision", 1)


def check_scales(scales, num_levels, name="scales"):
    """One finite, positive number per level, as Python floats."""
    if not isinstance(scales, (list, tuple)):
        raise TypeError(f"{name} must be a list of numbers, one per level, "
                        f"got {type(scales).__name__}")
    if len(scales) != num_levels:
        raise ValueError(f"{name} must hold one scale per level ({num_levels}), "
                         f"got {len(scales)}")
    checked = []
    for i, scale in enumerate(scales):
        value = _checks.require_number(f"{name}[{i}]", scale)
        if not 0 < value < math.inf:
            raise ValueError(f"{name}[{i}] must be positive and finite, got {scale!r}")
        checked.append(value)
    return tuple(checked)


def check_level_args(canonical_scale, canonical_level):
    """The level mapper's constants, ``(canonical_scale, canonical_level)`` as the mapper
    takes them: a positive finite number as a Python float (any real number: an int beyond
    float64's range or a ``Fraction`` too) and an int in int64's range, as a Python int (the
    mapper adds it to an array, which takes nothing wider)."""
    scale = _checks.require_number("canonical_scale", canonical_scale)
    if not 0 < scale < math.inf:
        raise ValueError(f"canonical_scale must be positive and finite, got {canonical_scale!r}")
    level = _checks.require_int("canonical_level", canonical_level)
    if not -_checks.MAX_INDEX - 1 <= level <= _checks.MAX_INDEX:
        raise ValueError(f"canonical_level must be within int64's range, "
                         f"got {_checks.describe(canonical_level)}")
    return scale, level


def level_shapes(kind, name, features):
    """The levels' shapes, ``((N, C, H, W), ...)``, of ``features``, checked: a non-empty
    list of ``[N, C, H, W]`` arrays of one float dtype, one batch size and one channel count
    (``compat.torchvision.MultiScaleRoIAlign`` infers its scales from them)."""
    if not isinstance(features, (list, tuple)):
        raise TypeError(f"{name} must be a list of [N, C, H, W] arrays (one per level), "
                        f"got {type(features).__name__}")
    if not features:
        raise ValueError(f"{name} must hold at least one level, got an empty list")
    kind.require({f"{name}[{i}]": f for i, f in enumerate(features)})
    first = features[0]
    shapes = []
    for i, level in enumerate(features):
        label = f"{name}[{i}]"
        _checks.require_dtype(label, level, kind.float_dtypes)
        _checks.require_shape(label, level, ("batch", "channels", "height", "width"))
        _checks.require_positive_image_size(label, level.shape[2], level.shape[3])
        if level.dtype != first.dtype:
            raise TypeError(f"{label} must have the dtype of {name}[0] ({first.dtype}), "
                            f"got {level.dtype}")
        if tuple(level.shape[:2]) != tuple(first.shape[:2]):
            raise ValueError(f"{label} must have the batch size and channels of {name}[0] "
                             f"{tuple(first.shape[:2])}, got {tuple(level.shape[:2])}")
        shapes.append(tuple(int(d) for d in level.shape))
    return tuple(shapes)


def _levels(kind, name, levels, num_rois):
    if levels is None:
        return
    kind.require({name: levels})
    _checks.require_integer_dtype(kind, name, levels)
    _checks.require_shape(name, levels, ("num_rois",))
    _checks.require_length(name, levels, num_rois, "roi")


def _record(kind, level_shapes, num_rois, options, scales, dtype, result_shape, names):
    kernel_dtype = kind.numpy_dtype(dtype)
    return MultiScale(level_shapes, num_rois, options, scales, dtype, kernel_dtype,
                      _arrays.native_compute_type(kernel_dtype), tuple(result_shape), names)


def forward_call(kind, level_shapes, dtype, num_rois, options, scales, names=NATIVE):
    """The record of a checked forward (the custom ops' arguments); checks nothing."""
    return _record(kind, level_shapes, num_rois, options, scales, dtype,
                   (num_rois, level_shapes[0][1], *options.output_size), names)


def _named_arrays(names, features, **arrays):
    """``{name: array}`` of every level and of the other array arguments (``levels`` only
    when given), for one ``kind.require``: the arrays must also share a device."""
    named = {f"{names.features}[{i}]": f for i, f in enumerate(features)}
    named.update({getattr(names, key): value for key, value in arrays.items()
                  if key != "levels" or value is not None})
    return named


def check_forward(kind, features, rois, levels, scales, options, names=NATIVE):
    """Check a forward call: ``features`` a list of levels, ``rois`` ``[K, 5]``, ``levels``
    ``None`` or ``[K]`` integers, ``scales`` one per level."""
    shapes = level_shapes(kind, names.features, features)
    kind.require(_named_arrays(names, features, rois=rois, levels=levels))
    num_rois = int(roi_checks.require_rois(kind, names.rois, rois, None))
    _levels(kind, names.levels, levels, num_rois)
    scales = check_scales(scales, len(shapes), names.scales)
    return forward_call(kind, shapes, features[0].dtype, num_rois, options, scales, names)


def check_grad_input(kind, grads, rois, levels, level_shapes, scales, options, names=NATIVE):
    """Check an input gradient call; the result is one array per level shape, of the grads'
    dtype."""
    kind.require(_named_arrays(names, (), grads=grads, rois=rois, levels=levels))
    if not isinstance(level_shapes, (list, tuple)) or not level_shapes:
        raise ValueError(f"level_shapes must be a non-empty list of (N, C, H, W), "
                         f"got {level_shapes!r}")
    shapes = tuple(roi_checks.check_input_shape(s, f"level_shapes[{i}]")
                   for i, s in enumerate(level_shapes))
    for i, shape in enumerate(shapes):
        if shape[:2] != shapes[0][:2]:
            raise ValueError(f"level_shapes[{i}] must have the batch size and channels of "
                             f"level_shapes[0] {shapes[0][:2]}, got {shape[:2]}")
    num_rois = int(roi_checks.require_rois(kind, names.rois, rois, None))
    _levels(kind, names.levels, levels, num_rois)
    scales = check_scales(scales, len(shapes), names.scales)
    _checks.require_dtype(names.grads, grads, kind.float_dtypes)
    expected = (num_rois, shapes[0][1], *options.output_size)
    if tuple(grads.shape) != expected:
        raise ValueError(f"{names.grads} must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {expected}, got {tuple(grads.shape)}")
    return _record(kind, shapes, num_rois, options, scales, grads.dtype, expected, names)


def check_grad_boxes(kind, grads, features, rois, levels, scales, options, names=NATIVE):
    """Check a box gradient call; the result is ``[K, 5]`` of the features' dtype."""
    call = check_forward(kind, features, rois, levels, scales, options, names)
    kind.require(_named_arrays(names, features, grads=grads, rois=rois, levels=levels))
    _checks.require_dtype(names.grads, grads, kind.float_dtypes)
    if tuple(grads.shape) != call.result_shape:
        raise ValueError(f"{names.grads} must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {call.result_shape}, got {tuple(grads.shape)}")
    return call._replace(result_shape=(call.num_rois, 5))


def check_values(rois, levels, batch, num_levels, names=NATIVE):
    """The host's value checks (NumPy): finite rois, batch indices in the batch (truncated,
    torchvision's rule), levels in ``[-1, num_levels)`` (``-1``: no level, zeros). Returns
    the batch indices and the levels as int64."""
    indices = roi_checks.check_roi_values(rois, batch, roi_checks.conventions.TORCHVISION,
                                          names.rois)
    levels = np.asarray(levels)
    bad = (levels < -1) | (levels >= num_levels)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{names.levels} must be in [-1, {num_levels}) (-1: no level), "
                         f"row {row} is {levels[row].item()!r}")
    return indices, levels.astype(np.int64, copy=False)


def check_run(call, result="output", device=None):
    """The checks that need the compute type and the result size, before allocating the
    result: ``"output"`` (the forward's ``[K, C, PH, PW]``, sized by ``output_size``),
    ``"levels"`` (the input gradient: one array per level in ``F``, and one in the result's
    dtype where it differs, sized by ``level_shapes``) or None (the box gradient's ``[K, 5]``,
    no larger than the rois)."""
    for i, scale in enumerate(call.scales):
        _checks.representable(f"{call.names.scales}[{i}]", scale, call.F)
    if result == "output":
        _checks.require_memory(call.names.output_size, call.options.output_size,
                               [(call.result_shape, call.kernel_dtype.itemsize)], device)
    elif result == "levels":
        itemsizes = {np.dtype(call.F).itemsize, call.kernel_dtype.itemsize}
        _checks.require_memory("level_shapes", call.level_shapes,
                               [(shape, size) for shape in call.level_shapes
                                for size in itemsizes], device)
