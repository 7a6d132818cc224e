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
import torch

from .. import _dispatch
from ..compat import torchvision as _torchvision
from ..crop_and_resize import api as _crop_and_resize
from ..roi_align import api as _roi_align
from ..roi_align_rotated import api as _rotated
from ..roi_pool import api as _roi_pool
from . import (
    api,
    compat,
    multi_scale_ops,  # noqa: F401  (registers its ops and implementations)
    ops,
    ps_roi_ops,
    roi_pool_ops,
    rotated_ops,
    tensors,
    tracing,
)

__all__ = ["ops"]

# The torch implementations of the entry points that take NumPy arrays or tensors: this is
# where roiops and roiops.compat find them (roiops._dispatch), so they never import torch.
for _name in ("crop_and_resize", "crop_and_resize_grad_image", "crop_and_resize_grad_boxes",
              "roi_align", "roi_align_grad_input", "roi_align_grad_boxes",
              "roi_align_rotated", "roi_align_rotated_grad_input",
              "roi_align_rotated_grad_boxes"):
    _dispatch.register(_name, getattr(api, _name))
_dispatch.register("compat.crop_and_resize", compat.crop_and_resize)
_dispatch.register("compat.host_call", compat.host_call)
_dispatch.register("compat.mindspore_roi_align", compat.mindspore_roi_align)
_dispatch.register("compat.torchvision_roi_align", compat.torchvision_roi_align)
_dispatch.register("compat.torchvision_RoIAlign", compat.TorchvisionRoIAlign)
_dispatch.register("roi_pool", api.roi_pool)
_dispatch.register("roi_pool_grad_input", api.roi_pool_grad_input)
_dispatch.register("compat.torchvision_roi_pool", compat.torchvision_roi_pool)
_dispatch.register("compat.torchvision_RoIPool", compat.TorchvisionRoIPool)
_dispatch.register("compat.detectron2_ROIAlignRotated", rotated_ops.Detectron2ROIAlignRotated)
_dispatch.register("compat.mmcv_RoIAlignRotated", rotated_ops.MmcvRoIAlignRotated)
for _name in ("ps_roi_align", "ps_roi_align_grad_input", "ps_roi_align_grad_boxes",
              "ps_roi_pool", "ps_roi_pool_grad_input"):
    _dispatch.register(_name, getattr(ps_roi_ops, f"native_{_name}"))
_dispatch.register("compat.torchvision_ps_roi_align", ps_roi_ops.torchvision_ps_roi_align)
_dispatch.register("compat.torchvision_ps_roi_pool", ps_roi_ops.torchvision_ps_roi_pool)
_dispatch.register("compat.torchvision_PSRoIAlign", ps_roi_ops.TorchvisionPSRoIAlign)
_dispatch.register("compat.torchvision_PSRoIPool", ps_roi_ops.TorchvisionPSRoIPool)
_dispatch.register("script.torchvision_ps_roi_align", ps_roi_ops.script_torchvision_ps_roi_align)
_dispatch.register("script.torchvision_ps_roi_pool", ps_roi_ops.script_torchvision_ps_roi_pool)
del _name

# torch.jit.script compiles these twins in place of the public functions (roiops.torch.tracing)
_dispatch.register("script.roi_align", tracing.roi_align)
_dispatch.register("script.crop_and_resize", tracing.crop_and_resize)
_dispatch.register("script.torchvision_roi_align", tracing.torchvision_roi_align)
_dispatch.register("script.roi_align_rotated", rotated_ops.script_roi_align_rotated)
_dispatch.register("script.detectron2_roi_align_rotated",
                   rotated_ops.script_detectron2_roi_align_rotated)
_dispatch.register("script.mmcv_roi_align_rotated", rotated_ops.script_mmcv_roi_align_rotated)
_dispatch.register("script.roi_pool", roi_pool_ops.script_roi_pool)
_dispatch.register("script.torchvision_roi_pool", roi_pool_ops.script_torchvision_roi_pool)
# and torch.fx traces the public functions as leaves
for _public, _name in ((_roi_align.roi_align, "roi_align"),
                       (_crop_and_resize.crop_and_resize, "crop_and_resize"),
                       (_torchvision.roi_align, "compat.torchvision_roi_align"),
                       (_torchvision.ps_roi_align, "compat.torchvision_ps_roi_align"),
                       (_torchvision.ps_roi_pool, "compat.torchvision_ps_roi_pool"),
                       (_rotated.roi_align_rotated, "roi_align_rotated"),
                       (_roi_pool.roi_pool, "roi_pool"),
                       (_torchvision.roi_pool, "compat.torchvision_roi_pool")):
    _dispatch.register(_name, tracing.fx_leaf(_public, _dispatch.tensor_implementation(_name)))
del _public, _name

# Quantized tensors: roiops::roi_align_torchvision takes them (torchvision's quantized
# roi_align); every other op refuses them with a TypeError naming the argument.
_LIBRARY = torch.library.Library("roiops", "IMPL")
for _name in list(torch.ops.roiops):
    if _name != "roi_align_torchvision":
        tensors.refuse_quantized(_LIBRARY, _name)
del _name
