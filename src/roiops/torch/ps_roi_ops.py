"""Position-sensitive RoI Align and pooling as ``torch.library`` custom ops (namespace
``roiops``), their tensor entry points and torchvision's modules on tensors.

=================================  ==================================================
``ps_roi_align``                   ``[N,C,H,W]``, rois ``[K,5]`` -> ``[K,C/(ph*pw),ph,pw]``
``ps_roi_align_grad_input``        grads ``[K,C/(ph*pw),ph,pw]`` -> ``input_shape``
``ps_roi_align_grad_boxes``        grads, input -> ``[K,5]`` (column 0 is zero)
``ps_roi_pool``                    ``[N,C,H,W]``, rois ``[K,5]`` -> ``[K,C/(ph*pw),ph,pw]``
``ps_roi_pool_grad_input``         grads ``[K,C/(ph*pw),ph,pw]`` -> ``input_shape``
=================================  ==================================================

The contract of :mod:`roiops.torch.ops` (registered next to them, in their namespace, by
``import roiops.torch``): each op runs its validator (``roiops.ps_roi_align.checks``) on the
metadata, then the value checks next to its kernels; fake implementations for
``torch.compile`` and ``torch.export``; autograd for the input, and for the rois of
ps_roi_align (ps_roi_pool rounds the rois to whole pixels: piecewise constant, no rois
gradient); no double backward; autocast as torchvision registers its ops.
``half_arithmetic`` selects torchvision's float16 kernels (every operation rounded to half);
the native API leaves it False and computes float16 in float32, ``roiops.compat.torchvision``
sets it for float16 maps. CUDA tensors run the Triton kernels of ``roiops.ps_roi_align.cuda``
and ``roiops.ps_roi_pool.cuda``; torchvision's half arithmetic runs the CPU kernels on host
copies.

Example:
    >>> import torch, roiops.torch.ps_roi_ops as ops
    >>> x = torch.arange(36.).reshape(1, 4, 3, 3)   # channel (ph * 2 + pw) feeds bin (ph, pw)
    >>> ops.ps_roi_pool(x, torch.tensor([[0., 0, 0, 2, 2]]), [2, 2], 1.0)[0, 0]
    tensor([[ 0., 10.],
            [21., 31.]])
"""
from collections.abc import Sequence
from typing import List, Union

import torch
from torch import Tensor
from torch.jit.annotations import BroadcastingList2

from .. import _checks
from ..compat import torchvision as torchvision_compat
from ..ps_roi_align import api as align_api
from ..ps_roi_align import checks as align_checks
from ..ps_roi_pool import api as pool_api
from ..ps_roi_pool import checks as pool_checks
from ..roi_align.checks import (
    Names,
    check_compute_type,
    check_forward_run,
    check_grad_input_run,
    check_roi_values,
)
from .compat import boxes_to_rois
from .ops import (
    _cuda_kernels,
    _device_roi_indices,
    _empty,
    _no_double_backward,
    _numpy,
    _tensor,
    register_autocast,
)
from .tensors import TORCH

__all__ = ["ps_roi_align", "ps_roi_align_grad_input", "ps_roi_align_grad_boxes",
           "ps_roi_pool", "ps_roi_pool_grad_input"]


def _half(call, half_arithmetic):
    """The record of ``half_arithmetic``: torchvision's float16 kernels round the scale to
    the data's type (``roiops.compat.torchvision.in_data_type``) and every operation to half,
    so the op can take torchvision's arguments as they are."""
    if not half_arithmetic:
        return call
    return torchvision_compat.in_data_type(call)._replace(half_arithmetic=True)


def _indices(rois, call):
    """The host's value checks (NumPy rois): the int64 batch indices."""
    return check_roi_values(rois, call.input_shape[0], call.options.convention)


# --- ps_roi_align ------------------------------------------------------------------------

def _align_forward_call(input, rois, output_size, spatial_scale, sampling_ratio,
                        half_arithmetic):
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    return _half(align_checks.check_forward(TORCH, input, rois, options), half_arithmetic)


def _align_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                           sampling_ratio, half_arithmetic):
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    call = align_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return _half(call, half_arithmetic)


def _align_grad_boxes_call(grads, input, rois, output_size, spatial_scale, sampling_ratio):
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    return align_checks.check_grad_boxes(TORCH, grads, input, rois, options)


