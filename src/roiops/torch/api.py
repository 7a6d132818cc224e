"""The native API (docs/api.md#pytorch) on torch tensors: metadata checks, then the custom ops.

``roiops.crop_and_resize`` and the other native functions hand tensor arguments to the
functions here. They check everything that the tensor metadata decides (kinds, dtypes,
shapes, devices, options) with the NumPy API's messages, in plain Python that
``torch.compile`` traces without graph breaks; the data-dependent checks (non-finite boxes,
batch indices out of range) run inside the CPU kernels, before any work.

Differences from NumPy inputs: bfloat16 is accepted (computed in float32, rounded once), the
result lives on the inputs' device and carries autograd, and ``out=`` is not supported.
"""
import numpy as np
import torch

from .. import _checks
from ..crop_and_resize import api as crop_api
from ..roi_align import api as roi_api
from . import ops

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
IMAGE_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                torch.uint16) + FLOAT_DTYPES


def require_dense(name, tensor):
    """TypeError for a sparse (or other non-strided) tensor: the kernels read strided memory."""
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {tensor.layout} "
                        f"(call .to_dense() first)")


def require_tensors(**named):
    """TypeError unless every array argument is a dense tensor; ValueError for mixed devices."""
    for name, value in named.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor like the other array arguments, "
                            f"got {type(value).__name__}")
        require_dense(name, value)
    devices = {value.device for value in named.values()}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {value.device}" for name, value in named.items())
        raise ValueError(f"tensors must be on one device, got {where}")


def float_dtype(name, value):
    """A torch float dtype from a torch dtype or anything ``np.dtype`` accepts."""
    if isinstance(value, torch.dtype) and value in FLOAT_DTYPES:
        return value
    return torch.from_numpy(np.empty(0, _checks.float_dtype(name, value))).dtype


def _no_out(out):
    if out is not None:
        raise ValueError(f"out is supported for NumPy arrays only, got {type(out).__name__} "
                         f"(tensor results are always fresh tensors)")


def check_image(name, image, data_format, dtypes=IMAGE_DTYPES):
    """As ``crop_and_resize.api.check_image``, for a tensor; returns (batch, depth)."""
    _checks.require_choice("data_format", data_format, crop_api.DATA_FORMATS)
    _checks.require_dtype(name, image, dtypes)
    nhwc = data_format == "NHWC"
    layout = ("batch", "height", "width", "depth") if nhwc else (
        "batch", "depth", "height", "width")
    _checks.require_shape(name, image, layout)
    height, width = image.shape[1:3] if nhwc else image.shape[2:4]
    _checks.require_positive_image_size(name, height, width)
    return image.shape[0], image.shape[3] if nhwc else image.shape[1]


def check_boxes(boxes, box_indices, indices_name="box_indices"):
    """As ``crop_and_resize.api.check_boxes`` without the data checks (run by the kernel)."""
    _checks.require_dtype("boxes", boxes, FLOAT_DTYPES)
    _checks.require_shape("boxes", boxes, ("num_boxes", 4))
    if box_indices.dtype.is_floating_point or box_indices.dtype.is_complex or (
            box_indices.dtype == torch.bool):
        raise TypeError(f"{indices_name} must have an integer dtype, got {box_indices.dtype}")
    _checks.require_shape(indices_name, box_indices, ("num_boxes",))
    _checks.require_length(indices_name, box_indices, boxes.shape[0], "box")


def check_grads(grads, data_format, num_boxes):
    """As ``crop_and_resize.api.check_grads``, for a tensor; returns the depth."""
    _checks.require_dtype("grads", grads, FLOAT_DTYPES)
    nhwc = data_format == "NHWC"
    layout = ("num_boxes", "crop_height", "crop_width", "depth") if nhwc else (
        "num_boxes", "depth", "crop_height", "crop_width")
    _checks.require_shape("grads", grads, layout)
    crop_height, crop_width = grads.shape[1:3] if nhwc else grads.shape[2:4]
    if crop_height < 1 or crop_width < 1:
        raise ValueError(
            f"grads must have crop height and width >= 1, got shape {tuple(grads.shape)}")
    _checks.require_length("grads", grads, num_boxes, "box")
    return grads.shape[3] if nhwc else grads.shape[1]


def crop_and_resize(image, boxes, box_indices, crop_size, *, method="bilinear",
                    extrapolation_value=0.0, data_format="NHWC", out=None):
    """:func:`roiops.crop_and_resize` for tensors (differentiable w.r.t. image and boxes)."""
    _no_out(out)
    require_tensors(image=image, boxes=boxes, box_indices=box_indices)
    check_image("image", image, data_format)
    check_boxes(boxes, box_indices)
    crop_size = _checks.size_pair("crop_size", crop_size)
    crop_api.method_code(method)
    extrapolation_value = _checks.require_number("extrapolation_value", extrapolation_value)
    return ops.crop_and_resize(image, boxes, box_indices, crop_size, method,
                               extrapolation_value, data_format)


