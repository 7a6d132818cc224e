"""RoI max pooling as ``torch.library`` custom ops in the namespace ``roiops``.

=================================  ==================================================
``roi_pool``                       ``[N,C,H,W]``, rois ``[K,5]`` -> ``([K,C,ph,pw], argmax)``
``roi_pool_grad_input``            grads, argmax ``[K,C,ph,pw]`` -> ``input_shape``
=================================  ==================================================

The contract of :mod:`roiops.torch.ops` (registered next to them, in their namespace, by
``import roiops.torch``): each op runs the validator of ``roiops.roi_pool.checks`` on the
metadata, then the value checks next to its kernels (finite rois, batch indices in the batch,
argmax indices inside a plane); fake implementations for ``torch.compile`` and
``torch.export``; autograd for the input (the argmax is not differentiable, and the rois get
no gradient: the result is piecewise constant in them); no double backward.

``half_arithmetic`` selects torchvision's float16 kernel: the spatial scale (a double, as
torchvision's schema has it) and the rois rounded to half, every geometry operation rounded
to half, the gradient summed in half. The native API leaves it False and computes float16 in
float32; ``roiops.compat.torchvision`` sets it for float16 maps. Under ``torch.autocast``
half tensors run in float32 without it and the result is cast back, as torchvision's
autocast kernel of ``roi_pool`` does.

CUDA tensors run the Triton kernels of ``roiops.roi_pool.cuda``: the same results as the CPU
kernels bit for bit, the gradient deterministic without atomics.

Example:
    >>> import torch, roiops.torch.roi_pool_ops as ops
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> out, argmax = ops.roi_pool(x, torch.tensor([[0., 0, 0, 3, 3]]), [2, 2], 1.0)
    >>> out[0, 0], argmax[0, 0]
    (tensor([[ 5.,  7.],
            [13., 15.]]), tensor([[ 5,  7],
            [13, 15]], dtype=torch.int32))
"""
from collections.abc import Sequence
from typing import List, Union

import torch
from torch import Tensor
from torch.jit.annotations import BroadcastingList2

from ..roi_pool import api as pool_api
from ..roi_pool import checks as pool_checks
from .ops import (
    _AUTOCAST_KEYS,
    _LIBRARY,
    _all_true,
    _cuda_kernels,
    _device_roi_indices,
    _empty,
    _host,
    _no_double_backward,
    _numpy,
    _tensor,
)
from .tensors import TORCH

__all__ = ["roi_pool", "roi_pool_grad_input", "script_roi_pool", "script_torchvision_roi_pool"]


def _forward_call(input, rois, output_size, spatial_scale, half_arithmetic):
    options = pool_checks.Options(output_size, spatial_scale)
    call = pool_checks.check_forward(TORCH, input, rois, options)
    return pool_checks.half_arithmetic(call) if half_arithmetic else call


def _half_rois(rois, call):
    """The rois as the geometry reads them: rounded to half in half arithmetic."""
    return rois.to(torch.float16) if call.half_arithmetic else rois


def _grad_call(grads, argmax, rois, input_shape, half_arithmetic):
    call = pool_checks.check_grad_input(TORCH, grads, argmax, rois, input_shape)
    return call._replace(half_arithmetic=bool(half_arithmetic))


@torch.library.custom_op("roiops::roi_pool", mutates_args=(), device_types="cpu")
def roi_pool(input: Tensor, rois: Tensor, output_size: Sequence[int],
             spatial_scale: float = 1.0, half_arithmetic: bool = False
             ) -> tuple[Tensor, Tensor]:
    """:func:`roiops.roi_pool` on tensors: ``([K, C, ph, pw]`` of ``input.dtype``, its int32
    argmax ``)``."""
    call = _forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    host_rois = _numpy(_half_rois(rois, call))
    indices = pool_checks.check_roi_values(host_rois, call.input_shape[0])
    result, argmax = pool_api.run_forward(call, _numpy(input), host_rois, indices,
                                          with_argmax=True)
    return _tensor(result, input.dtype), torch.from_numpy(argmax)


@roi_pool.register_fake
def _(input, rois, output_size, spatial_scale=1.0, half_arithmetic=False):
    call = _forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    return (_empty(input, call.result_shape, call.out_dtype),
            _empty(input, call.result_shape, torch.int32))


@torch.library.custom_op("roiops::roi_pool_grad_input", mutates_args=(), device_types="cpu")
def roi_pool_grad_input(grads: Tensor, argmax: Tensor, rois: Tensor, input_shape: Sequence[int],
                        half_arithmetic: bool = False) -> Tensor:
    """:func:`roiops.roi_pool_grad_input` on tensors: ``input_shape`` of ``grads.dtype``."""
    call = _grad_call(grads, argmax, rois, input_shape, half_arithmetic)
    host_rois = _numpy(rois)
    indices = pool_checks.check_roi_values(host_rois, call.input_shape[0])
    host_argmax = _numpy(argmax)
    pool_checks.check_argmax_values(host_argmax, call.input_shape[2] * call.input_shape[3])
    result = pool_api.run_grad_input(call, _numpy(grads), host_argmax, indices)
    return _tensor(result, grads.dtype)


@roi_pool_grad_input.register_fake
def _(grads, argmax, rois, input_shape, half_arithmetic=False):
    call = _grad_call(grads, argmax, rois, input_shape, half_arithmetic)
    return _empty(grads, call.result_shape, call.out_dtype)