@torch.library.custom_op("roiops::ps_roi_align", mutates_args=(), device_types="cpu")
def ps_roi_align(input: Tensor, rois: Tensor, output_size: Sequence[int],
                 spatial_scale: float = 1.0, sampling_ratio: int = -1,
                 half_arithmetic: bool = False) -> Tensor:
    """:func:`roiops.ps_roi_align` on tensors: ``[K, C/(ph*pw), ph, pw]`` of ``input.dtype``."""
    call = _align_forward_call(input, rois, output_size, spatial_scale, sampling_ratio,
                               half_arithmetic)
    host_rois = _numpy(rois)
    result = align_api.run_forward(call, _numpy(input), host_rois, _indices(host_rois, call))
    return _tensor(result, input.dtype)


@ps_roi_align.register_fake
def _(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, half_arithmetic=False):
    call = _align_forward_call(input, rois, output_size, spatial_scale, sampling_ratio,
                               half_arithmetic)
    return _empty(input, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::ps_roi_align_grad_input", mutates_args=(),
                         device_types="cpu")
def ps_roi_align_grad_input(grads: Tensor, rois: Tensor, input_shape: Sequence[int],
                            output_size: Sequence[int], spatial_scale: float = 1.0,
                            sampling_ratio: int = -1, half_arithmetic: bool = False) -> Tensor:
    """:func:`roiops.ps_roi_align_grad_input` on tensors: ``input_shape`` of ``grads.dtype``."""
    call = _align_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                  sampling_ratio, half_arithmetic)
    host_rois = _numpy(rois)
    result = align_api.run_grad_input(call, _numpy(grads), host_rois,
                                      _indices(host_rois, call))
    return _tensor(result, grads.dtype)


@ps_roi_align_grad_input.register_fake
def _(grads, rois, input_shape, output_size, spatial_scale=1.0, sampling_ratio=-1,
      half_arithmetic=False):
    call = _align_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                  sampling_ratio, half_arithmetic)
    return _empty(grads, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::ps_roi_align_grad_boxes", mutates_args=(),
                         device_types="cpu")
def ps_roi_align_grad_boxes(grads: Tensor, input: Tensor, rois: Tensor,
                            output_size: Sequence[int], spatial_scale: float = 1.0,
                            sampling_ratio: int = -1) -> Tensor:
    """:func:`roiops.ps_roi_align_grad_boxes` on tensors: ``[K, 5]`` of ``input.dtype``."""
    call = _align_grad_boxes_call(grads, input, rois, output_size, spatial_scale,
                                  sampling_ratio)
    host_rois = _numpy(rois)
    result = align_api.run_grad_boxes(call, _numpy(grads), _numpy(input), host_rois,
                                      _indices(host_rois, call))
    return _tensor(result, input.dtype)


@ps_roi_align_grad_boxes.register_fake
def _(grads, input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1):
    call = _align_grad_boxes_call(grads, input, rois, output_size, spatial_scale,
                                  sampling_ratio)
    return _empty(rois, call.result_shape, call.out_dtype)


def _ps_roi_align_setup(ctx, inputs, output):
    input, rois, output_size, spatial_scale, sampling_ratio, half_arithmetic = inputs
    ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, rois)
    ctx.input_shape = input.shape
    ctx.options = (output_size, spatial_scale, sampling_ratio)
    ctx.half_arithmetic = half_arithmetic


def _ps_roi_align_backward(ctx, grad):
    input, rois = ctx.saved_tensors
    grad_input = grad_rois = None
    if ctx.needs_input_grad[0]:
        grad_input = ps_roi_align_grad_input(grad, rois, ctx.input_shape, *ctx.options,
                                             ctx.half_arithmetic)
    if ctx.needs_input_grad[1]:
        # the derivative at the data's values, computed in float32 (or float64)
        grad_rois = ps_roi_align_grad_boxes(grad, input, rois, *ctx.options).to(rois.dtype)
    return grad_input, grad_rois, None, None, None, None


ps_roi_align.register_autograd(_ps_roi_align_backward, setup_context=_ps_roi_align_setup)


# --- ps_roi_pool -------------------------------------------------------------------------

def _pool_forward_call(input, rois, output_size, spatial_scale, half_arithmetic):
    options = pool_checks.Options(output_size, spatial_scale)
    return _half(pool_checks.check_forward(TORCH, input, rois, options), half_arithmetic)


def _pool_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                          half_arithmetic):
    options = pool_checks.Options(output_size, spatial_scale)
    call = pool_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return _half(call, half_arithmetic)


