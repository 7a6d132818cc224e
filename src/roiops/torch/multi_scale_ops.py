"""Multi-scale RoI Align as ``torch.library`` custom ops (namespace ``roiops``), its tensor
entry points and torchvision's ``MultiScaleRoIAlign`` on tensors.

=====================================  ===============================================
``multi_scale_roi_align``              levels ``[N,C,H_l,W_l]``, rois ``[K,5]``, levels
                                       ``[K]`` -> ``[K,C,ph,pw]``
``multi_scale_roi_align_grad_input``   grads ``[K,C,ph,pw]`` -> one gradient per level
``multi_scale_roi_align_grad_boxes``   grads, levels -> ``[K,5]`` (column 0 is zero)
=====================================  ===============================================

The contract of :mod:`roiops.torch.ops`: the entry points run the validator
(``roiops.multi_scale_roi_align.checks``) on the metadata, the ops check the values next to
their kernels; fake implementations for ``torch.compile`` and ``torch.export``; autograd for
every level and the rois; no double backward. ``half_arithmetic`` selects torchvision's
float16 arithmetic (``roiops.compat.torchvision``); the native API computes float16 in
float32. CUDA tensors run the Triton kernels of ``roiops.multi_scale_roi_align.cuda`` for
the forward and the maps' gradient; the box gradient and the half arithmetic run the CPU
kernels on host copies. The levels of tensors are
mapped with torch's own operations (:data:`TORCH_LEVELS`), as torchvision maps them.

Example:
    >>> import torch, roiops
    >>> p2 = torch.ones(1, 1, 64, 64, requires_grad=True)
    >>> p3 = torch.full((1, 1, 32, 32), 2.0, requires_grad=True)
    >>> rois = torch.tensor([[0, 0, 0, 40.0, 40], [0, 0, 0, 200, 200]])
    >>> out = roiops.multi_scale_roi_align([p2, p3], rois, 1, [1 / 4, 1 / 8], sampling_ratio=2)
    >>> out.flatten().tolist()
    [1.0, 2.0]
    >>> out.sum().backward(); float(p2.grad.sum()), float(p3.grad.sum())
    (1.0, 1.0)
"""
import contextlib
from collections.abc import Sequence
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _dispatch
from ..compat import torchvision_multiscale as tv_multiscale
from ..multi_scale_roi_align import api as ms_api
from ..multi_scale_roi_align import checks
from ..multi_scale_roi_align import levels as level_mapper
from ..roi_align.conventions import TORCHVISION
from .compat import boxes_to_rois
from .ops import _all_true, _cuda_kernels, _device_roi_indices, _empty, _host, _numpy, _tensor
from .tensors import TORCH

TORCH_LEVELS = level_mapper.LevelOps(
    lambda boxes: boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float(),
    torch.sqrt, torch.log2, torch.floor,
    lambda like, value: torch.tensor(value, dtype=like.dtype, device=like.device),
    torch.clamp, lambda values, fill: torch.where(torch.isnan(values), fill, values).to(
        torch.int64), contextlib.nullcontext, torch.where)


def _host_values(rois, levels, batch, num_levels):
    """The host's value checks of CPU tensors (NumPy views): batch indices and levels."""
    return checks.check_values(_numpy(rois), _numpy(levels), batch, num_levels)


def _call(features, rois, scales, output_size, sampling_ratio, aligned, half_arithmetic):
    options = checks.options(output_size, sampling_ratio, aligned)
    shapes = tuple(tuple(int(d) for d in f.shape) for f in features)
    call = checks.forward_call(TORCH, shapes, features[0].dtype, rois.shape[0], options,
                               tuple(float(s) for s in scales))
    return call._replace(half_arithmetic=half_arithmetic)


def _grad_input_call(grads, rois, level_shapes, scales, output_size, sampling_ratio, aligned,
                     half_arithmetic):
    """The record of a checked input gradient (``level_shapes``: the levels' ``(N, C, H, W)``
    one after the other, as the op takes them)."""
    shapes = tuple(tuple(int(d) for d in level_shapes[i:i + 4])
                   for i in range(0, len(level_shapes), 4))
    return checks.MultiScale(shapes, rois.shape[0],
                             checks.options(output_size, sampling_ratio, aligned),
                             tuple(float(s) for s in scales), grads.dtype,
                             TORCH.numpy_dtype(grads.dtype),
                             np.float64 if grads.dtype == torch.float64 else np.float32,
                             tuple(grads.shape), half_arithmetic=half_arithmetic)


