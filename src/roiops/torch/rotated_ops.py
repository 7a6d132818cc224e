"""Rotated RoI Align as ``torch.library`` custom ops in the namespace ``roiops``.

=================================  ==================================================
``roi_align_rotated``              ``[N,C,H,W]``, rois ``[K,6]`` -> ``[K,C,ph,pw]``
``roi_align_rotated_grad_input``   grads ``[K,C,ph,pw]`` -> ``input_shape``
``roi_align_rotated_grad_boxes``   grads, input -> ``[K,6]`` (column 0 is zero)
=================================  ==================================================

The same contract as the ops of :mod:`roiops.torch.ops` (registered next to them, in their
namespace, by ``import roiops.torch``): every kernel (CPU, CUDA, fake) runs the validator of
``roiops.roi_align_rotated.checks`` on its arguments, the value checks run next to the
kernels, autograd for the input and the rois, no double backward, autocast kernels. CUDA
tensors run the Triton kernels of ``roiops.roi_align_rotated.cuda``; their per-roi geometry
(angles, grids) is computed on the host by the CPU kernels' own function, from a copy of the
rois (``K x 6`` values), so both devices share one definition of it.

Example:
    >>> import torch, roiops.torch.rotated_ops as ops
    >>> x = torch.arange(25.).reshape(1, 1, 5, 5)
    >>> ops.roi_align_rotated(x, torch.tensor([[0., 2, 2, 2, 2, 90]]), [2, 2], 1.0, 1, True,
    ...                       False, "detectron2")[0, 0]
    tensor([[11.,  6.],
            [12.,  7.]])
"""
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.jit.annotations import BroadcastingList2

from ..compat import detectron2 as detectron2_compat
from ..compat import mmcv as mmcv_compat
from ..roi_align_rotated import api as rotated_api
from ..roi_align_rotated import checks as rotated_checks
from .ops import _cuda_kernels, _empty, _no_double_backward, _numpy, _tensor, register_autocast
from .tensors import TORCH

__all__ = ["roi_align_rotated", "roi_align_rotated_grad_input", "roi_align_rotated_grad_boxes",
           "Detectron2ROIAlignRotated", "MmcvRoIAlignRotated", "script_roi_align_rotated",
           "script_detectron2_roi_align_rotated", "script_mmcv_roi_align_rotated"]


def _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention):
    return rotated_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                  clockwise, convention)


def _host_indices(rois, call):
    """The host's value checks (NumPy rois): the int64 batch indices."""
    return rotated_checks.check_roi_values(rois, call.input_shape[0], call)


@torch.library.custom_op("roiops::roi_align_rotated", mutates_args=(), device_types="cpu")
def roi_align_rotated(input: Tensor, rois: Tensor, output_size: Sequence[int],
                      spatial_scale: float = 1.0, sampling_ratio: int = 0, aligned: bool = True,
                      clockwise: bool = False, convention: str = "detectron2") -> Tensor:
    """:func:`roiops.roi_align_rotated` on tensors: ``[K, C, ph, pw]`` of ``input.dtype``."""
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_forward(TORCH, input, rois, options)
    host_rois = _numpy(rois)
    indices = _host_indices(host_rois, call)
    result = rotated_api.run_forward(call, _numpy(input), host_rois, indices)
    return _tensor(result, input.dtype)


@roi_align_rotated.register_fake
def _(input, rois, output_size, spatial_scale=1.0, sampling_ratio=0, aligned=True,
      clockwise=False, convention="detectron2"):
    call = rotated_checks.check_forward(TORCH, input, rois, _options(
        output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention))
    return _empty(input, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::roi_align_rotated_grad_input", mutates_args=(),
                         device_types="cpu")
def roi_align_rotated_grad_input(grads: Tensor, rois: Tensor, input_shape: Sequence[int],
                                 output_size: Sequence[int], spatial_scale: float = 1.0,
                                 sampling_ratio: int = 0, aligned: bool = True,
                                 clockwise: bool = False,
                                 convention: str = "detectron2") -> Tensor:
    """:func:`roiops.roi_align_rotated_grad_input` on tensors: ``input_shape`` of
    ``grads.dtype``."""
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    host_rois = _numpy(rois)
    indices = _host_indices(host_rois, call)
    result = rotated_api.run_grad_input(call, _numpy(grads), host_rois, indices)
    return _tensor(result, grads.dtype)


