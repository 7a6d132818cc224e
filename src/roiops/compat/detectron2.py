"""detectron2's ``ROIAlignRotated``, bit for bit (its CPU kernel), on NumPy arrays or tensors.

Rois ``[K, 6]`` are ``(batch_index, cx, cy, w, h, angle)`` with the angle in degrees,
counter-clockwise; boxes are always aligned (pixel centres at .5). The arithmetic is the
native ``convention="detectron2"`` (docs/rotated.md) with detectron2's ``float``
spatial scale (rounded to float32 whatever the dtype), so this module holds no math.
float16 is computed in float32 and rounded once, as detectron2's module does. Where
detectron2 is undefined or asserts, roiops raises ValueError (batch indices outside the batch,
non-finite rois, negative sizes), and it accepts rois of any float dtype (converted to the
compute type). Importing this module does not import torch.

Example:
    >>> import numpy as np
    >>> from roiops.compat.detectron2 import ROIAlignRotated
    >>> pool = ROIAlignRotated((2, 2), spatial_scale=1.0, sampling_ratio=1)
    >>> x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    >>> pool(x, np.array([[0, 2, 2, 2, 2, 90]], np.float32))[0, 0]
    array([[11.,  6.],
           [12.,  7.]], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _checks, _dispatch
from .._typing import ArrayOrTensor
from ..roi_align_rotated.api import roi_align_rotated as _native

__all__ = ["roi_align_rotated", "ROIAlignRotated"]


@_dispatch.script_as("script.detectron2_roi_align_rotated")
def roi_align_rotated(input: ArrayOrTensor, rois: ArrayOrTensor,
                      output_size: int | Sequence[int], spatial_scale: float,
                      sampling_ratio: int) -> ArrayOrTensor:
    """``detectron2.layers.roi_align_rotated(input, rois, output_size, spatial_scale,
    sampling_ratio)``: ``[K, C, *output_size]`` of the input's dtype (differentiable for
    tensors)."""
    scale = _checks.representable("spatial_scale",
                                  _checks.require_number("spatial_scale", spatial_scale),
                                  np.float32)
    return _native(input, rois, output_size, spatial_scale=scale,
                   sampling_ratio=sampling_ratio, convention="detectron2")


class ROIAlignRotated:
    """``detectron2.layers.ROIAlignRotated(output_size, spatial_scale, sampling_ratio)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise), called with
    ``(input, rois)`` as NumPy arrays or tensors. torch is imported when the first instance
    is made, not with this module.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ROIAlignRotated:
        if cls is ROIAlignRotated:
            try:  # the torch.nn.Module subclass that roiops.torch registers
                cls = _dispatch.tensor_implementation("compat.detectron2_ROIAlignRotated")
            except ImportError:  # no torch: a plain callable
                pass
        return super().__new__(cls)

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float,
                 sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: ArrayOrTensor, rois: ArrayOrTensor) -> ArrayOrTensor:
        return roi_align_rotated(input, rois, self.output_size, self.spatial_scale,
                                 self.sampling_ratio)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio})")
