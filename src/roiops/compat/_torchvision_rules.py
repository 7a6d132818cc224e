"""torchvision's rules shared by its compat layers (roiops.compat.torchvision and its
MultiScaleRoIAlign): boxes as torchvision takes them, the dtype its arithmetic runs in, its
module classes' base, and the class name their reprs show."""
from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from .. import _checks, _dispatch
from ..roi_align import checks

_Module = TypeVar("_Module", bound="TorchvisionModule")


class TorchvisionModule:
    """The base of torchvision's module classes in roiops.compat (``RoIAlign``, ``RoIPool``,
    ``PSRoIAlign``, ``PSRoIPool``, ``MultiScaleRoIAlign``): constructing one gives the
    ``torch.nn.Module`` subclass that roiops.torch registers as ``compat.torchvision_<name>``
    when torch is installed (torch is imported with the first instance, not with
    roiops.compat), and a plain callable otherwise. Subclasses outside roiops.compat (the
    registered ones, a user's) are constructed as they are."""

    def __new__(cls: type[_Module], *args: Any, **kwargs: Any) -> _Module:
        if cls.__module__.startswith("roiops.compat."):
            try:
                cls = _dispatch.tensor_implementation(f"compat.torchvision_{cls.__name__}")
            except ImportError:  # no torch: a plain callable
                pass
        return super().__new__(cls)


def rois_from_boxes(boxes: Any) -> np.ndarray:
    """``[K, 5]`` rois from a ``[K, 5]`` array or a list of ``[L, 4]`` arrays (one per image)."""
    if isinstance(boxes, np.ndarray):
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a [K, 5] array or a list of [L, 4] arrays, "
                        f"got {type(boxes).__name__}")
    if not boxes:
        raise ValueError("boxes must hold at least one array, got an empty list")
    for i, item in enumerate(boxes):
        _checks.require_array(f"boxes[{i}]", item)
        _checks.require_dtype(f"boxes[{i}]", item, _checks.FLOAT_DTYPES)
        _checks.require_shape(f"boxes[{i}]", item, ("L", 4))
    dtype = np.result_type(*boxes)
    return np.concatenate([
        np.concatenate([np.full((len(b), 1), i, dtype), b.astype(dtype, copy=False)], axis=1)
        for i, b in enumerate(boxes)
    ])


def in_data_type(call: checks.RoiAlign) -> checks.RoiAlign:
    """A checked ``call`` in torchvision's arithmetic for its data's dtype (``kernel_dtype``):
    the double spatial scale converted to the data's type once, and for float16 every
    operation rounded to half."""
    half = call.kernel_dtype == np.float16
    scale = call.options.spatial_scale
    if call.kernel_dtype != np.float64:
        scale = _checks.representable("spatial_scale", scale, np.float32, call.kernel_dtype)
    return call._replace(options=call.options.with_scale(scale), half_arithmetic=half)


def class_name(module: object) -> str:
    """The class name in a module's repr, as torchvision's reprs show ``type(module)``'s:
    roiops.torch's ``torch.nn.Module`` subclasses, which the public constructors return when
    torch is installed, show the public class they stand in for (``RoIAlign``, not
    ``TorchvisionRoIAlign``)."""
    cls = type(module)
    if cls.__module__.startswith("roiops.torch."):
        cls = cls.__mro__[1]
    return cls.__name__