@roi_align_rotated_grad_input.register_fake
def _(grads, rois, input_shape, output_size, spatial_scale=1.0, sampling_ratio=0,
      aligned=True, clockwise=False, convention="detectron2"):
    call = rotated_checks.check_grad_input(TORCH, grads, rois, input_shape, _options(
        output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention))
    return _empty(grads, call.result_shape, call.out_dtype)


@torch.library.custom_op("roiops::roi_align_rotated_grad_boxes", mutates_args=(),
                         device_types="cpu")
def roi_align_rotated_grad_boxes(grads: Tensor, input: Tensor, rois: Tensor,
                                 output_size: Sequence[int], spatial_scale: float = 1.0,
                                 sampling_ratio: int = 0, aligned: bool = True,
                                 clockwise: bool = False,
                                 convention: str = "detectron2") -> Tensor:
    """:func:`roiops.roi_align_rotated_grad_boxes` on tensors: ``[K, 6]`` of
    ``input.dtype``."""
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    host_rois = _numpy(rois)
    indices = _host_indices(host_rois, call)
    result = rotated_api.run_grad_boxes(call, _numpy(grads), _numpy(input), host_rois, indices)
    return _tensor(result, input.dtype)


@roi_align_rotated_grad_boxes.register_fake
def _(grads, input, rois, output_size, spatial_scale=1.0, sampling_ratio=0, aligned=True,
      clockwise=False, convention="detectron2"):
    call = rotated_checks.check_grad_boxes(TORCH, grads, input, rois, _options(
        output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention))
    return _empty(rois, call.result_shape, call.out_dtype)


def _setup(ctx, inputs, output):
    input, rois, *options = inputs
    ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, rois)
    ctx.input_shape, ctx.options = input.shape, options


def _backward(ctx, grad):
    input, rois = ctx.saved_tensors
    output_size, *options = ctx.options
    grad_input = grad_rois = None
    if ctx.needs_input_grad[0]:
        grad_input = roi_align_rotated_grad_input(grad, rois, ctx.input_shape, output_size,
                                                  *options)
    if ctx.needs_input_grad[1]:
        grad_rois = roi_align_rotated_grad_boxes(grad, input, rois, output_size,
                                                 *options).to(rois.dtype)
    return grad_input, grad_rois, None, None, None, None, None, None


roi_align_rotated.register_autograd(_backward, setup_context=_setup)
for _name, _op in (("roi_align_rotated_grad_input", roi_align_rotated_grad_input),
                   ("roi_align_rotated_grad_boxes", roi_align_rotated_grad_boxes)):
    _op.register_autograd(_no_double_backward(_name),
                          setup_context=lambda ctx, inputs, output: None)
del _name, _op


# --- CUDA: Triton kernels ------------------------------------------------------------------

def _device_call(call, rois):
    """The host's value checks and the kernels' geometry, from a host copy of the rois:
    ``(indices on the rois' device, geometry)``."""
    host_rois = _numpy(rois.cpu())
    indices = _host_indices(host_rois, call)
    geo = rotated_api.geometry(call, host_rois)
    return torch.from_numpy(indices).to(rois.device), geo


def _cuda_roi_align_rotated(input, rois, output_size, spatial_scale=1.0, sampling_ratio=0,
                            aligned=True, clockwise=False, convention="detectron2"):
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_forward(TORCH, input, rois, options)
    rotated_checks.check_forward_run(call, device=input.device)
    indices, geo = _device_call(call, rois)
    return _cuda_kernels("roi_align_rotated").forward(input, indices, geo, call)


def _cuda_roi_align_rotated_grad_input(grads, rois, input_shape, output_size,
                                       spatial_scale=1.0, sampling_ratio=0, aligned=True,
                                       clockwise=False, convention="detectron2"):
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    rotated_checks.check_grad_input_run(call, device=grads.device)
    indices, geo = _device_call(call, rois)
    return _cuda_kernels("roi_align_rotated").grad_input(grads, indices, geo, call)


