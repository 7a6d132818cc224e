"""The compatibility layers (docs/api.md#compatibility-layers) on torch tensors.

Where a framework's arithmetic is the native one after a dtype cast, its entry point runs the
native custom op, so it is differentiable and traceable (TensorFlow/MindSpore
``CropAndResize``: image cast to float32; torchvision ``roi_align`` in float32/float64;
MindSpore ``ROIAlign`` unless both tensors are float16). The rest reproduce arithmetic that
no native op has (half accumulation, MindSpore's ROIAlignGrad geometry, ...) run the NumPy
layer on the host (:func:`host_call`) and return a tensor on the inputs' device. The gradient
primitives have no autograd. The half-arithmetic RoI Align forwards (torchvision float16,
MindSpore ``ROIAlign`` with both tensors float16) do: the input gradient in the same half
arithmetic (torchvision's ``_roi_align_backward``; MindSpore's ``ROIAlignGrad`` with the
forward's ``roi_end_mode``, the true adjoint as in the native API), the boxes gradient of the
native op computed in float32 from the half values and rounded once.
"""
import inspect
from typing import List, Union

import numpy as np
import torch
from torch import Tensor

from .. import _checks
from ..compat import mindspore as mindspore_compat
from ..compat import torchvision as torchvision_compat
from ..crop_and_resize import checks as crop_checks
from ..roi_align import checks as roi_checks
from ..roi_pool import checks as pool_checks
from . import ops, roi_pool_ops
from .tensors import FLOAT_DTYPES, QUANTIZED_DTYPES, TORCH, require_dense, require_tensors

_HALF_OR_SINGLE = ("float16", "float32")


