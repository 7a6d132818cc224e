"""``torch.nn.Module`` wrappers of the roiops operators (requires torch).

See :mod:`roiops.torch.nn`: ``CropAndResize``, ``RoIAlign``, ``RoIPool``,
``MindSporeCropAndResize`` and
``MindSporeROIAlign``; torchvision's ``RoIAlign`` is ``roiops.compat.torchvision.RoIAlign``.
"""
from .torch.nn import CropAndResize, MindSporeCropAndResize, MindSporeROIAlign, RoIAlign, RoIPool

__all__ = ["CropAndResize", "RoIAlign", "RoIPool", "MindSporeCropAndResize", "MindSporeROIAlign"]
