"""torchvision's ``MultiScaleRoIAlign``, bit for bit (torchvision 0.28 CPU), in one fused call.

Re-exported by ``roiops.compat.torchvision``. What torchvision does, step by step
(docs/multi_scale.md): the maps of ``x`` whose names are in ``featmap_names`` are kept, in
``x``'s order; on the first call each kept level's scale is inferred from its height and the
largest image height (``2 ** round(log2(h / H))``) and the levels are numbered from the first
and last scale; each call maps every box to a level (FPN's eq. 1, with ``canonical_scale``
and ``canonical_level``) and pools it there with roi_align (``aligned=False``), the boxes and
the scales in the maps' dtype, float16 in half arithmetic. One level pools every box from it,
with no mapping. roiops does all levels in one kernel call instead of one roi_align per
level. A box of NaN area (a reversed side) has no level and gives zeros, as in torchvision.

Differences (docs/multi_scale.md#differences-from-torchvision): the levels must share a
dtype (torchvision casts each level's result to the first level's dtype); NumPy boxes are
mapped with the correctly rounded ``log2`` (tensors with torch's, as torchvision), which can
put a box lying within one rounding of a level boundary on the neighbouring level.

Example:
    >>> import numpy as np
    >>> from roiops.compat.torchvision import MultiScaleRoIAlign
    >>> pool = MultiScaleRoIAlign(["p2", "p3"], 1, 2)
    >>> x = {"p2": np.ones((1, 1, 64, 64), np.float32),
    ...      "p3": np.full((1, 1, 32, 32), 2, np.float32)}
    >>> boxes = [np.array([[0, 0, 40, 40], [0, 0, 200, 200]], np.float32)]
    >>> pool(x, boxes, [(256, 256)])[:, 0, 0, 0]
    array([1., 2.], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor
from ..multi_scale_roi_align import api, checks
from ..multi_scale_roi_align import levels as level_mapper
from ..roi_align import checks as roi_checks
from ._torchvision_rules import TorchvisionModule, class_name, in_data_type, rois_from_boxes

NAMES = checks.Names(features="x", rois="boxes")


def filter_input(x, featmap_names):
    """The maps of ``x`` named in ``featmap_names``, in ``x``'s order (torchvision's)."""
    if not isinstance(x, Mapping):
        raise TypeError(f"x must be a dict of feature maps, got {type(x).__name__}")
    kept = [value for name, value in x.items() if name in featmap_names]
    if not kept:
        raise ValueError(f"x must hold at least one of featmap_names {list(featmap_names)}, "
                         f"got the keys {list(x)}")
    return kept


def level_shapes(features):
    """The kept levels' shapes, ``(N, C, H, W)`` each, after the validator's checks of the
    maps (the scales are inferred from them before the call's other checks)."""
    if _checks.any_tensor(*features):
        return _dispatch.tensor_implementation("compat.torchvision_multi_scale_shapes")(
            features)
    return checks.level_shapes(_checks.NUMPY, NAMES.features, features)


def setup_scales(shapes, image_shapes):
    """Each level's scale from its height (``shapes``: the levels' ``(N, C, H, W)``) and the
    largest image height; ``(scales, k_min, k_max)``."""
    if not isinstance(image_shapes, (list, tuple)):
        raise TypeError(f"image_shapes must be a list of (height, width), "
                        f"got {type(image_shapes).__name__}")
    if not image_shapes:
        raise ValueError("image_shapes must hold at least one (height, width), got an empty "
                         "list")
    for i, shape in enumerate(image_shapes):
        try:
            pair = tuple(shape)
        except TypeError:  # not a sequence
            pair = ()
        if len(pair) != 2 or not all(_checks._is_int(v) and v > 0 for v in pair):
            raise ValueError(f"image_shapes[{i}] must be two positive ints (height, width), "
                             f"got {_checks.describe(shape)}")
    height, _ = level_mapper.original_size(image_shapes)
    scales = [level_mapper.infer_scale(shape[2], height) for shape in shapes]
    return (scales, *level_mapper.level_range(scales))


def torchvision_call(call):
    """A checked call in torchvision's arithmetic for the maps' dtype: each scale rounded to
    the data's type once (through float32), float16 in half arithmetic."""
    scales = []
    for scale in call.scales:
        one = in_data_type(_level_record(call, scale))
        scales.append(one.options.spatial_scale)
    return call._replace(scales=tuple(scales), half_arithmetic=call.kernel_dtype == np.float16)


def _level_record(call, scale):
    """roi_align's record of one level (for its scale rule)."""
    return roi_checks.RoiAlign(call.level_shapes[0], call.num_rois,
                               call.options.with_scale(scale), call.out_dtype,
                               call.kernel_dtype, call.F, call.result_shape)


def multi_scale_roi_align(features: Sequence[ArrayOrTensor], boxes: Any,
                          output_size: Sequence[int], sampling_ratio: int,
                          scales: Sequence[float], k_min: int, k_max: int,
                          canonical_scale: float = 224, canonical_level: int = 4
                          ) -> ArrayOrTensor:
    """torchvision's ``_multiscale_roi_align`` on NumPy arrays: ``features`` the kept levels,
    ``boxes`` a list of ``[L, 4]`` (one per image) or a ``[K, 5]`` array."""
    options = checks.options(output_size, sampling_ratio, False)
    features = _arrays.native_byte_order(list(features))
    rois = rois_from_boxes(_arrays.native_byte_order(boxes))
    call = checks.check_forward(_checks.NUMPY, features, rois, None, scales, options, NAMES)
    checks.check_values(rois, np.zeros(call.num_rois, np.int64), call.level_shapes[0][0], 1,
                        NAMES)
    if len(features) == 1:
        levels = np.zeros(call.num_rois, np.int64)
    else:
        levels = level_mapper.fpn_levels(level_mapper.NUMPY, rois[:, 1:5], k_min, k_max,
                                         len(features), canonical_scale, canonical_level)
    call = torchvision_call(call)
    with np.errstate(over="ignore"):  # boxes beyond the data's range become inf, then refused
        rois = rois.astype(call.kernel_dtype, copy=False)
    indices, levels = checks.check_values(rois, levels, call.level_shapes[0][0],
                                          len(call.scales), NAMES)
    return api.run_forward(call, features, rois, indices, levels)


class MultiScaleRoIAlign(TorchvisionModule):
    """``torchvision.ops.MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio, *,
    canonical_scale=224, canonical_level=4)``.

    A ``torch.nn.Module`` when torch is installed (a plain callable otherwise); called with
    ``(x, boxes, image_shapes)``: a dict of ``[N, C, H_l, W_l]`` maps, a list of ``[L, 4]``
    boxes per image, and the images' ``(height, width)``; NumPy arrays or tensors.
    """

    def __init__(self, featmap_names: list[str], output_size: int | Sequence[int],
                 sampling_ratio: int, *, canonical_scale: float = 224,
                 canonical_level: int = 4) -> None:
        super().__init__()
        if not isinstance(featmap_names, (list, tuple)):
            raise TypeError(f"featmap_names must be a list of the maps' names, "
                            f"got {type(featmap_names).__name__} {_checks.describe(featmap_names)}")
        self.featmap_names = featmap_names
        self.sampling_ratio = sampling_ratio
        self.output_size = _checks.size_pair("output_size", output_size, allow_int=True)
        self.canonical_scale, self.canonical_level = checks.check_level_args(
            canonical_scale, canonical_level)
        self.scales: list[float] | None = None
        self.k_min = self.k_max = 0

    def forward(self, x: Mapping[str, ArrayOrTensor], boxes: Sequence[ArrayOrTensor],
                image_shapes: Sequence[Sequence[int]]) -> ArrayOrTensor:
        features = filter_input(x, self.featmap_names)
        if self.scales is None:
            self.scales, self.k_min, self.k_max = setup_scales(level_shapes(features),
                                                               image_shapes)
        function = multi_scale_roi_align
        if _checks.any_tensor(*features, *(boxes if isinstance(boxes, (list, tuple))
                                           else (boxes,))):
            function = _dispatch.tensor_implementation("compat.torchvision_multi_scale")
        return function(features, boxes, self.output_size, self.sampling_ratio, self.scales,
                        self.k_min, self.k_max, self.canonical_scale, self.canonical_level)

    __call__ = forward

    def __repr__(self) -> str:
        return (f"{class_name(self)}(featmap_names={self.featmap_names}, "
                f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})")