@torch.library.custom_op("roiops::ps_roi_pool", mutates_args=(), device_types="cpu")
def ps_roi_pool(input: Tensor, rois: Tensor, output_size: Sequence[int],
                spatial_scale: float = 1.0, half_arithmetic: bool = False) -> Tensor:
    """:func:`roiops.ps_roi_pool` on tensors: ``[K, C/(ph*pw), ph, pw]`` of ``input.dtype``."""
    call = _pool_forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    host_rois = _numpy(rois)
    result = pool_api.run_forward(call, _numpy(input), host_rois, _indices(host_rois, call))
    return _tensor(result, input.dtype)


@ps_roi_pool.register_fake
def _(input, rois, output_size, spatial_scale=1.0, half_arithmetic=False):
    call = _pool_forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    return _empty(input, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::ps_roi_pool_grad_input", mutates_args=(), device_types="cpu")
def ps_roi_pool_grad_input(grads: Tensor, rois: Tensor, input_shape: Sequence[int],
                           output_size: Sequence[int], spatial_scale: float = 1.0,
                           half_arithmetic: bool = False) -> Tensor:
    """:func:`roiops.ps_roi_pool_grad_input` on tensors: ``input_shape`` of ``grads.dtype``."""
    call = _pool_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                 half_arithmetic)
    host_rois = _numpy(rois)
    result = pool_api.run_grad_input(call, _numpy(grads), host_rois, _indices(host_rois, call))
    return _tensor(result, grads.dtype)


@ps_roi_pool_grad_input.register_fake
def _(grads, rois, input_shape, output_size, spatial_scale=1.0, half_arithmetic=False):
    call = _pool_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                 half_arithmetic)
    return _empty(grads, call.result_shape, call.out_dtype)


def _ps_roi_pool_setup(ctx, inputs, output):
    input, rois, output_size, spatial_scale, half_arithmetic = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = input.shape
    ctx.options = (output_size, spatial_scale, half_arithmetic)


def _ps_roi_pool_backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = None
    if ctx.needs_input_grad[0]:
        grad_input = ps_roi_pool_grad_input(grad, rois, ctx.input_shape, *ctx.options)
    # No gradient for the rois: rounded to whole pixels, the result is piecewise constant.
    return grad_input, None, None, None, None


ps_roi_pool.register_autograd(_ps_roi_pool_backward, setup_context=_ps_roi_pool_setup)

for _name, _op in (("ps_roi_align_grad_input", ps_roi_align_grad_input),
                   ("ps_roi_align_grad_boxes", ps_roi_align_grad_boxes),
                   ("ps_roi_pool_grad_input", ps_roi_pool_grad_input)):
    _op.register_autograd(_no_double_backward(_name),
                          setup_context=lambda ctx, inputs, output: None)
for _name, _result_like in (("ps_roi_align", 0), ("ps_roi_align_grad_input", 0),
                            ("ps_roi_align_grad_boxes", 1), ("ps_roi_pool", 0),
                            ("ps_roi_pool_grad_input", 0)):
    register_autocast(_name, _result_like)
del _name, _op, _result_like


# --- CUDA -------------------------------------------------------------------------------
#
# The Triton kernels of roiops.ps_roi_align.cuda and roiops.ps_roi_pool.cuda, after the value
# checks ran on the device (one scalar read). torchvision's half arithmetic has no device
# kernels: it runs the CPU kernels on host copies and returns to the device.

def _on_host(op, *args):
    """``op`` (a CPU kernel of this module) on host copies of the tensor arguments, the result
    on their device."""
    device = next(a.device for a in args if isinstance(a, Tensor))
    host = [a.cpu() if isinstance(a, Tensor) else a for a in args]
    return op(*host).to(device)


def _cuda_ps_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                       half_arithmetic=False):
    call = _align_forward_call(input, rois, output_size, spatial_scale, sampling_ratio,
                               half_arithmetic)
    if half_arithmetic:
        return _on_host(ps_roi_align, input, rois, output_size, spatial_scale, sampling_ratio,
                        half_arithmetic)
    check_forward_run(call, device=input.device)
    indices = _device_roi_indices(rois, call.input_shape[0], call.options.convention)
    return _cuda_kernels("ps_roi_align").forward(input, rois, indices, call.options)


