"""The native API (docs/api.md#pytorch) on torch tensors: the checks, then the custom ops.

``roiops.crop_and_resize`` and the other native functions hand tensor arguments to the
functions here (through ``roiops._dispatch``). They run the operators' validators
(``roiops.<op>.checks``) with the tensor kind :data:`TORCH`: everything that the metadata
decides (kinds, dtypes, shapes, devices, options), with the NumPy API's messages, in plain
Python that ``torch.compile`` traces without graph breaks. The custom ops then check the
values (non-finite boxes, batch indices out of range) next to their kernels, once.

Differences from NumPy inputs: bfloat16 is accepted (computed in float32, rounded once), the
result lives on the inputs' device and carries autograd, and ``out=`` is not supported.
"""
from ..crop_and_resize import checks as crop_checks
from ..roi_align import checks as roi_checks
from ..roi_align_rotated import checks as rotated_checks
from ..roi_pool import checks as pool_checks
from . import ops, rotated_ops
from . import roi_pool_ops as pool_ops
from .tensors import TORCH


def _no_out(out):
    if out is not None:
        raise ValueError(f"out is supported for NumPy arrays only, got {type(out).__name__} "
                         f"(tensor results are always fresh tensors)")


def crop_and_resize(image, boxes, box_indices, crop_size, *, method="bilinear",
                    extrapolation_value=0.0, data_format="NHWC", out=None):
    """:func:`roiops.crop_and_resize` for tensors (differentiable w.r.t. image and boxes)."""
    _no_out(out)
    call = crop_checks.check_forward(TORCH, image, boxes, box_indices, crop_size, method,
                                     extrapolation_value, data_format)
    return ops.crop_and_resize(image, boxes, box_indices, list(call.crop_size), method,
                               call.extrapolation_value, data_format)


def crop_and_resize_grad_image(grads, boxes, box_indices, image_shape, *, method="bilinear",
                               dtype=None, data_format="NHWC"):
    """:func:`roiops.crop_and_resize_grad_image` for tensors."""
    call = crop_checks.check_grad_image(TORCH, grads, boxes, box_indices, image_shape, method,
                                        dtype, data_format)
    return ops.crop_and_resize_grad_image(grads, boxes, box_indices, list(call.result_shape),
                                          method, call.out_dtype, data_format)


def crop_and_resize_grad_boxes(grads, image, boxes, box_indices, *, method="bilinear",
                               data_format="NHWC"):
    """:func:`roiops.crop_and_resize_grad_boxes` for tensors."""
    crop_checks.check_grad_boxes(TORCH, grads, image, boxes, box_indices, method, data_format)
    return ops.crop_and_resize_grad_boxes(grads, image, boxes, box_indices, method, data_format)


def roi_align(input, rois, output_size, *, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              convention="torchvision", roi_end_mode=1, out=None):
    """:func:`roiops.roi_align` for tensors (differentiable w.r.t. input and rois)."""
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    _no_out(out)
    roi_checks.check_forward(TORCH, input, rois, options)
    return ops.roi_align(input, rois, *options.op_args())


def roi_align_grad_input(grads, rois, input_shape, output_size, *, spatial_scale=1.0,
                         sampling_ratio=-1, aligned=False, convention="torchvision",
                         roi_end_mode=1):
    """:func:`roiops.roi_align_grad_input` for tensors."""
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    call = roi_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return ops.roi_align_grad_input(grads, rois, list(call.input_shape), *options.op_args())


def roi_align_grad_boxes(grads, input, rois, output_size, *, spatial_scale=1.0,
                         sampling_ratio=-1, aligned=False, convention="torchvision",
                         roi_end_mode=1):
    """:func:`roiops.roi_align_grad_boxes` for tensors."""
    options = roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                 convention, roi_end_mode)
    roi_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    return ops.roi_align_grad_boxes(grads, input, rois, *options.op_args())


def roi_pool(input, rois, output_size, *, spatial_scale=1.0, return_argmax=False, out=None):
    """:func:`roiops.roi_pool` for tensors (differentiable w.r.t. the input)."""
    options = pool_checks.Options(output_size, spatial_scale)
    _no_out(out)
    pool_checks.check_forward(TORCH, input, rois, options)
    result, argmax = pool_ops.roi_pool(input, rois, *options.op_args())
    return (result, argmax) if return_argmax else result


def roi_pool_grad_input(grads, argmax, rois, input_shape):
    """:func:`roiops.roi_pool_grad_input` for tensors."""
    call = pool_checks.check_grad_input(TORCH, grads, argmax, rois, input_shape)
    return pool_ops.roi_pool_grad_input(grads, argmax, rois, list(call.input_shape))


def roi_align_rotated(input, rois, output_size, *, spatial_scale=1.0, sampling_ratio=0,
                      aligned=True, clockwise=False, convention="detectron2"):
    """:func:`roiops.roi_align_rotated` for tensors (differentiable w.r.t. input and rois)."""
    options = rotated_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                     clockwise, convention)
    rotated_checks.check_forward(TORCH, input, rois, options)
    return rotated_ops.roi_align_rotated(input, rois, *options.op_args())


def roi_align_rotated_grad_input(grads, rois, input_shape, output_size, *, spatial_scale=1.0,
                                 sampling_ratio=0, aligned=True, clockwise=False,
                                 convention="detectron2"):
    """:func:`roiops.roi_align_rotated_grad_input` for tensors."""
    options = rotated_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                     clockwise, convention)
    call = rotated_checks.check_grad_input(TORCH, grads, rois, input_shape, options)
    return rotated_ops.roi_align_rotated_grad_input(grads, rois, list(call.input_shape),
                                                    *options.op_args())


def roi_align_rotated_grad_boxes(grads, input, rois, output_size, *, spatial_scale=1.0,
                                 sampling_ratio=0, aligned=True, clockwise=False,
                                 convention="detectron2"):
    """:func:`roiops.roi_align_rotated_grad_boxes` for tensors."""
    options = rotated_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                     clockwise, convention)
    rotated_checks.check_grad_boxes(TORCH, grads, input, rois, options)
    return rotated_ops.roi_align_rotated_grad_boxes(grads, input, rois, *options.op_args())
