"""TorchScript and ``torch.fx`` support of the public functions.

TorchScript: the public functions (``roiops.roi_align``, ``roiops.crop_and_resize``,
``roiops.compat.torchvision.roi_align``) take NumPy arrays too and check in Python that
TorchScript cannot compile, so each names a twin here (``roiops._dispatch.script_as``) that
``torch.jit.script`` compiles in its place, directly or inside a scripted caller (a module's
``forward``). A twin calls the custom op, which checks its arguments itself
(``roiops.torch.ops``).

FX: :func:`fx_leaf` makes a public function a leaf of ``torch.fx.symbolic_trace``, as
``torch.fx.wrap`` does for one module's global name but wherever the function is called
from: given a proxy, it records one call of the public function.

Example:
    >>> import torch, roiops
    >>> pool = torch.jit.script(roiops.compat.torchvision.RoIAlign(2, 1.0, 2, aligned=True))
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> pool(x, [torch.tensor([[0.5, 0.5, 2.5, 2.5]])])[0, 0]
    tensor([[2.5000, 3.5000],
            [6.5000, 7.5000]])
"""
import functools
from typing import List, Union

import torch
from torch import Tensor
from torch.jit.annotations import BroadcastingList2

__all__ = ["crop_and_resize", "fx_leaf", "roi_align", "torchvision_roi_align"]


# TorchScript has no keyword-only arguments with defaults: the options are positional here,
# and scripted callers pass them by keyword as to the public function.
def roi_align(input: Tensor, rois: Tensor, output_size: BroadcastingList2[int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False,
              convention: str = "torchvision", roi_end_mode: int = 1) -> Tensor:
    """``roiops.roi_align`` in TorchScript (tensors only, no ``out``)."""
    return torch.ops.roiops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio,
                                      aligned, convention, roi_end_mode)


def crop_and_resize(image: Tensor, boxes: Tensor, box_indices: Tensor,
                    crop_size: BroadcastingList2[int], method: str = "bilinear",
                    extrapolation_value: float = 0.0, data_format: str = "NHWC") -> Tensor:
    """``roiops.crop_and_resize`` in TorchScript (tensors only, no ``out``)."""
    return torch.ops.roiops.crop_and_resize(image, boxes, box_indices, crop_size, method,
                                            extrapolation_value, data_format)


def torchvision_roi_align(input: Tensor, boxes: Union[Tensor, List[Tensor]],
                          output_size: BroadcastingList2[int], spatial_scale: float = 1.0,
                          sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """``roiops.compat.torchvision.roi_align`` in TorchScript: boxes ``[K, 5]`` or a list
    of ``[L, 4]`` (one per image), as torchvision's."""
    if isinstance(boxes, Tensor):
        rois = boxes
    else:
        rows: List[Tensor] = []
        for i, image_boxes in enumerate(boxes):
            rows.append(torch.cat([torch.full_like(image_boxes[:, :1], i), image_boxes], 1))
        rois = torch.cat(rows)
    return torch.ops.roiops.roi_align_torchvision(input, rois, spatial_scale, output_size[0],
                                                  output_size[1], sampling_ratio, aligned)


def _find_proxy(values):
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, torch.fx.Proxy):
                return item
    return None


def fx_leaf(public, implementation):
    """``implementation`` (the torch side of the public function ``public``), except that
    with an FX proxy among the arguments (one level into lists) it records a call of
    ``public`` in the traced graph instead of running."""
    @functools.wraps(implementation)
    def leaf(*args, **kwargs):
        proxy = _find_proxy((*args, *kwargs.values()))
        if proxy is not None:
            return proxy.tracer.create_proxy("call_function", public, args, kwargs)
        return implementation(*args, **kwargs)
    return leaf