@torch.library.custom_op("roiops::multi_scale_roi_align", mutates_args=(), device_types="cpu")
def multi_scale_roi_align(features: list[Tensor], rois: Tensor, levels: Tensor,
                          scales: Sequence[float], output_size: Sequence[int],
                          sampling_ratio: int, aligned: bool, half_arithmetic: bool) -> Tensor:
    """:func:`roiops.multi_scale_roi_align` on tensors: ``[K, C, ph, pw]``."""
    call = _call(features, rois, scales, output_size, sampling_ratio, aligned, half_arithmetic)
    host_rois = _numpy(rois)
    indices, host_levels = _host_values(rois, levels, call.level_shapes[0][0], len(scales))
    result = ms_api.run_forward(call, [_numpy(f) for f in features], host_rois, indices,
                                host_levels)
    return _tensor(result, features[0].dtype)


@multi_scale_roi_align.register_fake
def _(features, rois, levels, scales, output_size, sampling_ratio, aligned, half_arithmetic):
    return _empty(features[0], (rois.shape[0], features[0].shape[1], *output_size),
                  features[0].dtype)


@torch.library.custom_op("roiops::multi_scale_roi_align_grad_input", mutates_args=(),
                         device_types="cpu")
def multi_scale_roi_align_grad_input(grads: Tensor, rois: Tensor, levels: Tensor,
                                     level_shapes: Sequence[int], scales: Sequence[float],
                                     output_size: Sequence[int], sampling_ratio: int,
                                     aligned: bool, half_arithmetic: bool) -> list[Tensor]:
    """The gradient of every level (``level_shapes``: the levels' ``(N, C, H, W)`` one after
    the other), contiguous, of ``grads.dtype``: the layout of the maps autograd adds it to
    (unlike roi_align's channels_last result, which torch copies slowly into a contiguous
    map's gradient)."""
    call = _grad_input_call(grads, rois, level_shapes, scales, output_size, sampling_ratio,
                            aligned, half_arithmetic)
    shapes = call.level_shapes
    indices, host_levels = _host_values(rois, levels, shapes[0][0], len(shapes))
    result = ms_api.run_grad_input(call, _numpy(grads), _numpy(rois), indices, host_levels)
    return [_tensor(r, grads.dtype) for r in result]


@multi_scale_roi_align_grad_input.register_fake
def _(grads, rois, levels, level_shapes, scales, output_size, sampling_ratio, aligned,
      half_arithmetic):
    return [_empty(grads, tuple(level_shapes[i:i + 4]), grads.dtype)
            for i in range(0, len(level_shapes), 4)]


@torch.library.custom_op("roiops::multi_scale_roi_align_grad_boxes", mutates_args=(),
                         device_types="cpu")
def multi_scale_roi_align_grad_boxes(grads: Tensor, features: list[Tensor], rois: Tensor,
                                     levels: Tensor, scales: Sequence[float],
                                     output_size: Sequence[int], sampling_ratio: int,
                                     aligned: bool) -> Tensor:
    """The rois' gradient: ``[K, 5]`` of the features' dtype."""
    call = _call(features, rois, scales, output_size, sampling_ratio, aligned, False)
    indices, host_levels = _host_values(rois, levels, call.level_shapes[0][0], len(scales))
    result = ms_api.run_grad_boxes(call, _numpy(grads), [_numpy(f) for f in features],
                                   _numpy(rois), indices, host_levels)
    return _tensor(result, features[0].dtype)


@multi_scale_roi_align_grad_boxes.register_fake
def _(grads, features, rois, levels, scales, output_size, sampling_ratio, aligned):
    return _empty(rois, (rois.shape[0], 5), features[0].dtype)


def _setup(ctx, inputs, output):
    features, rois, levels, *options = inputs
    ctx.save_for_backward(rois, levels, *(features if ctx.needs_input_grad[1] else ()))
    ctx.level_shapes = [int(d) for f in features for d in f.shape]
    ctx.options = options


def _backward(ctx, grad):
    rois, levels, *features = ctx.saved_tensors
    scales, output_size, sampling_ratio, aligned, half_arithmetic = ctx.options
    grad_features = grad_rois = None
    if ctx.needs_input_grad[0]:
        grad_features = multi_scale_roi_align_grad_input(
            grad, rois, levels, ctx.level_shapes, scales, output_size, sampling_ratio, aligned,
            half_arithmetic)
    if ctx.needs_input_grad[1]:
        grad_rois = multi_scale_roi_align_grad_boxes(
            grad, features, rois, levels, scales, output_size, sampling_ratio,
            aligned).to(rois.dtype)
    return grad_features, grad_rois, None, None, None, None, None, None


