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

The ops take already-normalized options (``roiops.crop_and_resize`` and friends check the
tensor metadata first and are the public entry points). The CPU kernels run the NumPy API
on zero-copy views of the tensors, which also runs every data-dependent check of docs/errors.md
(non-finite boxes, batch indices out of range) with the NumPy messages.

Devices: the CPU kernels are registered with ``device_types="cpu"``. CUDA tensors run the
Triton kernels of ``roiops.roi_align.cuda`` and ``roiops.crop_and_resize.cuda`` for all six
ops, all deterministic: the forwards, ``roi_align_grad_input`` and
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
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _arrays, _checks
from ..crop_and_resize import api as crop_api
from ..roi_align import api as roi_api

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


def _numpy_dtype(dtype):
    """The NumPy dtype the kernels produce for a torch result dtype (bfloat16 -> float32)."""
    return torch.empty(0, dtype=torch.float32 if dtype == torch.bfloat16 else dtype).numpy().dtype


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


def _result_dtype(dtype):
    """docs/api.md#dtypes: the image's float dtype, float32 for integer images."""
    return dtype if dtype.is_floating_point else torch.float32


# --- crop_and_resize -------------------------------------------------------------------

@torch.library.custom_op("roiops::crop_and_resize", mutates_args=(), device_types="cpu")
def crop_and_resize(image: Tensor, boxes: Tensor, box_indices: Tensor, crop_size: Sequence[int],
                    method: str = "bilinear", extrapolation_value: float = 0.0,
                    data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize` on tensors (float dtype of the image, float32 for ints)."""
    result = crop_api.crop_and_resize(
        _numpy(image), _numpy(boxes), _numpy(box_indices), tuple(crop_size), method=method,
        extrapolation_value=extrapolation_value, data_format=data_format)
    return _tensor(result, _result_dtype(image.dtype))


@crop_and_resize.register_fake
def _(image, boxes, box_indices, crop_size, method="bilinear", extrapolation_value=0.0,
      data_format="NHWC"):
    crop_height, crop_width = crop_size
    if data_format == "NHWC":
        shape = (boxes.shape[0], crop_height, crop_width, image.shape[3])
    else:
        shape = (boxes.shape[0], image.shape[1], crop_height, crop_width)
    return _empty(image, shape, _result_dtype(image.dtype))


@torch.library.custom_op("roiops::crop_and_resize_grad_image", mutates_args=(),
                         device_types="cpu")
def crop_and_resize_grad_image(grads: Tensor, boxes: Tensor, box_indices: Tensor,
                               image_shape: Sequence[int], method: str = "bilinear",
                               dtype: torch.dtype = torch.float32,
                               data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize_grad_image` on tensors; the result has ``dtype``."""
    result = crop_api.crop_and_resize_grad_image(
        _numpy(grads), _numpy(boxes), _numpy(box_indices), tuple(image_shape), method=method,
        dtype=_numpy_dtype(dtype), data_format=data_format)
    return _tensor(result, dtype)


@crop_and_resize_grad_image.register_fake
def _(grads, boxes, box_indices, image_shape, method="bilinear", dtype=torch.float32,
      data_format="NHWC"):
    return _empty(grads, tuple(image_shape), dtype)


@torch.library.custom_op("roiops::crop_and_resize_grad_boxes", mutates_args=(),
                         device_types="cpu")
def crop_and_resize_grad_boxes(grads: Tensor, image: Tensor, boxes: Tensor, box_indices: Tensor,
                               method: str = "bilinear", data_format: str = "NHWC") -> Tensor:
    """:func:`roiops.crop_and_resize_grad_boxes` on tensors: ``[N, 4]``."""
    result = crop_api.crop_and_resize_grad_boxes(
        _numpy(grads), _numpy(image), _numpy(boxes), _numpy(box_indices), method=method,
        data_format=data_format)
    return _tensor(result, _result_dtype(image.dtype))


@crop_and_resize_grad_boxes.register_fake
def _(grads, image, boxes, box_indices, method="bilinear", data_format="NHWC"):
    return _empty(boxes, (boxes.shape[0], 4), _result_dtype(image.dtype))


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

@torch.library.custom_op("roiops::roi_align", mutates_args=(), device_types="cpu")
def roi_align(input: Tensor, rois: Tensor, output_size: Sequence[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False, convention: str = "torchvision",
              roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align` on tensors: ``[K, C, ph, pw]`` of ``input.dtype``."""
    result = roi_api.roi_align(
        _numpy(input), _numpy(rois), tuple(output_size), spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio, aligned=aligned, convention=convention,
        roi_end_mode=roi_end_mode)
    return _tensor(result, input.dtype)


@roi_align.register_fake
def _(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
      convention="torchvision", roi_end_mode=1):
    pooled_height, pooled_width = output_size
    return _empty(input, (rois.shape[0], input.shape[1], pooled_height, pooled_width),
                  input.dtype)


@torch.library.custom_op("roiops::roi_align_grad_input", mutates_args=(), device_types="cpu")
def roi_align_grad_input(grads: Tensor, rois: Tensor, input_shape: Sequence[int],
                         output_size: Sequence[int], spatial_scale: float = 1.0,
                         sampling_ratio: int = -1, aligned: bool = False,
                         convention: str = "torchvision", roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align_grad_input` on tensors: ``input_shape`` of ``grads.dtype``.

    The result is channels_last: the layout the CPU kernel accumulates into without a
    temporary (the values do not depend on it).
    """
    result = roi_api.roi_align_grad_input(
        _numpy(grads), _numpy(rois), tuple(input_shape), tuple(output_size),
        spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=aligned,
        convention=convention, roi_end_mode=roi_end_mode)
    return _tensor(result, grads.dtype, torch.channels_last)


@roi_align_grad_input.register_fake
def _(grads, rois, input_shape, output_size, spatial_scale=1.0, sampling_ratio=-1,
      aligned=False, convention="torchvision", roi_end_mode=1):
    return _empty(grads, tuple(input_shape), grads.dtype, torch.channels_last)


@torch.library.custom_op("roiops::roi_align_grad_boxes", mutates_args=(), device_types="cpu")
def roi_align_grad_boxes(grads: Tensor, input: Tensor, rois: Tensor, output_size: Sequence[int],
                         spatial_scale: float = 1.0, sampling_ratio: int = -1,
                         aligned: bool = False, convention: str = "torchvision",
                         roi_end_mode: int = 1) -> Tensor:
    """:func:`roiops.roi_align_grad_boxes` on tensors: ``[K, 5]`` of ``input.dtype``."""
    result = roi_api.roi_align_grad_boxes(
        _numpy(grads), _numpy(input), _numpy(rois), tuple(output_size),
        spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=aligned,
        convention=convention, roi_end_mode=roi_end_mode)
    return _tensor(result, input.dtype)


@roi_align_grad_boxes.register_fake
def _(grads, input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
      convention="torchvision", roi_end_mode=1):
    return _empty(rois, (rois.shape[0], 5), input.dtype)


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
# Every op's CUDA kernel. triton is imported on the first CUDA call only, so roiops imports
# without it; the data-dependent checks (non-finite rois, batch index range) run on a host
# copy of the rois (K x 5 values, one small transfer) before any launch, with the CPU path's
# messages.

def _metadata_array(tensor):
    """A zero-byte NumPy stand-in with ``tensor``'s shape and dtype, for the shape/dtype checks
    of the NumPy API (they never read values)."""
    import numpy as np
    return np.broadcast_to(np.zeros((), _numpy_dtype(tensor.dtype)), tuple(tensor.shape))


def _roi_indices(rois, batch, options):
    """The checked batch indices (int64, host), as the CPU kernel path computes them."""
    return torch.from_numpy(roi_api.check_rois(_numpy(rois.cpu()), batch, options))


def _crop_indices(boxes, box_indices, batch):
    """The checked box indices (int64, host), as the CPU kernel path computes them."""
    return torch.from_numpy(crop_api.check_boxes(_numpy(boxes.cpu()), _numpy(box_indices.cpu()),
                                                 batch))


def _compute_type(dtype):
    """The NumPy compute type of a torch dtype (docs/api.md#dtypes), for the checks that need it."""
    return _arrays.native_compute_type(_numpy_dtype(dtype))


def _roi_options(output_size, spatial_scale, sampling_ratio, aligned, convention, roi_end_mode):
    return roi_api.Options(tuple(output_size), spatial_scale, sampling_ratio, aligned,
                           convention, roi_end_mode)


def _cuda_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                    aligned=False, convention="torchvision", roi_end_mode=1):
    from ..roi_align import cuda
    options = _roi_options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                           roi_end_mode)
    roi_api.check_input("input", _metadata_array(input))
    indices = _roi_indices(rois, input.shape[0], options)
    shape = roi_api.forward_shape(rois.shape[0], input.shape[1], options)
    roi_api.check_forward_run(options, shape, _numpy_dtype(input.dtype),
                              _compute_type(input.dtype), device=input.device)
    return cuda.forward(input, rois, indices, options)


def _cuda_roi_align_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=False, convention="torchvision",
                               roi_end_mode=1):
    from ..roi_align import cuda
    options = _roi_options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                           roi_end_mode)
    input_shape = roi_api.check_input_shape(input_shape)
    indices = _roi_indices(rois, input_shape[0], options)
    roi_api.check_grads(_metadata_array(grads), rois.shape[0], input_shape[1], options)
    roi_api.check_grad_input_run(options, input_shape, _numpy_dtype(grads.dtype),
                                 _compute_type(grads.dtype), device=grads.device)
    return cuda.grad_input(grads, rois, indices, input_shape, options).contiguous(
        memory_format=torch.channels_last)


def _cuda_crop_and_resize(image, boxes, box_indices, crop_size, method="bilinear",
                          extrapolation_value=0.0, data_format="NHWC"):
    from ..crop_and_resize import cuda
    view = crop_api.check_image("image", _metadata_array(image), data_format)
    indices = _crop_indices(boxes, box_indices, view.shape[0])
    crop_size = _checks.size_pair("crop_size", tuple(crop_size))
    crop_api.method_code(method)
    extrapolation_value = _checks.require_number("extrapolation_value", extrapolation_value)
    out_dtype = _result_dtype(image.dtype)
    shape = crop_api.forward_shape(boxes.shape[0], crop_size, view.shape[3], data_format)
    crop_api.check_forward_run(crop_size, extrapolation_value, shape, _numpy_dtype(out_dtype),
                               _compute_type(image.dtype), column_tables=False,
                               device=image.device)
    return cuda.forward(image, boxes, indices, crop_size, method, extrapolation_value,
                        data_format, out_dtype)


def _cuda_crop_and_resize_grad_image(grads, boxes, box_indices, image_shape, method="bilinear",
                                     dtype=torch.float32, data_format="NHWC"):
    from ..crop_and_resize import cuda
    _checks.require_choice("data_format", data_format, crop_api.DATA_FORMATS)
    shape = crop_api.check_image_shape(image_shape, data_format)
    indices = _crop_indices(boxes, box_indices, shape[0])
    view = crop_api.check_grads(_metadata_array(grads), data_format, boxes.shape[0])
    crop_api.require_same_depth("image_shape", shape[3], "grads", view.shape[3])
    crop_api.method_code(method)
    crop_api.check_grad_image_run(shape, _checks.float_dtype("dtype", _numpy_dtype(dtype)),
                                  data_format, device=grads.device)
    return cuda.grad_image(grads, boxes, indices, image_shape, method, data_format, dtype)


def _cuda_crop_and_resize_grad_boxes(grads, image, boxes, box_indices, method="bilinear",
                                     data_format="NHWC"):
    from ..crop_and_resize import cuda
    view = crop_api.check_image("image", _metadata_array(image), data_format)
    indices = _crop_indices(boxes, box_indices, view.shape[0])
    grads_view = crop_api.check_grads(_metadata_array(grads), data_format, boxes.shape[0])
    crop_api.require_same_depth("grads", grads_view.shape[3], "image", view.shape[3])
    crop_api.method_code(method)
    return cuda.grad_boxes(grads, image, boxes, indices, data_format,
                           _result_dtype(image.dtype))


def _cuda_roi_align_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=False, convention="torchvision",
                               roi_end_mode=1):
    from ..roi_align import cuda
    options = _roi_options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                           roi_end_mode)
    roi_api.check_input("input", _metadata_array(input))
    indices = _roi_indices(rois, input.shape[0], options)
    roi_api.check_grads(_metadata_array(grads), rois.shape[0], input.shape[1], options)
    roi_api.check_compute_type(options, _compute_type(input.dtype))
    return cuda.grad_boxes(grads, input, rois, indices, options)


# Module-level names (not only registrations): the interpreter tests call them on CPU tensors.
roi_align.register_kernel("cuda")(_cuda_roi_align)
roi_align_grad_input.register_kernel("cuda")(_cuda_roi_align_grad_input)
roi_align_grad_boxes.register_kernel("cuda")(_cuda_roi_align_grad_boxes)
crop_and_resize.register_kernel("cuda")(_cuda_crop_and_resize)
crop_and_resize_grad_image.register_kernel("cuda")(_cuda_crop_and_resize_grad_image)
crop_and_resize_grad_boxes.register_kernel("cuda")(_cuda_crop_and_resize_grad_boxes)
