"""mmcv's ``RoIAlignRotated`` and ``roi_align_rotated``, bit for bit (its CPU kernel) in
float32 and float64, on NumPy arrays or tensors.

Rois ``[K, 6]`` are ``(batch_index, cx, cy, w, h, angle)`` with the angle in radians,
counter-clockwise unless ``clockwise``; ``aligned=False`` is mmcv's legacy mode (no half-pixel
shift, sizes held at 1 at least). The arithmetic is the native ``convention="mmcv"``
(docs/rotated.md) with mmcv's ``float`` spatial scale (rounded to float32 whatever the
dtype), so this module holds no math. float16 is computed in float32 and rounded once, where
mmcv's CPU kernel rounds every operation to half: float16 results can differ from mmcv's in
the last bits (docs/rotated.md#float16). Where mmcv is undefined or asserts, roiops raises
ValueError (batch indices outside the batch, non-finite rois, negative sizes when aligned),
and it accepts rois of any float dtype (converted to the compute type). Importing this
module does not import torch.

Example:
    >>> import numpy as np
    >>> from roiops.compat.mmcv import roi_align_rotated
    >>> x = np.array([[[[1., 2.], [3., 4.]]]], np.float32)
    >>> roi_align_rotated(x, np.array([[0, 0.5, 0.5, 1, 1, 0]], np.float32), (2, 2), 1.0, 2)
    array([[[[1.  , 1.25],
             [1.5 , 1.75]]]], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align_rotated.api import roi_align_rotated as _native

__all__ = ["roi_align_rotated", "RoIAlignRotated"]


def roi_align_rotated(input: ArrayOrTensor, rois: ArrayOrTensor,
                      output_size: int | Sequence[int], spatial_scale: float,
                      sampling_ratio: int = 0, aligned: bool = True,
                      clockwise: bool = False) -> ArrayOrTensor:
    """``mmcv.ops.roi_align_rotated(input, rois, output_size, spatial_scale,
    sampling_ratio=0, aligned=True, clockwise=False)``: ``[K, C, *output_size]`` of the
    input's dtype (differentiable for tensors, also w.r.t. the rois, which mmcv is not)."""
    scale = _checks.representable("spatial_scale",
                                  _checks.require_number("spatial_scale", spatial_scale),
                                  np.float32)
    return _native(input, rois, output_size, spatial_scale=scale,
                   sampling_ratio=sampling_ratio, aligned=aligned, clockwise=clockwise,
                   convention="mmcv")


class RoIAlignRotated:
    """``mmcv.ops.RoIAlignRotated(output_size, spatial_scale=1.0, sampling_ratio=0,
    aligned=True, clockwise=False)`` (mmcv 2.2 has no default for ``spatial_scale``).

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise), called with
    ``(input, rois)`` as NumPy arrays or tensors. torch is imported when the first instance
    is made, not with this module.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RoIAlignRotated:
        if cls is RoIAlignRotated:
            try:  # the torch.nn.Module subclass that roiops.torch registers
                cls = _dispatch.tensor_implementation("compat.mmcv_RoIAlignRotated")
            except ImportError:  # no torch: a plain callable
                pass
        return super().__new__(cls)

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = 0, aligned: bool = True,
                 clockwise: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.clockwise = clockwise

    def forward(self, input: ArrayOrTensor, rois: ArrayOrTensor) -> ArrayOrTensor:
        return roi_align_rotated(input, rois, self.output_size, self.spatial_scale,
                                 self.sampling_ratio, self.aligned, self.clockwise)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned}, clockwise={self.clockwise})")