multi_scale_roi_align.register_autograd(_backward, setup_context=_setup)


def _no_double_backward(name):
    def backward(ctx, *grads):
        raise RuntimeError(f"roiops::{name} is not differentiable: double backward through "
                           f"roiops operators is not supported")
    return backward


for _op, _name in ((multi_scale_roi_align_grad_input, "multi_scale_roi_align_grad_input"),
                   (multi_scale_roi_align_grad_boxes, "multi_scale_roi_align_grad_boxes")):
    _op.register_autograd(_no_double_backward(_name),
                          setup_context=lambda ctx, inputs, output: None)
del _op, _name


# --- CUDA: Triton kernels (roiops.multi_scale_roi_align.cuda) ---------------------------

def _device_values(rois, levels, batch, num_levels):
    """The batch indices (int64, on the device) after the value checks ran there: finite
    rois, batch indices in the batch, levels in ``[-1, num_levels)``; the host's check names
    the first bad row when one fails."""
    indices = _device_roi_indices(rois, batch, TORCHVISION)
    if not _all_true((levels >= -1) & (levels < num_levels)):
        checks.check_values(_host(rois), _host(levels), batch, num_levels)
    return indices


def _on_host(op, device, *args):
    """``op`` on host copies of the tensor arguments, the result(s) back on ``device``: the
    paths without a Triton kernel (torchvision's half arithmetic, the box gradient)."""
    def host(value):
        if isinstance(value, Tensor):
            return value.cpu()
        if isinstance(value, list) and value and isinstance(value[0], Tensor):
            return [v.cpu() for v in value]
        return value
    result = op(*(host(a) for a in args))
    return [r.to(device) for r in result] if isinstance(result, list) else result.to(device)


def _cuda_multi_scale_roi_align(features, rois, levels, scales, output_size, sampling_ratio,
                                aligned, half_arithmetic):
    if half_arithmetic:
        return _on_host(multi_scale_roi_align, rois.device, features, rois, levels, scales,
                        output_size, sampling_ratio, aligned, half_arithmetic)
    call = _call(features, rois, scales, output_size, sampling_ratio, aligned, False)
    checks.check_run(call, device=rois.device)
    indices = _device_values(rois, levels, call.level_shapes[0][0], len(scales))
    return _cuda_kernels("multi_scale_roi_align").forward(features, rois, indices, levels,
                                                          call.scales, call.options)


def _cuda_multi_scale_roi_align_grad_input(grads, rois, levels, level_shapes, scales,
                                           output_size, sampling_ratio, aligned,
                                           half_arithmetic):
    if half_arithmetic:
        return _on_host(multi_scale_roi_align_grad_input, grads.device, grads, rois, levels,
                        level_shapes, scales, output_size, sampling_ratio, aligned,
                        half_arithmetic)
    call = _grad_input_call(grads, rois, level_shapes, scales, output_size, sampling_ratio,
                            aligned, False)
    checks.check_run(call, result="levels", device=grads.device)
    shapes = call.level_shapes
    indices = _device_values(rois, levels, shapes[0][0], len(shapes))
    return _cuda_kernels("multi_scale_roi_align").grad_input(grads, rois, indices, levels,
                                                             list(shapes), scales,
                                                             call.options)


def _cuda_multi_scale_roi_align_grad_boxes(grads, features, rois, levels, scales, output_size,
                                           sampling_ratio, aligned):
    return _on_host(multi_scale_roi_align_grad_boxes, rois.device, grads, features, rois,
                    levels, scales, output_size, sampling_ratio, aligned)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
multi_scale_roi_align.register_kernel("cuda")(_cuda_multi_scale_roi_align)
multi_scale_roi_align_grad_input.register_kernel("cuda")(_cuda_multi_scale_roi_align_grad_input)
multi_scale_roi_align_grad_boxes.register_kernel("cuda")(_cuda_multi_scale_roi_align_grad_boxes)


# --- entry points ---------------------------------------------------------------------

def _levels(rois, levels, scales, canonical_scale, canonical_level):
    """The given levels as int64, or the level mapper's (torch's arithmetic)."""
    if levels is not None:
        return levels.to(torch.int64)
    if len(scales) == 1:
        return torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
    k_min, k_max = level_mapper.level_range(scales)
    return level_mapper.fpn_levels(TORCH_LEVELS, rois.detach()[:, 1:5], k_min, k_max,
                                   len(scales), canonical_scale, canonical_level)