def _cuda_ps_roi_align_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                                  sampling_ratio=-1, half_arithmetic=False):
    call = _align_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                  sampling_ratio, half_arithmetic)
    if half_arithmetic:
        return _on_host(ps_roi_align_grad_input, grads, rois, input_shape, output_size,
                        spatial_scale, sampling_ratio, half_arithmetic)
    check_grad_input_run(call, device=grads.device)
    indices = _device_roi_indices(rois, call.input_shape[0], call.options.convention)
    return _cuda_kernels("ps_roi_align").grad_input(grads, rois, indices, call.input_shape,
                                                    call.options)


def _cuda_ps_roi_align_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                                  sampling_ratio=-1):
    call = _align_grad_boxes_call(grads, input, rois, output_size, spatial_scale,
                                  sampling_ratio)
    check_compute_type(call)
    indices = _device_roi_indices(rois, call.input_shape[0], call.options.convention)
    return _cuda_kernels("ps_roi_align").grad_boxes(grads, input, rois, indices, call.options)


def _cuda_ps_roi_pool(input, rois, output_size, spatial_scale=1.0, half_arithmetic=False):
    call = _pool_forward_call(input, rois, output_size, spatial_scale, half_arithmetic)
    if half_arithmetic:
        return _on_host(ps_roi_pool, input, rois, output_size, spatial_scale, half_arithmetic)
    check_forward_run(call, device=input.device)
    indices = _device_roi_indices(rois, call.input_shape[0], call.options.convention)
    return _cuda_kernels("ps_roi_pool").forward(input, rois, indices, call.options)


def _cuda_ps_roi_pool_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                                 half_arithmetic=False):
    call = _pool_grad_input_call(grads, rois, input_shape, output_size, spatial_scale,
                                 half_arithmetic)
    if half_arithmetic:
        return _on_host(ps_roi_pool_grad_input, grads, rois, input_shape, output_size,
                        spatial_scale, half_arithmetic)
    check_grad_input_run(call, device=grads.device)
    indices = _device_roi_indices(rois, call.input_shape[0], call.options.convention)
    return _cuda_kernels("ps_roi_pool").grad_input(grads, rois, indices, call.input_shape,
                                                   call.options)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
ps_roi_align.register_kernel("cuda")(_cuda_ps_roi_align)
ps_roi_align_grad_input.register_kernel("cuda")(_cuda_ps_roi_align_grad_input)
ps_roi_align_grad_boxes.register_kernel("cuda")(_cuda_ps_roi_align_grad_boxes)
ps_roi_pool.register_kernel("cuda")(_cuda_ps_roi_pool)
ps_roi_pool_grad_input.register_kernel("cuda")(_cuda_ps_roi_pool_grad_input)


# --- the entry points on tensors (roiops._dispatch) --------------------------------------

def _no_out(out):
    if out is not None:
        raise ValueError(f"out is supported for NumPy arrays only, got {type(out).__name__} "
                         f"(tensor results are always fresh tensors)")


def native_ps_roi_align(input, rois, output_size, *, spatial_scale=1.0, sampling_ratio=-1,
                        out=None):
    """:func:`roiops.ps_roi_align` for tensors (differentiable w.r.t. input and rois)."""
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    _no_out(out)
    align_checks.check_forward(TORCH, input, rois, options)
    return ps_roi_align(input, rois, *options.op_args())


def native_ps_roi_align_grad_input(grads, rois, input_shape, output_size, *, spatial_scale=1.0,
                                   sampling_ratio=-1):
    """:func:`roiops.ps_roi_align_grad_input` for tensors."""
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    call = align_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return ps_roi_align_grad_input(grads, rois, list(call.input_shape), *options.op_args())


def native_ps_roi_align_grad_boxes(grads, input, rois, output_size, *, spatial_scale=1.0,
                                   sampling_ratio=-1):
    """:func:`roiops.ps_roi_align_grad_boxes` for tensors."""
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    align_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    return ps_roi_align_grad_boxes(grads, input, rois, *options.op_args())


def native_ps_roi_pool(input, rois, output_size, *, spatial_scale=1.0, out=None):
    """:func:`roiops.ps_roi_pool` for tensors (differentiable w.r.t. the input)."""
    options = pool_checks.Options(output_size, spatial_scale)
    _no_out(out)
    pool_checks.check_forward(TORCH, input, rois, options)
    return ps_roi_pool(input, rois, *options.op_args())


def native_ps_roi_pool_grad_input(grads, rois, input_shape, output_size, *, spatial_scale=1.0):
    """:func:`roiops.ps_roi_pool_grad_input` for tensors."""
    options = pool_checks.Options(output_size, spatial_scale)
    call = pool_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return ps_roi_pool_grad_input(grads, rois, list(call.input_shape), *options.op_args())


