"""Which pyramid level each roi reads, and each level's scale: torchvision's MultiScaleRoIAlign
heuristics (docs/multi_scale.md), one definition for NumPy arrays and torch tensors.

- :func:`fpn_levels`, the level mapper (eq. 1 of the FPN paper): a box of area ``a`` goes to
  ``floor(canonical_level + log2(sqrt(a) / canonical_scale) + 1e-6)``, clamped to the levels
  present, minus the first level's number. Computed in the boxes' dtype, float16 and bfloat16
  widened to float32 first, as torchvision does; a box whose area is NaN (a reversed side) has
  no level (``-1``: its result is zeros), and so has a box mapped to a level without a map
  (scales that do not halve one level at a time, or coarse levels first), which torchvision
  leaves zero too.
- :func:`infer_scale`: a level's scale is ``2 ** round(log2(map height / image height))``,
  the rounding in float32 half to even; :func:`level_range` gives the levels' numbers
  ``(k_min, k_max) = (-log2(first scale), -log2(last scale))`` truncated to ints.

The array operations are a parameter (:class:`LevelOps`): :data:`NUMPY` here, torch's in
``roiops.torch.ops``. torch's float32 ``log2`` is not correctly rounded (it differs from the
correctly rounded value for about 3 inputs in 10,000); NumPy arrays get the correctly rounded
one, so a NumPy box whose ``log2`` lands within one rounding of a level boundary (a relative
change of about 1e-7 in its size) can get the neighbouring level where torchvision's tensors
do not. Tensors use torch's and match torchvision bit for bit.

Example:
    >>> import numpy as np
    >>> from roiops.multi_scale_roi_align.levels import NUMPY, fpn_levels
    >>> boxes = np.array([[0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 1000, 900]], np.float32)
    >>> fpn_levels(NUMPY, boxes, 2, 5, 4)   # levels 2..5: the boxes go to 3, 4 and 5
    array([1, 2, 3])
    >>> fpn_levels(NUMPY, boxes, 2, 5, 2)   # only levels 2 and 3 have maps
    array([ 1, -1, -1])
"""
import math
from typing import Any, Callable, NamedTuple

import numpy as np

# torchvision's eps: added before the floor, so a box exactly on a boundary goes up.
EPS = 1e-6


class LevelOps(NamedTuple):
    """The array operations :func:`fpn_levels` needs, for one kind of array."""
    # float16/bfloat16 boxes widened to float32, float32/float64 unchanged
    upcast: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    log2: Callable[[Any], Any]
    floor: Callable[[Any], Any]
    # (array, python float) -> the value in the array's dtype, as a 0-d array or tensor
    scalar: Callable[[Any, float], Any]
    # (array, low, high) -> clamped, NaN kept
    clip: Callable[[Any, int, int], Any]
    # (float array, fill) -> int64, NaN replaced by fill
    to_levels: Callable[[Any, int], Any]
    # a context in which NaN, inf and overflow pass silently (NumPy warns otherwise)
    quiet: Callable[[], Any]
    # (condition, values, fill) -> values where the condition holds, else the int fill
    where: Callable[[Any, Any, int], Any]


def _numpy_upcast(boxes):
    return boxes if boxes.dtype in (np.float32, np.float64) else boxes.astype(np.float32)


def _numpy_log2(values):
    """Correctly rounded log2 (float64's, rounded once to float32 for float32)."""
    if values.dtype == np.float64:
        return np.log2(values)
    return np.log2(values.astype(np.float64)).astype(values.dtype)


def _numpy_to_levels(values, fill):
    return np.where(np.isnan(values), fill, values).astype(np.int64)


NUMPY = LevelOps(_numpy_upcast, np.sqrt, _numpy_log2, np.floor,
                 lambda like, value: like.dtype.type(value), np.clip, _numpy_to_levels,
                 lambda: np.errstate(invalid="ignore", divide="ignore", over="ignore"),
                 np.where)


def fpn_levels(ops, boxes, k_min, k_max, num_levels, canonical_scale=224, canonical_level=4):
    """The level (``0 .. num_levels - 1``, or ``-1``) of every box ``[K, 4]`` ``(x1, y1, x2,
    y2)``, int64: ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)``
    clamped to ``[k_min, k_max]``, minus ``k_min``, each operation in the (widened) boxes'
    dtype, the constants converted to it as torch converts Python numbers; ``-1`` for a NaN
    area and for a level outside the ``num_levels`` maps. ``canonical_scale`` and
    ``canonical_level`` as :func:`roiops.multi_scale_roi_align.checks.check_level_args`
    returns them (a float and an int64)."""
    boxes = ops.upcast(boxes)
    with ops.quiet():
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        size = ops.sqrt(area)
        target = ops.floor(canonical_level + ops.log2(size / canonical_scale)
                           + ops.scalar(size, EPS))
    target = ops.clip(target, k_min, k_max)
    levels = ops.to_levels(target, k_min - 1) - k_min
    return ops.where((levels >= 0) & (levels < num_levels), levels, -1)


def level_number(scale):
    """``int(-log2(scale))``: a level's number (exact for the powers of two that
    :func:`infer_scale` gives; plain Python, so that ``torch.compile`` traces it)."""
    return int(-math.log2(scale))


def level_range(scales):
    """``(k_min, k_max)``: the numbers of the first and the last level."""
    return level_number(scales[0]), level_number(scales[-1])


def infer_scale(map_height, image_height):
    """``2 ** round(log2(map_height / image_height))``, the log2 and the rounding (half to
    even) in float32: a level's scale, from its height and the largest image height."""
    ratio = np.array([float(map_height) / float(image_height)], np.float32)
    return 2.0 ** float(np.rint(_numpy_log2(ratio))[0])


def original_size(image_shapes):
    """The largest height and the largest width over ``image_shapes`` (``(h, w)`` pairs)."""
    return max(int(s[0]) for s in image_shapes), max(int(s[1]) for s in image_shapes)


__all__ = ["EPS", "LevelOps", "NUMPY", "fpn_levels", "level_number", "level_range",
           "infer_scale", "original_size"]
