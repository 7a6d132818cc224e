"""``torch.nn.Module`` wrappers of the roiops operators (requires torch).

See :mod:`roiops.torch.nn`: ``CropAndResize``, ``RoIAlign``, ``RoIAlignRotated``, ``RoIPool``,
``PSRoIAlign``, ``PSRoIPool``, ``MindSporeCropAndResize`` and ``MindSporeROIAlign``;
torchvision's ``RoIAlign`` is ``roiops.compat.torchvision.RoIAlign``.
"""
from .torch.nn import (
    CropAndResize,
    MindSporeCropAndResize,
    MindSporeROIAlign,
    PSRoIAlign,
    PSRoIPool,
    RoIAlign,
    RoIAlignRotated,
    RoIPool,
)

__all__ = ["CropAndResize", "RoIAlign", "RoIAlignRotated", "RoIPool", "PSRoIAlign", "PSRoIPool",
           "MindSporeCropAndResize", "MindSporeROIAlign"]