def crop_and_resize_grad_image(grads, boxes, box_indices, image_shape, *, method="bilinear",
                               dtype=None, data_format="NHWC"):
    """:func:`roiops.crop_and_resize_grad_image` for tensors."""
    require_tensors(grads=grads, boxes=boxes, box_indices=box_indices)
    _checks.require_choice("data_format", data_format, crop_api.DATA_FORMATS)
    shape = crop_api.check_image_shape(image_shape, data_format)
    check_boxes(boxes, box_indices)
    depth = check_grads(grads, data_format, boxes.shape[0])
    crop_api.require_same_depth("image_shape", shape[3], "grads", depth)
    crop_api.method_code(method)
    dtype = grads.dtype if dtype is None else float_dtype("dtype", dtype)
    dims = [int(v) for v in image_shape]  # validated above, in data_format order
    return ops.crop_and_resize_grad_image(grads, boxes, box_indices, dims, method, dtype,
                                          data_format)


def crop_and_resize_grad_boxes(grads, image, boxes, box_indices, *, method="bilinear",
                               data_format="NHWC"):
    """:func:`roiops.crop_and_resize_grad_boxes` for tensors."""
    require_tensors(grads=grads, image=image, boxes=boxes, box_indices=box_indices)
    _, depth = check_image("image", image, data_format)
    check_boxes(boxes, box_indices)
    grads_depth = check_grads(grads, data_format, boxes.shape[0])
    crop_api.require_same_depth("grads", grads_depth, "image", depth)
    crop_api.method_code(method)
    return ops.crop_and_resize_grad_boxes(grads, image, boxes, box_indices, method, data_format)


def check_input(name, input, dtypes=FLOAT_DTYPES):
    """As ``roi_align.api.check_input``, for a tensor."""
    _checks.require_dtype(name, input, dtypes)
    _checks.require_shape(name, input, ("batch", "channels", "height", "width"))
    _checks.require_positive_image_size(name, input.shape[2], input.shape[3])


def check_rois(rois, dtypes=FLOAT_DTYPES):
    """As ``roi_align.api.check_rois`` without the data checks (run by the kernel)."""
    _checks.require_dtype("rois", rois, dtypes)
    _checks.require_shape("rois", rois, ("num_rois", 5))


def check_roi_grads(grads, num_rois, channels, options):
    _checks.require_dtype("grads", grads, FLOAT_DTYPES)
    expected = (num_rois, channels, options.pooled_height, options.pooled_width)
    if tuple(grads.shape) != expected:
        raise ValueError(f"grads must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {expected}, got {tuple(grads.shape)}")


def _op_options(options, convention):
    """The op arguments after ``output_size`` from validated ``roi_align.api.Options``."""
    return ((options.pooled_height, options.pooled_width), options.spatial_scale,
            options.sampling_ratio, options.aligned, convention, options.roi_end_mode)


def roi_align(input, rois, output_size, *, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              convention="torchvision", roi_end_mode=1, out=None):
    """:func:`roiops.roi_align` for tensors (differentiable w.r.t. input and rois)."""
    options = roi_api.Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                              roi_end_mode)
    _no_out(out)
    require_tensors(input=input, rois=rois)
    check_input("input", input)
    check_rois(rois)
    return ops.roi_align(input, rois, *_op_options(options, convention))


def roi_align_grad_input(grads, rois, input_shape, output_size, *, spatial_scale=1.0,
                         sampling_ratio=-1, aligned=False, convention="torchvision",
                         roi_end_mode=1):
    """:func:`roiops.roi_align_grad_input` for tensors."""
    options = roi_api.Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                              roi_end_mode)
    require_tensors(grads=grads, rois=rois)
    shape = roi_api.check_input_shape(input_shape)
    check_rois(rois)
    check_roi_grads(grads, rois.shape[0], shape[1], options)
    size, *rest = _op_options(options, convention)
    return ops.roi_align_grad_input(grads, rois, list(shape), size, *rest)


def roi_align_grad_boxes(grads, input, rois, output_size, *, spatial_scale=1.0,
                         sampling_ratio=-1, aligned=False, convention="torchvision",
                         roi_end_mode=1):
    """:func:`roiops.roi_align_grad_boxes` for tensors."""
    options = roi_api.Options(output_size, spatial_scale, sampling_ratio, aligned, convention,
                              roi_end_mode)
    require_tensors(grads=grads, input=input, rois=rois)
    check_input("input", input)
    check_rois(rois)
    check_roi_grads(grads, rois.shape[0], input.shape[1], options)
    return ops.roi_align_grad_boxes(grads, input, rois, *_op_options(options, convention))
