"""Helpers the plain references (``roiops.crop_and_resize.reference``,
``roiops.roi_align.reference``) share: C's float-to-integer conversions and quiet NumPy
arithmetic. Imported only with a reference, never by ``import roiops``."""

from __future__ import annotations

import functools
import math

import numpy as np


def floor_int(v) -> int:
    """``floor(v)`` as a Python int (docs/arithmetic.md#float-to-integer)."""
    return int(math.floor(float(v)))


def ceil_int(v) -> int:
    """``ceil(v)`` as a Python int (docs/arithmetic.md#float-to-integer)."""
    return int(math.ceil(float(v)))


def quiet(fn):
    """Run ``fn`` with NumPy floating-point warnings silenced (inf/NaN arithmetic is part of the
    specified behaviour, not an error)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper
