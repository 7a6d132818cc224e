"""The roiops operators as ``torch.library`` custom ops in the namespace ``roiops``.

Six ops, callable as ``roiops.torch.ops.<name>(...)`` or ``torch.ops.roiops.<name>(...)``:

=================================  ==================================================
``crop_and_resize``                ``[B,H,W,D]`` (or NCHW) -> ``[N,ch,cw,D]`` (or NCHW)
``crop_and_resize_grad_image``     grads ``[N,ch,cw,D]`` -> ``image_shape`` of ``dtype``
``crop_and_resize_grad_boxes``     grads, image -> ``[N,4]`` in the forward's dtype
``roi_align``                      ``[N,C,H,W]``, rois ``[K,5]`` -> ``[K,C,ph,pw]``
``roi_align_grad_input``           grads ``[K,C,ph,pw]`` -> ``input_shape``
``roi_align_grad_boxes``           grads, input -> ``[K,5]`` (column 0 is zero)
=================================  ==================================================

Each has a fake (meta) implementation, so ``torch.compile(fullgraph=True)`` and
``torch.export`` trace it, and the two forwards have autograd formulas for the image/input
and the boxes. The gradient ops are not differentiable themselves: a double backward raises.

Each op checks its own arguments, since anyone can call ``torch.ops.roiops.*`` directly:
its CPU, CUDA and fake kernels run the operator's validator on the tensors' metadata and the
options (microseconds, no value read), so a wrong shape, dtype or option is a TypeError or
ValueError naming the argument, never a read out of bounds. ``roiops.crop_and_resize`` and
friends (``roiops.torch.api``) and the compat layers run the same validator first, with
their own argument names and dtype rules. Then each op checks what depends on the values
(docs/errors.md#box-data: non-finite boxes, batch indices out of range), with the NumPy
messages, next to its kernels: the CPU ops run the NumPy runners on zero-copy views of the
tensors after the host's value checks.

Devices: the CPU kernels are registered with ``device_types="cpu"``. CUDA tensors run the
Triton kernels of ``roiops.roi_align.cuda`` and ``roiops.crop_and_resize.cuda`` for all six
ops after the value checks ran on the device (one reduction, read back as one boolean: the
boxes are copied to the host only when a check fails, to name the first bad row). All are
deterministic: the forwards, ``roi_align_grad_input`` and
``crop_and_resize_grad_image`` equal the CPU kernels bit for bit in float32/float64; the two
box gradients sum in a different fixed order and agree with the CPU within rounding. The
fake implementations and the autograd formulas are device independent.

Example:
    >>> import torch, roiops.torch.ops as ops
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> ops.roi_align(x, torch.tensor([[0, 0.5, 0.5, 2.5, 2.5]]), [2, 2], 1.0, 2, True)[0, 0]
    tensor([[2.5000, 3.5000],
            [6.5000, 7.5000]])
"""
import importlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _arrays
from ..crop_and_resize import api as crop_api
from ..crop_and_resize import checks as crop_checks
from ..roi_align import api as roi_api
from ..roi_align import checks as roi_checks
from .tensors import TORCH

__all__ = [
    "crop_and_resize", "crop_and_resize_grad_image", "crop_and_resize_grad_boxes",
    "roi_align", "roi_align_grad_input", "roi_align_grad_boxes",
]


def _numpy(tensor):
    """A NumPy view of a CPU tensor: no copy, strides kept (channels_last, slices).

    bfloat16 has no NumPy type: it is widened exactly to a float32 copy, so the kernels
    compute it in float32 like float16 (docs/api.md#dtypes) and the result is rounded once.
    """
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def _tensor(array, dtype, memory_format=torch.contiguous_format):
    """Wrap a fresh NumPy result without copying; cast (round once) only for bfloat16.

    Each op declares its result layout (the fake implementation must match it exactly);
    ``contiguous`` is a no-op when the runner already produced that layout.
    """
    return torch.from_numpy(array).to(dtype).contiguous(memory_format=memory_format)


def _empty(like, shape, dtype, memory_format=torch.contiguous_format):
    """The fake result, in the layout the op declares (``new_empty`` could keep the input's
    memory format instead)."""
    return torch.empty(shape, dtype=dtype, device=like.device, memory_format=memory_format)


# --- crop_and_resize -------------------------------------------------------------------

def _nhwc(array, data_format):
    return _arrays.nhwc_view(array, data_format)


def _host_box_indices(boxes, box_indices, batch):
    """The host's value checks of CPU tensors (NumPy views): the int64 box indices."""
    return crop_checks.check_box_values(boxes, _numpy(box_indices), batch)


@torch.library.custom_op("roiops::crop_and_resize", mutates_args=(), device_types="cpu")
def crop_and_resize(image: Tensor, boxes: Tensor, box_indices: Tensor, crop_size: Sequence[int],
                    method: str = "bilinear", extrapolation_value: float = 0.0,
                    data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize` on tensors (float dtype of the image, float32 for ints)."""
    call = crop_checks.check_forward(TORCH, image, boxes, box_indices, crop_size, method,
                                     extrapolation_value, data_format)
    host_boxes = _numpy(boxes)
    indices = _host_box_indices(host_boxes, box_indices, call.image_shape[0])
    result = crop_api.run_forward(call, _nhwc(_numpy(image), data_format), host_boxes, indices)
    return _tensor(result, call.out_dtype)


@crop_and_resize.register_fake
def _(image, boxes, box_indices, crop_size, method="bilinear", extrapolation_value=0.0,
      data_format="NHWC"):
    call = crop_checks.check_forward(TORCH, image, boxes, box_indices, crop_size, method,
                                     extrapolation_value, data_format)
    return _empty(image, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::crop_and_resize_grad_image", mutates_args=(),
                         device_types="cpu")
def crop_and_resize_grad_image(grads: Tensor, boxes: Tensor, box_indices: Tensor,
                               image_shape: Sequence[int], method: str = "bilinear",
                               dtype: torch.dtype = torch.float32,
                               data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize_grad_image` on tensors; the result has ``dtype``."""
    call = crop_checks.check_grad_image(TORCH, grads, boxes, box_indices, image_shape, method,
                                        dtype, data_format)
    host_boxes = _numpy(boxes)
    indices = _host_box_indices(host_boxes, box_indices, call.image_shape[0])
    result = crop_api.run_grad_image(call, _nhwc(_numpy(grads), data_format), host_boxes,
                                     indices)
    return _tensor(result, dtype)


@crop_and_resize_grad_image.register_fake
def _(grads, boxes, box_indices, image_shape, method="bilinear", dtype=torch.float32,
      data_format="NHWC"):
    call = crop_checks.check_grad_image(TORCH, grads, boxes, box_indices, image_shape, method,
                                        dtype, data_format)
    return _empty(grads, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::crop_and_resize_grad_boxes", mutates_args=(),
                         device_types="cpu")
def crop_and_resize_grad_boxes(grads: Tensor, image: Tensor, boxes: Tensor, box_indices: Tensor,
                               method: str = "bilinear", data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize_grad_boxes` on tensors: ``[N, 4]``."""
    call = crop_checks.check_grad_boxes(TORCH, grads, image, boxes, box_indices, method,
                                        data_format)
    host_boxes = _numpy(boxes)
    indices = _host_box_indices(host_boxes, box_indices, call.image_shape[0])
    result = crop_api.run_grad_boxes(call, _nhwc(_numpy(grads), data_format),
                                     _nhwc(_numpy(image), data_format), host_boxes, indices)
    return _tensor(result, call.out_dtype)


@crop_and_resize_grad_boxes.register_fake
def _(grads, image, boxes, box_indices, method="bilinear", data_format="NHWC"):
    call = crop_checks.check_grad_boxes(TORCH, grads, image, boxes, box_indices, method,
                                        data_format)
    return _empty(boxes, call.result_shape, call.out_dtype)


def _crop_and_resize_setup(ctx, inputs, output):
    image, boxes, box_indices, _, method, _, data_format = inputs
    # The image is needed only for the box gradient: keep it alive only then.
    ctx.save_for_backward(image if ctx.needs_input_grad[1] else None, boxes, box_indices)
    ctx.image_shape, ctx.image_dtype = image.shape, image.dtype
    ctx.method, ctx.data_format = method, data_format


def _crop_and_resize_backward(ctx, grad):
    image, boxes, box_indices = ctx.saved_tensors
    grad_image = grad_boxes = None
    if ctx.needs_input_grad[0]:
        grad_image = crop_and_resize_grad_image(grad, boxes, box_indices, ctx.image_shape,
                                                ctx.method, ctx.image_dtype, ctx.data_format)
    if ctx.needs_input_grad[1]:
        grad_boxes = crop_and_resize_grad_boxes(grad, image, boxes, box_indices, ctx.method,
                                                ctx.data_format).to(boxes.dtype)
    return grad_image, grad_boxes, None, None, None, None, None


crop_and_resize.register_autograd(_crop_and_resize_backward,
                                  setup_context=_crop_and_resize_setup)


# --- roi_align -------------------------------------------------------------------------

def _host_roi_indices(rois, batch, options):
    """The host's value checks of CPU tensors (NumPy views): the int64 batch indices."""
    return roi_checks.check_roi_values(rois, batch, options.convention)


@torch.library.custom_op("roiops::roi_align", mutates_args=(), device_types="cpu")
def roi_align(input: Tensor, rois: Tensor, output_size: Sequence[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False, convention: str = "torchvision",
              roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align` on tensors: ``[K, C, ph, pw]`` of ``input.dtype``."""
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_forward(TORCH, input, rois, options)
    host_rois = _numpy(rois)
    indices = _host_roi_indices(host_rois, call.input_shape[0], options)
    return _tensor(roi_api.run_forward(call, _numpy(input), host_rois, indices), input.dtype)


@roi_align.register_fake
def _(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
      convention="torchvision", roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_forward(TORCH, input, rois, options)
    return _empty(input, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::roi_align_grad_input", mutates_args=(), device_types="cpu")
def roi_align_grad_input(grads: Tensor, rois: Tensor, input_shape: Sequence[int],
                         output_size: Sequence[int], spatial_scale: float = 1.0,
                         sampling_ratio: int = -1, aligned: bool = False,
                         convention: str = "torchvision", roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align_grad_input` on tensors: ``input_shape`` of ``grads.dtype``.

    The result is channels_last: the layout the CPU kernel accumulates into without a
    temporary (the values do not depend on it).
    """
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    host_rois = _numpy(rois)
    indices = _host_roi_indices(host_rois, call.input_shape[0], options)
    result = roi_api.run_grad_input(call, _numpy(grads), host_rois, indices)
    return _tensor(result, grads.dtype, torch.channels_last)


@roi_align_grad_input.register_fake
def _(grads, rois, input_shape, output_size, spatial_scale=1.0, sampling_ratio=-1,
      aligned=False, convention="torchvision", roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return _empty(grads, call.input_shape, call.out_dtype, torch.channels_last)


@torch.library.custom_op("roiops::roi_align_grad_boxes", mutates_args=(), device_types="cpu")
def roi_align_grad_boxes(grads: Tensor, input: Tensor, rois: Tensor, output_size: Sequence[int],
                         spatial_scale: float = 1.0, sampling_ratio: int = -1,
                         aligned: bool = False, convention: str = "torchvision",
                         roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align_grad_boxes` on tensors: ``[K, 5]`` of ``input.dtype``."""
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    host_rois = _numpy(rois)
    indices = _host_roi_indices(host_rois, call.input_shape[0], options)
    result = roi_api.run_grad_boxes(call, _numpy(grads), _numpy(input), host_rois, indices)
    return _tensor(result, input.dtype)


@roi_align_grad_boxes.register_fake
def _(grads, input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
      convention="torchvision", roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    return _empty(rois, call.result_shape, call.out_dtype)


def _roi_align_setup(ctx, inputs, output):
    input, rois, *options = inputs
    ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, rois)
    ctx.input_shape, ctx.options = input.shape, options


def _roi_align_backward(ctx, grad):
    input, rois = ctx.saved_tensors
    output_size, *options = ctx.options
    grad_input = grad_rois = None
    if ctx.needs_input_grad[0]:
        grad_input = roi_align_grad_input(grad, rois, ctx.input_shape, output_size, *options)
    if ctx.needs_input_grad[1]:
        grad_rois = roi_align_grad_boxes(grad, input, rois, output_size, *options).to(rois.dtype)
    return grad_input, grad_rois, None, None, None, None, None, None


roi_align.register_autograd(_roi_align_backward, setup_context=_roi_align_setup)


# --- gradient ops: no second derivative ------------------------------------------------

def _no_double_backward(name):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"roiops::{name} is not differentiable: double backward through roiops operators "
            f"is not supported (use create_graph=False, or detach the first gradient)")
    return backward


_GRADIENT_OPS = {
    "crop_and_resize_grad_image": crop_and_resize_grad_image,
    "crop_and_resize_grad_boxes": crop_and_resize_grad_boxes,
    "roi_align_grad_input": roi_align_grad_input,
    "roi_align_grad_boxes": roi_align_grad_boxes,
}
for _name, _op in _GRADIENT_OPS.items():
    _op.register_autograd(_no_double_backward(_name),
                          setup_context=lambda ctx, inputs, output: None)
del _name, _op


# --- CUDA: Triton kernels --------------------------------------------------------------
#
# Every op's CUDA kernel. The validator checks the metadata on the host, as on the CPU, then
# the checks that need the compute type and the device's memory (no value is read), and
# the value checks run on the device: one boolean reduction, one scalar read (a sync, but no
# copy of the boxes). Only when it is false are the boxes copied to the host, where the CPU
# path's check names the first bad row with the CPU path's message.

def _cuda_kernels(operator):
    """The Triton kernels of ``operator`` (``roiops.<operator>.cuda``). Imported on the first
    CUDA call, not with this module: triton is optional, and only CUDA tensors need it."""
    return importlib.import_module(f"roiops.{operator}.cuda")


def _host(tensor):
    """A host copy of a device tensor as NumPy (bfloat16 widened to float32, as on the CPU)."""
    return _numpy(tensor.cpu())


def _all_true(ok):
    """The device's verdict: one reduction, read back as one Python bool."""
    return bool(ok.all()) if ok.numel() else True


def _device_box_indices(boxes, box_indices, batch):
    """The box indices as int64 on the device, after the value checks of
    ``crop_checks.check_box_values`` ran there (finite boxes, indices in ``[0, batch)``).

    The int64 view is exact for every valid index; a uint64 above 2**63 - 1 wraps to a
    negative one and is refused, named by the host check with its own value.
    """
    indices = box_indices.to(torch.int64)
    ok = torch.isfinite(boxes).all(dim=1) & (indices >= 0) & (indices < batch)
    if not _all_true(ok):
        crop_checks.check_box_values(_host(boxes), _host(box_indices), batch)
    return indices


def _device_roi_indices(rois, batch, convention):
    """The rois' batch indices as int64 on the device, after the value checks of
    ``roi_checks.check_roi_values`` ran there, in the same arithmetic (each convention's
    index rule)."""
    column = rois[:, 0] if rois.dtype != torch.bfloat16 else rois[:, 0].float()
    if convention.rounded_batch_index:
        raw = column.float()
        in_range = (raw >= 0) & (raw <= float(np.float32(batch - 1)))
        indices = torch.round(raw + roi_checks.MINDSPORE_INDEX_BIAS)
    else:
        indices = torch.trunc(column)
        # in float64, as the host: the batch size may not fit a narrow float (2049 in half)
        in_range = (indices.double() >= 0) & (indices.double() < batch)
    ok = torch.isfinite(rois).all(dim=1) & in_range
    if not _all_true(ok):
        roi_checks.check_roi_values(_host(rois), batch, convention)
    # Only now: a value beyond int64 has no int64 to become.
    return indices.to(torch.int64)


def _cuda_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                    aligned=False, convention="torchvision", roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_forward(TORCH, input, rois, options)
    roi_checks.check_forward_run(call, device=input.device)
    indices = _device_roi_indices(rois, call.input_shape[0], options.convention)
    return _cuda_kernels("roi_align").forward(input, rois, indices, options)


def _cuda_roi_align_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=False, convention="torchvision",
                               roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    roi_checks.check_grad_input_run(call, device=grads.device)
    indices = _device_roi_indices(rois, call.input_shape[0], options.convention)
    return _cuda_kernels("roi_align").grad_input(grads, rois, indices, call.input_shape,
                                                 options).contiguous(
        memory_format=torch.channels_last)


def _cuda_roi_align_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=False, convention="torchvision",
                               roi_end_mode=1):
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    roi_checks.check_compute_type(call)
    indices = _device_roi_indices(rois, call.input_shape[0], options.convention)
    return _cuda_kernels("roi_align").grad_boxes(grads, input, rois, indices, options)


def _cuda_crop_and_resize(image, boxes, box_indices, crop_size, method="bilinear",
                          extrapolation_value=0.0, data_format="NHWC"):
    call = crop_checks.check_forward(TORCH, image, boxes, box_indices, crop_size, method,
                                     extrapolation_value, data_format)
    crop_checks.check_forward_run(call, column_tables=False, device=image.device)
    indices = _device_box_indices(boxes, box_indices, call.image_shape[0])
    return _cuda_kernels("crop_and_resize").forward(
        image, boxes, indices, call.crop_size, method, call.extrapolation_value, data_format,
        call.out_dtype)


def _cuda_crop_and_resize_grad_image(grads, boxes, box_indices, image_shape, method="bilinear",
                                     dtype=torch.float32, data_format="NHWC"):
    call = crop_checks.check_grad_image(TORCH, grads, boxes, box_indices, image_shape, method,
                                        dtype, data_format)
    crop_checks.check_grad_image_run(call, device=grads.device)
    indices = _device_box_indices(boxes, box_indices, call.image_shape[0])
    return _cuda_kernels("crop_and_resize").grad_image(grads, boxes, indices, image_shape,
                                                       method, data_format, dtype)


def _cuda_crop_and_resize_grad_boxes(grads, image, boxes, box_indices, method="bilinear",
                                     data_format="NHWC"):
    call = crop_checks.check_grad_boxes(TORCH, grads, image, boxes, box_indices, method,
                                        data_format)
    indices = _device_box_indices(boxes, box_indices, call.image_shape[0])
    return _cuda_kernels("crop_and_resize").grad_boxes(grads, image, boxes, indices,
                                                       data_format, call.out_dtype)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
roi_align.register_kernel("cuda")(_cuda_roi_align)
roi_align_grad_input.register_kernel("cuda")(_cuda_roi_align_grad_input)
roi_align_grad_boxes.register_kernel("cuda")(_cuda_roi_align_grad_boxes)
crop_and_resize.register_kernel("cuda")(_cuda_crop_and_resize)
crop_and_resize_grad_image.register_kernel("cuda")(_cuda_crop_and_resize_grad_image)
crop_and_resize_grad_boxes.register_kernel("cuda")(_cuda_crop_and_resize_grad_boxes)


# --- autocast --------------------------------------------------------------------------
#
# As torchvision registers its operators: under ``torch.autocast`` the float16 and bfloat16
# tensor arguments are cast to float32, the op runs with autocast off, and the result is cast
# back to the dtype the op gives outside autocast. The ops already compute half types in
# float32 and round once, so only mixed dtypes and roiops::roi_align_torchvision's float16
# (half arithmetic outside autocast, float32 inside, as torchvision) see a difference.

_LIBRARY = torch.library.Library("roiops", "FRAGMENT")
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}