def host_call(fn, *args):
    """``fn`` (a NumPy entry point) on tensor arguments: host views in, a tensor out.

    Tensors (also inside lists) must share a device; the result goes back to it. Every
    array argument (annotated ``ArrayOrTensor``) must be a tensor, as on the native paths. There
    is no autograd through this path, so a tensor that requires grad is refused rather than
    silently cut from the graph.
    """
    signature = inspect.signature(fn)
    arrays = {name for name, parameter in signature.parameters.items()
              if "ArrayOrTensor" in str(parameter.annotation)}
    named = signature.bind(*args).arguments
    tensors = {}
    for name, value in named.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if isinstance(item, torch.Tensor) or name in arrays:
                tensors[name if item is value else f"{name}[{i}]"] = item
    require_tensors(tensors)
    for name, tensor in tensors.items():
        if tensor.device.type == "meta":
            raise ValueError(f"{name} must hold values: "
                             f"{getattr(fn, '__qualname__', fn)} computes on the host from "
                             f"them, got a tensor on meta")
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors.values()):
        raise RuntimeError(
            f"{getattr(fn, '__qualname__', fn)} reproduces its framework's arithmetic on the "
            f"host and is not differentiable; detach the inputs, or use the native roiops "
            f"API (float32 arithmetic) for gradients")
    numpy_dtypes = (torch.bool, torch.uint8, torch.uint16, torch.uint32, torch.uint64,
                    torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                    torch.float32, torch.float64, torch.complex64, torch.complex128)
    for name, tensor in tensors.items():
        if tensor.dtype not in numpy_dtypes:  # bfloat16, float8, complex32, quantized
            kind = str(tensor.dtype).removeprefix("torch.")
            raise TypeError(f"{name} must not be {kind}: the framework's kernel has no "
                            f"{kind} arithmetic to reproduce, got {tensor.dtype}")
    device = next(iter(tensors.values())).device

    def host(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        if isinstance(value, (list, tuple)):
            return type(value)(host(v) for v in value)
        return value

    result = fn(*(host(v) for v in args))
    return torch.from_numpy(result).to(device)


def crop_and_resize(image, boxes, box_indices, crop_size, method, extrapolation_value,
                    names, dtypes, methods):
    """TensorFlow/MindSpore ``CropAndResize`` on tensors: float32 crops, differentiable.

    Both compute in float32 whatever the image dtype, which is the native op on the image cast
    to float32 (exact for float16, the frameworks' own rounding for float64; integer images
    are read as they are). ``names``, ``dtypes`` and ``methods`` are the framework's
    (``roiops.crop_and_resize.checks.Names`` and ``Dtypes``).
    """
    call = crop_checks.check_forward(TORCH, image, boxes, box_indices, crop_size, method,
                                     extrapolation_value, "NHWC", names, dtypes, methods)
    if image.is_floating_point():
        image = image.to(torch.float32)  # a no-op for float32
    return ops.crop_and_resize(image, boxes, box_indices, list(call.crop_size), method,
                               call.extrapolation_value, "NHWC")


def _both_half(*values):
    return all(isinstance(v, torch.Tensor) and v.dtype == torch.float16 for v in values)


def _mindspore_options(primitive):
    """A MindSpore ``ROIAlign`` primitive's options (its constructor checked them)."""
    return roi_checks.Options((primitive.pooled_height, primitive.pooled_width),
                              primitive.spatial_scale, primitive.sample_num, False, "mindspore",
                              primitive.roi_end_mode)


def mindspore_roi_align(primitive, features, rois):
    """MindSpore ``ROIAlign`` on tensors; float32 unless both are float16 (then on the host).

    Mixed float16/float32 computes in float32 and rounds the result once, which is the native
    op with MindSpore's float32 spatial scale.
    """
    if _both_half(features, rois):
        return _MindSporeHalfROIAlign.apply(primitive, features, rois)
    options = _mindspore_options(primitive)
    options = options.with_scale(float(np.float32(options.spatial_scale)))
    call = roi_checks.check_forward(TORCH, features, rois, options, mindspore_compat.ROI_NAMES,
                                    _HALF_OR_SINGLE)
    # Here, not only in the op, whose message would name output_size, not MindSpore's sizes;
    # not while torch.compile or torch.export traces, where a symbolic size compared with
    # memory would become a guard on the number of rois (the op checks when it runs).
    if not torch.compiler.is_compiling():
        roi_checks.check_forward_run(call, device=features.device)
    return ops.roi_align(features, rois, *options.op_args())


def boxes_to_rois(boxes, quantized=False, dtypes=None):
    """torchvision's ``convert_boxes_to_roi_format``: a list of ``[L, 4]`` -> ``[K, 5]``.

    ``quantized``: the input is quantized, so the list may hold per-tensor quantized boxes
    too; they are dequantized (their exact float32 values), as torchvision's quantized
    kernel reads them. ``dtypes``: the operator's dtype names for boxes (``None``: every
    float dtype, bfloat16 included), checked for each item, since concatenating promotes
    (a bfloat16 item beside a float16 one would become float32 and pass).
    """
    if isinstance(boxes, torch.Tensor):
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a [K, 5] tensor or a list of [L, 4] tensors, "
                        f"got {type(boxes).__name__}")
    if not boxes:
        raise ValueError("boxes must hold at least one tensor, got an empty list")
    allowed = TORCH.float_dtypes if dtypes is None else TORCH.dtypes(dtypes)
    allowed += QUANTIZED_DTYPES if quantized else ()
    for i, item in enumerate(boxes):
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"boxes[{i}] must be a torch.Tensor, got {type(item).__name__}")
        require_dense(f"boxes[{i}]", item)
        _checks.require_dtype(f"boxes[{i}]", item, allowed)
        _require_per_tensor(f"boxes[{i}]", item)
        _checks.require_shape(f"boxes[{i}]", item, ("L", 4))
    boxes = [b.dequantize() if b.is_quantized else b for b in boxes]
    ids = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(ids), torch.cat(boxes)], dim=1)


def _is_quantized(value):
    return isinstance(value, torch.Tensor) and value.is_quantized


def _require_per_tensor(name, tensor):
    """TypeError for a quantized tensor of another scheme than one scale and zero point."""
    if tensor.is_quantized and tensor.qscheme() != torch.per_tensor_affine:
        raise TypeError(f"{name} must be quantized per tensor (torch.per_tensor_affine), "
                        f"got {tensor.qscheme()}")


def _check_torchvision_roi_align(input, rois, options, names=roi_checks.NATIVE):
    """roi_align's validator with torchvision's dtype rule on tensors: float input and rois
    (the validator's default), or per-tensor quantized input of one image, as torchvision's
    quantized kernel takes it, with per-tensor quantized rois of any quantized dtype or float
    rois (torchvision: quantized rois of the input's dtype only)."""
    if not _is_quantized(input):
        return roi_checks.check_forward(TORCH, input, rois, options, names)
    dtypes = tuple(str(d).removeprefix("torch.") for d in QUANTIZED_DTYPES + FLOAT_DTYPES)
    call = roi_checks.check_forward(TORCH, input, rois, options, names, dtypes)
    _require_per_tensor(names.input, input)
    _require_per_tensor(names.rois, rois)
    if call.input_shape[0] != 1:
        raise ValueError(f"{names.input} must hold one image when quantized (as in "
                         f"torchvision: Only one image per batch is allowed), got a batch of "
                         f"{call.input_shape[0]}")
    if torch.is_grad_enabled() and rois.requires_grad:  # float rois; the result has no grad
        raise RuntimeError(f"roi_align of a quantized {names.input} is not differentiable "
                           f"(its result is quantized); detach {names.rois}")
    return call