_BOXES = Names(rois="boxes")


def _torchvision_call(check, input, boxes, options):
    """(call, rois) of a torchvision position-sensitive forward on tensors: the validator with
    torchvision's names and dtypes, its rounding of the scale, its half arithmetic."""
    rois = boxes_to_rois(boxes, dtypes=_checks.FLOAT_NAMES)
    call = check(TORCH, input, rois, options, _BOXES, _checks.FLOAT_NAMES)
    return torchvision_compat.in_data_type(call), rois.to(input.dtype)


def torchvision_ps_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio):
    """torchvision's ``ps_roi_align`` on tensors (float16 in half), differentiable w.r.t. the
    input and the boxes."""
    options = align_checks.Options(output_size, spatial_scale, sampling_ratio)
    call, rois = _torchvision_call(align_checks.check_forward, input, boxes, options)
    return ps_roi_align(input, rois, *call.options.op_args(), call.half_arithmetic)


def torchvision_ps_roi_pool(input, boxes, output_size, spatial_scale):
    """torchvision's ``ps_roi_pool`` on tensors (float16 in half), differentiable w.r.t. the
    input."""
    options = pool_checks.Options(output_size, spatial_scale)
    call, rois = _torchvision_call(pool_checks.check_forward, input, boxes, options)
    return ps_roi_pool(input, rois, *call.options.op_args(), call.half_arithmetic)


class TorchvisionPSRoIAlign(torchvision_compat.PSRoIAlign, torch.nn.Module):
    """``roiops.compat.torchvision.PSRoIAlign`` as a ``torch.nn.Module`` (what it is whenever
    torch is installed: its constructor returns one); scriptable."""

    __call__ = torch.nn.Module.__call__
    # For TorchScript, which would otherwise type an int scale (``spatial_scale=1``) as int.
    spatial_scale: float
    sampling_ratio: int

    # TorchScript compiles these annotations (tensors); NumPy arrays still pass at run time.
    def forward(self, input: Tensor,  # type: ignore[override]
                rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return torchvision_compat.ps_roi_align(input, rois, self.output_size,
                                               self.spatial_scale, self.sampling_ratio)


class TorchvisionPSRoIPool(torchvision_compat.PSRoIPool, torch.nn.Module):
    """``roiops.compat.torchvision.PSRoIPool`` as a ``torch.nn.Module``; scriptable."""

    __call__ = torch.nn.Module.__call__
    spatial_scale: float

    def forward(self, input: Tensor,  # type: ignore[override]
                rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return torchvision_compat.ps_roi_pool(input, rois, self.output_size,
                                              self.spatial_scale)


# --- TorchScript twins of the compat functions (roiops._dispatch.script_as) ----------------

def _script_rois(boxes: Union[Tensor, List[Tensor]]) -> Tensor:
    """torchvision's box formats in TorchScript: ``[K, 5]``, or a list of ``[L, 4]``."""
    if isinstance(boxes, Tensor):
        return boxes
    rows: List[Tensor] = []
    for i, image_boxes in enumerate(boxes):
        rows.append(torch.cat([torch.full_like(image_boxes[:, :1], i), image_boxes], 1))
    return torch.cat(rows)


def script_torchvision_ps_roi_align(input: Tensor, boxes: Union[Tensor, List[Tensor]],
                                    output_size: BroadcastingList2[int],
                                    spatial_scale: float = 1.0,
                                    sampling_ratio: int = -1) -> Tensor:
    """``roiops.compat.torchvision.ps_roi_align`` in TorchScript (tensors only)."""
    rois = _script_rois(boxes).to(input.dtype)
    return torch.ops.roiops.ps_roi_align(input, rois, output_size, spatial_scale,
                                         sampling_ratio, input.dtype == torch.float16)


def script_torchvision_ps_roi_pool(input: Tensor, boxes: Union[Tensor, List[Tensor]],
                                   output_size: BroadcastingList2[int],
                                   spatial_scale: float = 1.0) -> Tensor:
    """``roiops.compat.torchvision.ps_roi_pool`` in TorchScript (tensors only)."""
    rois = _script_rois(boxes).to(input.dtype)
    return torch.ops.roiops.ps_roi_pool(input, rois, output_size, spatial_scale,
                                        input.dtype == torch.float16)
