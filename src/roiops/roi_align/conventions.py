"""roi_align conventions as data: the switches that tell one framework's RoI Align from another's.

Every kernel (CPU and CUDA) takes a convention's :class:`Geometry` whole and has no notion of
which framework it is serving; adding a convention (detectron2's ROIAlignV2, mmcv, ONNX's
RoiAlign) is one more record here, not a new parameter in every kernel. The switches and what
each framework sets them to: docs/conventions.md#roi_align-switches.

Example:
    >>> from roiops.roi_align.conventions import NOT_ABOVE_ONE, convention
    >>> convention("torchvision", aligned=True, roi_end_mode=1).geometry.offset
    0.5
    >>> convention("mindspore", aligned=False, roi_end_mode=0).geometry.min_size == NOT_ABOVE_ONE
    True
"""
from typing import NamedTuple

import numpy as np

from .. import _checks

__all__ = ["NO_MINIMUM", "LESS_THAN_ONE", "NOT_ABOVE_ONE", "Geometry", "Convention",
           "TORCHVISION", "TORCHVISION_ALIGNED", "MINDSPORE_END_MODE_0",
           "MINDSPORE_END_MODE_1", "NAMES", "convention"]

# How a roi's size is held at one feature pixel at least (``min_size``): never; when
# ``size < 1`` (torchvision, not aligned; NaN stays NaN); when not ``size > 1`` (MindSpore,
# roi_end_mode 0; NaN becomes 1).
NO_MINIMUM, LESS_THAN_ONE, NOT_ABOVE_ONE = 0, 1, 2


class Geometry(NamedTuple):
    """The arithmetic switches of a convention, in the order the kernels apply them.

    A roi axis ``(low, high)`` at scale ``s`` becomes ``start = low*s - offset`` and
    ``end = (high [+ end_extra when add_end])*s - offset``; its size is held at 1 per
    ``min_size``; the adaptive grid is ``floor`` (``grid_floor``) or ``ceil`` of the bin
    size; a bin's divisor is ``F(gh) * F(gw)`` (``count_product``) or ``max(gh*gw, 1)``.
    A NamedTuple so that Numba takes it as one argument; Triton takes it as constexprs
    (``roiops.roi_align.cuda``).
    """
    offset: float
    add_end: bool
    end_extra: float
    min_size: int
    grid_floor: bool
    count_product: bool


class Convention(NamedTuple):
    """A named convention: its geometry and how its batch index is read from a roi."""
    name: str
    geometry: Geometry
    # True: MindSpore's rule (the raw value must lie in [0, N - 1], then v + 7e-5 is rounded
    # half to even in float32); False: the value truncated toward zero must lie in [0, N).
    rounded_batch_index: bool


TORCHVISION = Convention("torchvision", Geometry(0.0, False, 0.0, LESS_THAN_ONE, False, False),
                         False)
TORCHVISION_ALIGNED = Convention(
    "torchvision", Geometry(0.5, False, 0.0, NO_MINIMUM, False, False), False)
MINDSPORE_END_MODE_0 = Convention(
    "mindspore", Geometry(0.0, True, 0.0, NOT_ABOVE_ONE, True, True), True)
MINDSPORE_END_MODE_1 = Convention(
    "mindspore", Geometry(0.0, True, 1.0, NO_MINIMUM, True, True), True)

NAMES = ("torchvision", "mindspore")


def convention(name, aligned, roi_end_mode):
    """The convention a public call's options select, checked.

    ``name`` is ``"torchvision"`` (which takes ``aligned``) or ``"mindspore"`` (which takes
    ``roi_end_mode``, 0 or 1); a bool ``aligned`` and an int ``roi_end_mode`` are checked
    for both. TypeError or ValueError naming the argument otherwise.
    """
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    _checks.require_choice("convention", name, NAMES)
    roi_end_mode = _checks.require_int("roi_end_mode", roi_end_mode)
    if roi_end_mode not in (0, 1):
        raise ValueError(f"roi_end_mode must be 0 or 1, got {roi_end_mode!r}")
    if name == "mindspore":
        if aligned:
            raise ValueError("aligned=True is a torchvision option; the mindspore convention "
                             "takes roi_end_mode instead")
        return MINDSPORE_END_MODE_1 if roi_end_mode else MINDSPORE_END_MODE_0
    if roi_end_mode != 1:
        raise ValueError("roi_end_mode is a mindspore option; the torchvision convention "
                         "takes aligned instead")
    return TORCHVISION_ALIGNED if aligned else TORCHVISION