def _autocast_kernel(op, device_type, result_like):
    def kernel(*args):
        dtype = None
        if result_like is not None and args[result_like].is_floating_point():
            dtype = args[result_like].dtype
        args = tuple(a.float() if isinstance(a, Tensor)
                     and a.dtype in (torch.float16, torch.bfloat16) else a for a in args)
        with torch.autocast(device_type, enabled=False):
            result = op(*args)
        return result if dtype is None else result.to(dtype)
    return kernel


def register_autocast(name, result_like):
    """Register the autocast kernels (CPU and CUDA) of the op ``roiops::<name>``: its result
    takes the dtype of the argument at index ``result_like`` when that one is a float tensor
    (``None``: the op's own result dtype, e.g. from a ``dtype`` argument)."""
    op = getattr(torch.ops.roiops, name).default
    for device_type, key in _AUTOCAST_KEYS.items():
        _LIBRARY.impl(name, _autocast_kernel(op, device_type, result_like), key)


for _name, _result_like in (("crop_and_resize", 0), ("crop_and_resize_grad_image", None),
                            ("crop_and_resize_grad_boxes", 1), ("roi_align", 0),
                            ("roi_align_grad_input", 0), ("roi_align_grad_boxes", 1)):
    register_autocast(_name, _result_like)
del _name, _result_like
