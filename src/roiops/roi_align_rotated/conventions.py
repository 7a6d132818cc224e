"""Rotated RoI Align conventions as data: what tells detectron2's ``ROIAlignRotated`` from
mmcv's ``RoIAlignRotated``.

The kernels (CPU and CUDA) take a convention's :class:`Geometry` whole and never ask which
framework they serve; the arithmetic both share and the switches are written down in
docs/rotated.md.

Example:
    >>> from roiops.roi_align_rotated.conventions import convention
    >>> convention("detectron2", True, False).geometry.degrees
    True
    >>> convention("mmcv", False, True).geometry.angle_sign
    -1.0
"""
from typing import NamedTuple

import numpy as np

from .. import _checks

__all__ = ["Geometry", "Convention", "DETECTRON2", "NAMES", "convention"]


class Geometry(NamedTuple):
    """The arithmetic switches of a convention, in the order the kernels apply them.

    A roi ``(b, cx, cy, w, h, angle)`` at scale ``s`` has its centre at ``cx*s - offset``,
    ``cy*s - offset`` and its size ``w*s``, ``h*s``, held at 1 at least when
    ``min_size_one``; its angle in radians is ``angle*pi/180`` computed in float64 when
    ``degrees`` (else ``angle`` itself), times ``angle_sign``. The adaptive grid is the
    ceiling of ``size / pooled``, taken after rounding that ratio to float32 when
    ``grid_in_float32`` (mmcv's ``ceilf``). A NamedTuple so that Numba takes it as one
    argument; Triton takes it as constexprs.
    """
    offset: float
    degrees: bool
    angle_sign: float
    min_size_one: bool
    grid_in_float32: bool


class Convention(NamedTuple):
    """A named convention and its geometry. Both frameworks truncate the batch index toward
    zero (``rounded_batch_index`` is the roi_align record's switch, always False here)."""
    name: str
    geometry: Geometry
    rounded_batch_index: bool = False


DETECTRON2 = Convention("detectron2", Geometry(0.5, True, 1.0, False, False))
_MMCV = {
    (aligned, clockwise): Convention(
        "mmcv", Geometry(0.5 if aligned else 0.0, False, -1.0 if clockwise else 1.0,
                         not aligned, True))
    for aligned in (False, True) for clockwise in (False, True)
}

NAMES = ("detectron2", "mmcv")


def convention(name, aligned, clockwise):
    """The convention a call's options select, checked.

    ``"detectron2"`` (angles in degrees, counter-clockwise, always aligned) takes the
    defaults ``aligned=True, clockwise=False`` only; ``"mmcv"`` (angles in radians) takes
    both. TypeError or ValueError naming the argument otherwise.
    """
    for option, value in (("aligned", aligned), ("clockwise", clockwise)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{option} must be a bool, got {type(value).__name__}")
    _checks.require_choice("convention", name, NAMES)
    if name == "mmcv":
        return _MMCV[bool(aligned), bool(clockwise)]
    if not aligned:
        raise ValueError("aligned=False is an mmcv option; detectron2's ROIAlignRotated is "
                         "always aligned (use convention='mmcv')")
    if clockwise:
        raise ValueError("clockwise=True is an mmcv option; detectron2's angles are "
                         "counter-clockwise (use convention='mmcv')")
    return DETECTRON2
