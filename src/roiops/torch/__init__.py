"""PyTorch integration: the roiops operators as differentiable ``torch.library`` custom ops.

Importing this package registers the ops ``torch.ops.roiops.*`` (see :mod:`roiops.torch.ops`).
Users rarely need it directly: ``roiops.crop_and_resize``, ``roiops.roi_align`` (and their
gradients) and every ``roiops.compat`` entry point accept tensors and import it on first use;
``roiops.nn`` holds the ``torch.nn.Module`` wrappers. ``import roiops`` never imports torch.

Example:
    >>> import torch, roiops
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4).requires_grad_()
    >>> rois = torch.tensor([[0, 0.5, 0.5, 2.5, 2.5]], requires_grad=True)
    >>> roiops.roi_align(x, rois, 2, sampling_ratio=2, aligned=True).sum().backward()
    >>> rois.grad
    tensor([[0., 2., 8., 2., 8.]])
"""
from . import ops

__all__ = ["ops"]