def torchvision_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    """torchvision's ``roi_align`` on tensors: its arguments checked with its names, then
    ``roiops::roi_align_torchvision`` (so that autocast applies as in torchvision)."""
    rois = boxes_to_rois(boxes, quantized=_is_quantized(input))
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 "torchvision", 1)
    _check_torchvision_roi_align(input, rois, options, roi_checks.Names(rois="boxes"))
    return torch.ops.roiops.roi_align_torchvision(input, rois, options.spatial_scale,
                                                  options.pooled_height, options.pooled_width,
                                                  options.sampling_ratio, options.aligned)


# torchvision's schema of torch.ops.torchvision.roi_align, argument for argument.
torch.library.define(
    "roiops::roi_align_torchvision",
    "(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")


@torch.library.impl("roiops::roi_align_torchvision", "CompositeImplicitAutograd")
def roi_align_torchvision(input, rois, spatial_scale, pooled_height, pooled_width,
                          sampling_ratio, aligned):
    """``torch.ops.torchvision.roi_align`` (torchvision's CPU arithmetic) for any device.

    Checks its arguments (it is called directly). float16 reproduces torchvision's half
    arithmetic on the host; the other dtypes are ``roiops::roi_align`` with torchvision's
    rounding of the scale and the boxes to the data's type (bfloat16: computed in float32,
    the result rounded once), so they run on CPU and CUDA and are differentiable w.r.t.
    input and rois; being composite, the op needs no autograd or fake kernel of its own.

    Quantized input (qint8, quint8, qint32, per tensor, one image; torchvision's
    QuantizedCPU kernel) runs the float32 path on the dequantized input and rois and
    quantizes the result with the input's scale, zero point and dtype: exactly
    ``quantize_per_tensor(roi_align(input.dequantize(), rois.dequantize()), ...)``. It has
    no gradient (quantized tensors have none; neither has torchvision's). The branch is
    here rather than in a QuantizedCPU kernel because a quantized tensor's dispatch reaches
    this composite kernel (at AutogradCPU) first.
    """
    options = roi_checks.Options((pooled_height, pooled_width), spatial_scale, sampling_ratio,
                                 aligned, "torchvision", 1)
    call = _check_torchvision_roi_align(input, rois, options)
    if _both_half(input):
        if rois.dtype == torch.bfloat16:  # NumPy has none: widened exactly, as on the CPU
            rois = rois.float()
        return _TorchvisionHalfRoIAlign.apply(input, rois, options.output_size,
                                              spatial_scale, sampling_ratio, aligned)
    call = torchvision_compat.in_data_type(call)
    data_type = getattr(torch, call.kernel_dtype.name)  # bfloat16, quantized: float32
    if not input.is_quantized:
        return ops.roi_align(input, rois.to(data_type), *call.options.op_args())
    if rois.is_quantized:
        rois = rois.dequantize()
    result = ops.roi_align(input.dequantize(), rois.to(data_type), *call.options.op_args())
    return torch.quantize_per_tensor(result, input.q_scale(), input.q_zero_point(),
                                     input.dtype)


ops.register_autocast("roi_align_torchvision", 0)


