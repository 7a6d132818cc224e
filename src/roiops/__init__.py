"""roiops: exact, fast region-of-interest sampling.

The native API (docs/api.md): ``crop_and_resize`` (TensorFlow/MindSpore semantics),
``roi_align`` (torchvision/MindSpore conventions) with their image/input and box gradients,
and ``roi_pool`` (torchvision) with its input gradient, on NumPy arrays or torch tensors
(``roiops.torch``, ``roiops.nn``). Framework-exact adapters live in ``roiops.compat``; the
``roiops`` command in ``roiops.cli``.
"""
from .crop_and_resize.api import (
    crop_and_resize,
    crop_and_resize_grad_boxes,
    crop_and_resize_grad_image,
)
from .multi_scale_roi_align.api import (
    multi_scale_roi_align,
    multi_scale_roi_align_grad_boxes,
    multi_scale_roi_align_grad_input,
)
from .ps_roi_align.api import ps_roi_align, ps_roi_align_grad_boxes, ps_roi_align_grad_input
from .ps_roi_pool.api import ps_roi_pool, ps_roi_pool_grad_input
from .roi_align.api import roi_align, roi_align_grad_boxes, roi_align_grad_input
from .roi_align_rotated.api import (
    roi_align_rotated,
    roi_align_rotated_grad_boxes,
    roi_align_rotated_grad_input,
)
from .roi_pool.api import roi_pool, roi_pool_grad_input

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it from here

__all__ = [
    "crop_and_resize",
    "crop_and_resize_grad_image",
    "crop_and_resize_grad_boxes",
    "roi_align",
    "roi_align_grad_input",
    "roi_align_grad_boxes",
    "ps_roi_align",
    "ps_roi_align_grad_input",
    "ps_roi_align_grad_boxes",
    "ps_roi_pool",
    "ps_roi_pool_grad_input",
    "roi_align_rotated",
    "roi_align_rotated_grad_input",
    "roi_align_rotated_grad_boxes",
    "roi_pool",
    "roi_pool_grad_input",
    "multi_scale_roi_align",
    "multi_scale_roi_align_grad_input",
    "multi_scale_roi_align_grad_boxes",
]
