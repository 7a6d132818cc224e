"""How torchvision's ps_roi_pool places its bins, as data: its forward and its backward differ.

torchvision's CPU forward clips every bin's end to ``size - 1`` (the last row and column of
the map are never pooled) and rounds the scaled roi coordinates in the data's type; its
backward clips to ``size`` and rounds through float32 (``roundf``, which matters for float64
data only). roiops reproduces both, so its input gradient is torchvision's, which is not the
forward's adjoint where a bin reaches the last row or column
(docs/position_sensitive.md#ps_roi_pool).

Example:
    >>> from roiops.ps_roi_pool.conventions import BACKWARD, FORWARD
    >>> FORWARD.end_limit, BACKWARD.end_limit
    (-1, 0)
"""
from typing import NamedTuple

__all__ = ["Bins", "FORWARD", "BACKWARD"]


class Bins(NamedTuple):
    """One direction's bin rule; a NamedTuple so that Numba takes it as one argument."""
    # bin starts and ends are clipped to [0, size + end_limit]
    end_limit: int
    # the scaled coordinate is converted to float32 before C's round (roundf of a double)
    round_in_float32: bool


FORWARD = Bins(-1, False)
BACKWARD = Bins(0, True)