class TorchvisionRoIAlign(torchvision_compat.RoIAlign, torch.nn.Module):
    """``roiops.compat.torchvision.RoIAlign`` as a ``torch.nn.Module`` (what it is whenever
    torch is installed: its constructor returns one); scriptable."""

    __call__ = torch.nn.Module.__call__
    # For TorchScript, which would otherwise type an int scale (``spatial_scale=1``) as int.
    spatial_scale: float
    sampling_ratio: int
    aligned: bool

    # TorchScript compiles these annotations (tensors); NumPy arrays still pass at run time.
    def forward(self, input: Tensor,  # type: ignore[override]
                rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return torchvision_compat.roi_align(input, rois, self.output_size, self.spatial_scale,
                                            self.sampling_ratio, self.aligned)


def torchvision_roi_pool(input, boxes, output_size, spatial_scale):
    """torchvision's ``roi_pool`` on tensors: the native op with the boxes converted to the
    input dtype, and for float16 torchvision's half arithmetic (geometry and gradient; in
    float32 under autocast, as torchvision); differentiable w.r.t. the input."""
    rois = boxes_to_rois(boxes, dtypes=_checks.FLOAT_NAMES)
    options = pool_checks.Options(output_size, spatial_scale)
    pool_checks.check_forward(TORCH, input, rois, options, pool_checks.Names(rois="boxes"),
                              _checks.FLOAT_NAMES)
    result, _ = roi_pool_ops.roi_pool(input, rois.to(input.dtype), *options.op_args(),
                                      input.dtype == torch.float16)
    return result


class TorchvisionRoIPool(torchvision_compat.RoIPool, torch.nn.Module):
    """``roiops.compat.torchvision.RoIPool`` as a ``torch.nn.Module`` (what it is whenever
    torch is installed: its constructor returns one); scriptable."""

    __call__ = torch.nn.Module.__call__
    spatial_scale: float  # for TorchScript, which would type an int scale as int

    # TorchScript compiles these annotations (tensors); NumPy arrays still pass at run time.
    def forward(self, input: Tensor,  # type: ignore[override]
                rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return torchvision_compat.roi_pool(input, rois, self.output_size, self.spatial_scale)


# --- autograd of the half-arithmetic RoI Align forwards ----------------------------------

class _NoDoubleBackward(torch.autograd.Function):
    """Ties a first-order gradient to the forward's inputs without a derivative of its own, so
    that a double backward raises instead of silently seeing a constant."""

    @staticmethod
    def forward(ctx, gradient, *inputs):
        return gradient.view_as(gradient)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(
            "the float16 roi_align of roiops.compat is not twice differentiable: double "
            "backward through it is not supported (use create_graph=False, or detach the "
            "first gradient)")


class _HalfRoIAlign(torch.autograd.Function):
    """A half-arithmetic RoI Align forward run on the host. Each subclass's ``forward`` sets
    ``ctx.gradients(ctx, grad)``; the backward computes it without a graph and, when the
    caller asked for one (``create_graph=True``), marks it once-differentiable."""

    @staticmethod
    def backward(ctx, grad):
        with torch.no_grad():
            results = ctx.gradients(ctx, grad)
        if not torch.is_grad_enabled():
            return results
        saved = ctx.saved_tensors
        return tuple(None if r is None else _NoDoubleBackward.apply(r, *saved) for r in results)


def _half_boxes_gradient(grad, input, rois, options):
    """The native boxes gradient at the half values, computed in float32, in ``rois.dtype``,
    with the spatial scale as both frameworks' half kernels hold it: float32, then half (so
    exact in float32). ``options``: the forward's ``roi_checks.Options``."""
    half_scale = float(np.float16(np.float32(options.spatial_scale)))
    gradient = ops.roi_align_grad_boxes(grad.float(), input.float(), rois.half().float(),
                                        *options.with_scale(half_scale).op_args())
    return gradient.half().to(rois.dtype)


class _TorchvisionHalfRoIAlign(_HalfRoIAlign):
    """torchvision's float16 ``roi_align`` (host) with its half backward for the input."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        result = host_call(torchvision_compat.roi_align, input, rois, output_size,
                           spatial_scale, sampling_ratio, aligned)
        ctx.save_for_backward(input, rois)
        ctx.options = (output_size, spatial_scale, sampling_ratio, aligned)
        ctx.gradients = _TorchvisionHalfRoIAlign.gradients
        return result

    @staticmethod
    def gradients(ctx, grad):
        input, rois = ctx.saved_tensors
        output_size, spatial_scale, sampling_ratio, aligned = ctx.options
        grad_input = grad_rois = None
        if ctx.needs_input_grad[0]:
            grad_input = host_call(torchvision_compat.roi_align_backward, grad.half(), rois,
                                   tuple(input.shape), output_size, spatial_scale,
                                   sampling_ratio, aligned)
        if ctx.needs_input_grad[1]:
            options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                         "torchvision", 1)
            grad_rois = _half_boxes_gradient(grad, input, rois, options)
        return grad_input, grad_rois, None, None, None, None


class _MindSporeHalfROIAlign(_HalfRoIAlign):
    """MindSpore's float16 ``ROIAlign`` (host) with the half-arithmetic features gradient."""

    @staticmethod
    def forward(ctx, primitive, features, rois):
        result = host_call(primitive.__call__, features, rois)
        ctx.save_for_backward(features, rois)
        ctx.primitive = primitive
        ctx.gradients = _MindSporeHalfROIAlign.gradients
        return result

    @staticmethod
    def gradients(ctx, grad):
        features, rois = ctx.saved_tensors
        primitive = ctx.primitive
        grad_features = grad_rois = None
        if ctx.needs_input_grad[1]:
            grad_features = host_call(primitive.features_gradient, grad.half(), rois,
                                      tuple(features.shape))
        if ctx.needs_input_grad[2]:
            grad_rois = _half_boxes_gradient(grad, features, rois, _mindspore_options(primitive))
        return None, grad_features, grad_rois