def native_multi_scale_roi_align(features, rois, output_size, scales, *, sampling_ratio=-1,
                                 aligned=False, levels=None, canonical_scale=224,
                                 canonical_level=4):
    """:func:`roiops.multi_scale_roi_align` for tensors (differentiable w.r.t. every level
    and the rois)."""
    options = checks.options(output_size, sampling_ratio, aligned)
    canonical_scale, canonical_level = checks.check_level_args(canonical_scale,
                                                               canonical_level)
    call = checks.check_forward(TORCH, features, rois, levels, scales, options)
    levels = _levels(rois, levels, call.scales, canonical_scale, canonical_level)
    return multi_scale_roi_align(list(features), rois, levels, list(call.scales),
                                 list(options.output_size), options.sampling_ratio,
                                 options.aligned, False)


def native_multi_scale_roi_align_grad_input(grads, rois, levels, level_shapes, output_size,
                                            scales, *, sampling_ratio=-1, aligned=False):
    """:func:`roiops.multi_scale_roi_align_grad_input` for tensors."""
    options = checks.options(output_size, sampling_ratio, aligned)
    if levels is None:
        raise TypeError("levels must be an integer tensor of the rois' levels, got None")
    call = checks.check_grad_input(TORCH, grads, rois, levels, level_shapes, scales, options)
    return multi_scale_roi_align_grad_input(
        grads, rois, levels.to(torch.int64), [d for s in call.level_shapes for d in s],
        list(call.scales), list(options.output_size), options.sampling_ratio,
        options.aligned, False)


def native_multi_scale_roi_align_grad_boxes(grads, features, rois, levels, output_size, scales,
                                            *, sampling_ratio=-1, aligned=False):
    """:func:`roiops.multi_scale_roi_align_grad_boxes` for tensors."""
    options = checks.options(output_size, sampling_ratio, aligned)
    if levels is None:
        raise TypeError("levels must be an integer tensor of the rois' levels, got None")
    call = checks.check_grad_boxes(TORCH, grads, features, rois, levels, scales, options)
    return multi_scale_roi_align_grad_boxes(
        grads, list(features), rois, levels.to(torch.int64), list(call.scales),
        list(options.output_size), options.sampling_ratio, options.aligned)


def torchvision_multi_scale(features, boxes, output_size, sampling_ratio, scales, k_min, k_max,
                            canonical_scale=224, canonical_level=4):
    """torchvision's ``_multiscale_roi_align`` on tensors: the level mapper in torch's
    arithmetic on the boxes' dtype, then the fused op in torchvision's arithmetic for the
    maps' dtype (float16: half)."""
    rois = boxes_to_rois(boxes)
    options = checks.options(output_size, sampling_ratio, False)
    call = checks.check_forward(TORCH, features, rois, None, scales, options, tv_multiscale.NAMES)
    if len(features) == 1:
        levels = torch.zeros(call.num_rois, dtype=torch.int64, device=rois.device)
    else:
        levels = level_mapper.fpn_levels(TORCH_LEVELS, rois.detach()[:, 1:5], k_min, k_max,
                                         len(features), canonical_scale, canonical_level)
    call = tv_multiscale.torchvision_call(call)
    data_type = getattr(torch, call.kernel_dtype.name)
    return multi_scale_roi_align(list(features), rois.to(data_type), levels, list(call.scales),
                                 list(options.output_size), options.sampling_ratio, False,
                                 call.half_arithmetic)


def _proxy(x, boxes):
    """The first ``torch.fx`` proxy among the maps and the boxes (FX is tracing), else None."""
    values = [x, boxes]
    values += list(x.values()) if isinstance(x, dict) else []
    values += list(boxes) if isinstance(boxes, (list, tuple)) else []
    return next((v for v in values if isinstance(v, torch.fx.Proxy)), None)


class TorchvisionMultiScaleRoIAlign(tv_multiscale.MultiScaleRoIAlign, torch.nn.Module):
    """``roiops.compat.torchvision.MultiScaleRoIAlign`` as a ``torch.nn.Module`` (what it is
    whenever torch is installed: its constructor returns one).

    FX-traceable: under ``torch.fx.symbolic_trace`` the module is a leaf, one ``call_module``
    node (torchvision wraps its helpers with ``torch.fx.wrap`` to the same end); its scales
    are then set up on the traced graph's first run."""

    __call__ = torch.nn.Module.__call__

    def __prepare_scriptable__(self):
        """What ``torch.jit.script`` compiles instead: the TorchScript twin, same state."""
        return ScriptableMultiScaleRoIAlign(self)

    def forward(self, x, boxes, image_shapes):  # type: ignore[override]
        proxy = _proxy(x, boxes)
        if proxy is not None:
            tracer = proxy.tracer
            return tracer.create_proxy("call_module", tracer.path_of_module(self),
                                       (x, boxes, image_shapes), {})
        return super().forward(x, boxes, image_shapes)