def _roi_pool_setup(ctx, inputs, output):
    input, rois, _, _, half_arithmetic = inputs
    _, argmax = output
    ctx.mark_non_differentiable(argmax)
    ctx.save_for_backward(argmax, rois)
    ctx.input_shape, ctx.half_arithmetic = input.shape, half_arithmetic


def _roi_pool_backward(ctx, grad, grad_argmax):
    argmax, rois = ctx.saved_tensors
    grad_input = None
    if ctx.needs_input_grad[0]:
        grad_input = roi_pool_grad_input(grad, argmax, rois, ctx.input_shape,
                                         ctx.half_arithmetic)
    # No gradient for the rois: the forward is piecewise constant in them.
    return grad_input, None, None, None, None


roi_pool.register_autograd(_roi_pool_backward, setup_context=_roi_pool_setup)
roi_pool_grad_input.register_autograd(_no_double_backward("roi_pool_grad_input"),
                                      setup_context=lambda ctx, inputs, output: None)


# --- autocast: half tensors in float32, no half arithmetic, the result cast back ----------

def _float(tensor):
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def _autocast_roi_pool(device_type):
    def kernel(input, rois, output_size, spatial_scale=1.0, half_arithmetic=False):
        with torch.autocast(device_type, enabled=False):
            result, argmax = roi_pool(_float(input), _float(rois), output_size, spatial_scale)
        return result.to(input.dtype), argmax
    return kernel


def _autocast_roi_pool_grad_input(device_type):
    def kernel(grads, argmax, rois, input_shape, half_arithmetic=False):
        with torch.autocast(device_type, enabled=False):
            result = roi_pool_grad_input(_float(grads), argmax, _float(rois), input_shape)
        return result.to(grads.dtype)
    return kernel


for _device_type, _key in _AUTOCAST_KEYS.items():
    _LIBRARY.impl("roi_pool", _autocast_roi_pool(_device_type), _key)
    _LIBRARY.impl("roi_pool_grad_input", _autocast_roi_pool_grad_input(_device_type), _key)
del _device_type, _key


# --- CUDA: Triton kernels, after the value checks ran on the device ----------------------

def _device_argmax_check(argmax, plane):
    """The argmax values in ``[-1, plane)``, checked on the device (one scalar read); the host
    check names the first bad one when not."""
    if not _all_true(((argmax >= -1) & (argmax < plane)).flatten()):
        pool_checks.check_argmax_values(_host(argmax), plane)


def _cuda_roi_pool(input, rois, output_size, spatial_scale=1.0, half_arithmetic=False):
    call = _forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    pool_checks.check_forward_run(call, device=input.device)
    rois = _half_rois(rois, call)
    indices = _device_roi_indices(rois, call.input_shape[0],
                                  pool_checks.TORCHVISION_INDEX_RULE)
    return _cuda_kernels("roi_pool").forward(input, rois, indices, call)


def _cuda_roi_pool_grad_input(grads, argmax, rois, input_shape, half_arithmetic=False):
    call = _grad_call(grads, argmax, rois, input_shape, half_arithmetic)
    pool_checks.check_grad_input_run(call, device=grads.device)
    indices = _device_roi_indices(rois, call.input_shape[0],
                                  pool_checks.TORCHVISION_INDEX_RULE)
    _device_argmax_check(argmax, call.input_shape[2] * call.input_shape[3])
    return _cuda_kernels("roi_pool").grad_input(grads, argmax, indices, call)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
roi_pool.register_kernel("cuda")(_cuda_roi_pool)
roi_pool_grad_input.register_kernel("cuda")(_cuda_roi_pool_grad_input)


# --- TorchScript twins ---------------------------------------------------------------------
#
# torch.jit.script compiles these in place of the public functions (roiops._dispatch.script_as,
# as roiops.torch.tracing does for roi_align); the op checks its arguments itself.

def script_roi_pool(input: Tensor, rois: Tensor, output_size: BroadcastingList2[int],
                    spatial_scale: float = 1.0, return_argmax: bool = False) -> Tensor:
    """``roiops.roi_pool`` in TorchScript (tensors only, no ``out``). A scripted function has
    one return type: ``return_argmax=True`` raises; ``torch.ops.roiops.roi_pool`` returns
    the pair."""
    if return_argmax:
        raise RuntimeError("roiops.roi_pool(..., return_argmax=True) is not available in "
                           "TorchScript (one return type); call torch.ops.roiops.roi_pool, "
                           "which returns (result, argmax)")
    return torch.ops.roiops.roi_pool(input, rois, output_size, spatial_scale, False)[0]


def script_torchvision_roi_pool(input: Tensor, boxes: Union[Tensor, List[Tensor]],
                                output_size: BroadcastingList2[int],
                                spatial_scale: float = 1.0) -> Tensor:
    """``roiops.compat.torchvision.roi_pool`` in TorchScript: boxes ``[K, 5]`` or a list of
    ``[L, 4]`` (one per image), as torchvision's."""
    if isinstance(boxes, Tensor):
        rois = boxes
    else:
        rows: List[Tensor] = []
        for i, image_boxes in enumerate(boxes):
            rows.append(torch.cat([torch.full_like(image_boxes[:, :1], i), image_boxes], 1))
        rois = torch.cat(rows)
    return torch.ops.roiops.roi_pool(input, rois.to(input.dtype), output_size, spatial_scale,
                                     input.dtype == torch.float16)[0]