def _cuda_roi_align_rotated_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                                       sampling_ratio=0, aligned=True, clockwise=False,
                                       convention="detectron2"):
    options = _options(output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                       convention)
    call = rotated_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    rotated_checks.check_compute_type(call)
    indices, geo = _device_call(call, rois)
    return _cuda_kernels("roi_align_rotated").grad_boxes(grads, input, indices, geo, call)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
roi_align_rotated.register_kernel("cuda")(_cuda_roi_align_rotated)
roi_align_rotated_grad_input.register_kernel("cuda")(_cuda_roi_align_rotated_grad_input)
roi_align_rotated_grad_boxes.register_kernel("cuda")(_cuda_roi_align_rotated_grad_boxes)
for _name, _result_like in (("roi_align_rotated", 0), ("roi_align_rotated_grad_input", 0),
                            ("roi_align_rotated_grad_boxes", 1)):
    register_autocast(_name, _result_like)
del _name, _result_like


# --- TorchScript twins and the compat modules as torch.nn.Module ---------------------------
#
# torch.jit.script compiles these in place of the public functions (roiops._dispatch.script_as,
# as roiops.torch.tracing does for roi_align); the op checks its arguments itself.

def script_roi_align_rotated(input: Tensor, rois: Tensor, output_size: BroadcastingList2[int],
                             spatial_scale: float = 1.0, sampling_ratio: int = 0,
                             aligned: bool = True, clockwise: bool = False,
                             convention: str = "detectron2") -> Tensor:
    """``roiops.roi_align_rotated`` in TorchScript (tensors only)."""
    return torch.ops.roiops.roi_align_rotated(input, rois, output_size, spatial_scale,
                                              sampling_ratio, aligned, clockwise, convention)


def _float_scale(spatial_scale: float) -> float:
    """The frameworks' C ``float`` spatial scale."""
    return float(torch.tensor(spatial_scale, dtype=torch.float32).item())


def script_detectron2_roi_align_rotated(input: Tensor, rois: Tensor,
                                        output_size: BroadcastingList2[int],
                                        spatial_scale: float, sampling_ratio: int) -> Tensor:
    """``roiops.compat.detectron2.roi_align_rotated`` in TorchScript."""
    return torch.ops.roiops.roi_align_rotated(input, rois, output_size,
                                              _float_scale(spatial_scale), sampling_ratio,
                                              True, False, "detectron2")


def script_mmcv_roi_align_rotated(input: Tensor, rois: Tensor,
                                  output_size: BroadcastingList2[int], spatial_scale: float,
                                  sampling_ratio: int = 0, aligned: bool = True,
                                  clockwise: bool = False) -> Tensor:
    """``roiops.compat.mmcv.roi_align_rotated`` in TorchScript; float16 (mmcv's half
    arithmetic, on the host) is not available there."""
    if input.dtype == torch.float16:
        raise RuntimeError("roiops.compat.mmcv.roi_align_rotated computes float16 on the host "
                           "(mmcv's half arithmetic), which TorchScript cannot run")
    return torch.ops.roiops.roi_align_rotated(input, rois, output_size,
                                              _float_scale(spatial_scale), sampling_ratio,
                                              aligned, clockwise, "mmcv")


class Detectron2ROIAlignRotated(detectron2_compat.ROIAlignRotated, torch.nn.Module):
    """``roiops.compat.detectron2.ROIAlignRotated`` as a ``torch.nn.Module`` (what it is
    whenever torch is installed: its constructor returns one); scriptable."""

    __call__ = torch.nn.Module.__call__
    spatial_scale: float  # for TorchScript, which would type an int scale as int
    sampling_ratio: int

    # TorchScript compiles these annotations (tensors); NumPy arrays still pass at run time.
    def forward(self, input: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        return detectron2_compat.roi_align_rotated(input, rois, self.output_size,
                                                   self.spatial_scale, self.sampling_ratio)


class MmcvRoIAlignRotated(mmcv_compat.RoIAlignRotated, torch.nn.Module):
    """``roiops.compat.mmcv.RoIAlignRotated`` as a ``torch.nn.Module``; scriptable."""

    __call__ = torch.nn.Module.__call__
    spatial_scale: float
    sampling_ratio: int
    aligned: bool
    clockwise: bool

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        return mmcv_compat.roi_align_rotated(input, rois, self.output_size,
                                             self.spatial_scale, self.sampling_ratio,
                                             self.aligned, self.clockwise)