class ScriptableMultiScaleRoIAlign(torch.nn.Module):
    """The TorchScript twin of :class:`TorchvisionMultiScaleRoIAlign` (tensors only).

    TorchScript cannot compile the module's Python (NumPy arrays, the validator, the level
    mapper's array-kind parameter), so this twin restates the steps in TorchScript's
    subset: the maps filtered, the scales set up on the first call, the boxes to rois, the
    level mapper in torch's arithmetic (the formula of ``levels.fpn_levels``), the scales in
    the maps' dtype; then the custom op, which checks the values. Its results are the
    module's, bit for bit (tests/torch_ops/test_multi_scale.py).
    """

    __annotations__ = {"scales": Optional[List[float]]}

    def __init__(self, module: tv_multiscale.MultiScaleRoIAlign) -> None:
        super().__init__()
        self.featmap_names: List[str] = list(module.featmap_names)
        self.output_size: List[int] = [int(v) for v in module.output_size]
        self.sampling_ratio: int = int(module.sampling_ratio)
        self.canonical_scale: float = float(module.canonical_scale)
        self.canonical_level: int = int(module.canonical_level)
        self.scales = None if module.scales is None else [float(s) for s in module.scales]

    def forward(self, x: Dict[str, Tensor], boxes: List[Tensor],
                image_shapes: List[Tuple[int, int]]) -> Tensor:
        features: List[Tensor] = []
        for name, value in x.items():
            if name in self.featmap_names:
                features.append(value)
        scales = self.scales
        if scales is None:
            height = 0
            for shape in image_shapes:
                height = max(height, shape[0])
            inferred: List[float] = []
            for feature in features:
                ratio = torch.tensor(float(feature.shape[-2]) / float(height))
                inferred.append(2.0 ** float(torch.round(torch.log2(ratio))))
            self.scales = inferred
            scales = inferred
        ids: List[Tensor] = []
        for i, image_boxes in enumerate(boxes):
            ids.append(torch.full_like(image_boxes[:, :1], float(i)))
        rois = torch.cat([torch.cat(ids), torch.cat(boxes)], 1)
        if len(features) == 1:
            levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
        else:
            k_min = int(-float(torch.log2(torch.tensor(scales[0], dtype=torch.float64))))
            k_max = int(-float(torch.log2(torch.tensor(scales[-1], dtype=torch.float64))))
            corners = rois[:, 1:5]
            if corners.dtype != torch.float32 and corners.dtype != torch.float64:
                corners = corners.float()
            area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
            size = torch.sqrt(area)
            target = torch.floor(self.canonical_level + torch.log2(size / self.canonical_scale)
                                 + torch.tensor(level_mapper.EPS, dtype=size.dtype,
                                                device=size.device))
            target = torch.clamp(target, min=k_min, max=k_max)
            target = torch.where(torch.isnan(target), torch.full_like(target, k_min - 1),
                                 target)
            levels = target.to(torch.int64) - k_min
            on_a_map = (levels >= 0) & (levels < len(features))
            levels = torch.where(on_a_map, levels, torch.full_like(levels, -1))
        dtype = features[0].dtype
        data_scales: List[float] = []
        for scale in scales:
            if dtype != torch.float64:  # torchvision's double scale, in the data's type
                scale = float(torch.tensor(scale, dtype=torch.float32).to(dtype))
            data_scales.append(scale)
        return torch.ops.roiops.multi_scale_roi_align(
            features, rois.to(dtype), levels, data_scales, self.output_size,
            self.sampling_ratio, False, dtype == torch.float16)


# Where roiops.multi_scale_roi_align.api and roiops.compat find the tensor implementations.
for _name in ("multi_scale_roi_align", "multi_scale_roi_align_grad_input",
              "multi_scale_roi_align_grad_boxes"):
    _dispatch.register(_name, globals()[f"native_{_name}"])
_dispatch.register("compat.torchvision_multi_scale", torchvision_multi_scale)
_dispatch.register("compat.torchvision_multi_scale_shapes",
                   lambda features: checks.level_shapes(TORCH, tv_multiscale.NAMES.features,
                                                        features))
_dispatch.register("compat.torchvision_MultiScaleRoIAlign", TorchvisionMultiScaleRoIAlign)
del _name
