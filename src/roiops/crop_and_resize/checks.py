"""The one validator of crop_and_resize and its gradients (docs/errors.md).

Every entry point (the NumPy functions, the torch functions, the compat layers of every
framework) calls :func:`check_forward`, :func:`check_grad_image` or :func:`check_grad_boxes`
with the kind of its arrays (``roiops._checks.NUMPY`` or torch's), its framework's argument
names (:class:`Names`) and dtype rule; they read metadata only and return a :class:`Crop`
record. The values (finite boxes, box indices in the batch) are checked next to the kernels
that read them: on the host by :func:`check_box_values`, on a CUDA device by
``roiops.torch.ops`` (same rule, same messages).
"""
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays, _checks

METHODS = ("bilinear", "nearest", "bilinear_v2")
METHOD_CODES = {name: code for code, name in enumerate(METHODS)}
DATA_FORMATS = ("NHWC", "NCHW")


class Names(NamedTuple):
    """The arguments' names in messages: each framework's spelling."""
    image: str = "image"
    boxes: str = "boxes"
    indices: str = "box_indices"
    grads: str = "grads"
    image_shape: str = "image_shape"
    dtype: str = "dtype"


class Dtypes(NamedTuple):
    """A framework's dtype rule, dtypes by name (``None``: the native rule)."""
    image: tuple | None = None
    boxes: tuple | None = None
    indices: tuple | None = None  # None: any integer dtype
    grads: tuple | None = None


NATIVE, NATIVE_DTYPES = Names(), Dtypes()


class Crop(NamedTuple):
    """A checked call: what the kernels and the result allocation need."""
    image_shape: tuple  # (batch, height, width, depth) whatever the data format
    num_boxes: int
    crop_size: tuple  # (crop_height, crop_width)
    method: str
    data_format: str
    out_dtype: Any  # the result's dtype, of the arrays' kind
    kernel_dtype: np.dtype  # the NumPy dtype the kernels write it as (bfloat16: float32)
    F: type  # np.float32 or np.float64, the compute type
    result_shape: tuple
    extrapolation_value: float = 0.0

    def computed_in(self, F, out_dtype):
        """This call computed in ``F`` into a NumPy ``out_dtype`` result (a framework's rule)."""
        out_dtype = np.dtype(out_dtype)
        return self._replace(F=F, out_dtype=out_dtype, kernel_dtype=out_dtype)


def method_code(method, allowed=METHODS):
    """The kernels' code of ``method``; ValueError unless it is one of ``allowed``."""
    _checks.require_choice("method", method, allowed)
    return METHOD_CODES[method]


def nhwc(shape, data_format):
    """A 4-D shape given in ``data_format`` order, as (B, H, W, D)."""
    return tuple(shape) if data_format == "NHWC" else (shape[0], shape[2], shape[3], shape[1])


def in_format(shape, data_format):
    """A (B, H, W, D) shape in ``data_format`` order."""
    return tuple(shape) if data_format == "NHWC" else (shape[0], shape[3], shape[1], shape[2])


def _image(kind, name, image, data_format, dtypes):
    """The image's (B, H, W, D)."""
    _checks.require_dtype(name, image, kind.image_dtypes if dtypes is None
                          else kind.dtypes(dtypes))
    layout = ("batch", "height", "width", "depth") if data_format == "NHWC" else (
        "batch", "depth", "height", "width")
    _checks.require_shape(name, image, layout)
    shape = nhwc(image.shape, data_format)
    _checks.require_positive_image_size(name, shape[1], shape[2])
    return shape


def _boxes(kind, boxes, box_indices, names, dtypes):
    """The number of boxes."""
    _checks.require_dtype(names.boxes, boxes, kind.float_dtypes if dtypes.boxes is None
                          else kind.dtypes(dtypes.boxes))
    _checks.require_shape(names.boxes, boxes, ("num_boxes", 4))
    if dtypes.indices is None:
        _checks.require_integer_dtype(kind, names.indices, box_indices)
    else:
        _checks.require_dtype(names.indices, box_indices, kind.dtypes(dtypes.indices))
    _checks.require_shape(names.indices, box_indices, ("num_boxes",))
    _checks.require_length(names.indices, box_indices, boxes.shape[0], "box")
    return boxes.shape[0]


def _grads(kind, grads, data_format, num_boxes, names, dtypes):
    """The grads' (N, crop_height, crop_width, D)."""
    _checks.require_dtype(names.grads, grads, kind.float_dtypes if dtypes.grads is None
                          else kind.dtypes(dtypes.grads))
    layout = ("num_boxes", "crop_height", "crop_width", "depth") if data_format == "NHWC" else (
        "num_boxes", "depth", "crop_height", "crop_width")
    _checks.require_shape(names.grads, grads, layout)
    shape = nhwc(grads.shape, data_format)
    if shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"{names.grads} must have crop height and width >= 1, got shape "
                         f"{tuple(grads.shape)}")
    _checks.require_length(names.grads, grads, num_boxes, "box")
    return shape


def check_image_shape(image_shape, data_format, name="image_shape"):
    """The image shape as NHWC Python ints (``name`` is the argument's name in messages)."""
    order = "(B, H, W, D)" if data_format == "NHWC" else "(B, D, H, W)"
    shape = nhwc(_checks.array_shape(name, image_shape, order), data_format)
    _checks.require_positive_image_size(name, shape[1], shape[2])
    return shape


def check_forward(kind, image, boxes, box_indices, crop_size, method, extrapolation_value,
                  data_format="NHWC", names=NATIVE, dtypes=NATIVE_DTYPES, methods=METHODS):
    """Check a forward call's metadata and options; the :class:`Crop` record."""
    kind.require({names.image: image, names.boxes: boxes, names.indices: box_indices})
    _checks.require_choice("data_format", data_format, DATA_FORMATS)
    _image(kind, names.image, image, data_format, dtypes.image)
    num_boxes = _boxes(kind, boxes, box_indices, names, dtypes)
    crop_size = _checks.size_pair("crop_size", crop_size)
    method_code(method, methods)
    extrapolation_value = _checks.require_number("extrapolation_value", extrapolation_value)
    return forward_call(kind, image, num_boxes, crop_size, method, extrapolation_value,
                        data_format)


def forward_call(kind, image, num_boxes, crop_size, method, extrapolation_value, data_format):
    """The record of a forward whose arguments were checked; derives, checks nothing."""
    image_shape = nhwc(image.shape, data_format)
    return _record(kind, image_shape, num_boxes, crop_size, method, data_format,
                   kind.result_dtype(image.dtype), image.dtype,
                   in_format((num_boxes, *crop_size, image_shape[3]), data_format),
                   extrapolation_value)


def _record(kind, image_shape, num_boxes, crop_size, method, data_format, out_dtype,
            compute_from, result_shape, extrapolation_value=0.0):
    """The record; ``F`` is the compute type of the dtype ``compute_from``."""
    return Crop(image_shape, num_boxes, tuple(crop_size), method, data_format, out_dtype,
                kind.numpy_dtype(out_dtype),
                _arrays.native_compute_type(kind.numpy_dtype(compute_from)), result_shape,
                extrapolation_value)


def check_grad_image(kind, grads, boxes, box_indices, image_shape, method, dtype=None,
                     data_format="NHWC", names=NATIVE, dtypes=NATIVE_DTYPES, methods=METHODS):
    """Check an image gradient call; ``dtype`` is the result's (a float dtype of any
    spelling; ``None``: the grads' dtype), computed in float64 for float64, else float32."""
    kind.require({names.grads: grads, names.boxes: boxes, names.indices: box_indices})
    _checks.require_choice("data_format", data_format, DATA_FORMATS)
    shape = check_image_shape(image_shape, data_format, names.image_shape)
    num_boxes = _boxes(kind, boxes, box_indices, names, dtypes)
    grads_shape = _grads(kind, grads, data_format, num_boxes, names, dtypes)
    _checks.require_same_depth(names.image_shape, shape[3], names.grads, grads_shape[3])
    method_code(method, methods)
    dtype = grads.dtype if dtype is None else kind.float_dtype(names.dtype, dtype)
    return grad_image_call(kind, grads, num_boxes, in_format(shape, data_format), method, dtype,
                           data_format)


def grad_image_call(kind, grads, num_boxes, image_shape, method, dtype, data_format):
    """The record of a checked image gradient (``image_shape`` in ``data_format`` order);
    derives, checks nothing."""
    return _record(kind, nhwc(image_shape, data_format), num_boxes,
                   nhwc(grads.shape, data_format)[1:3], method, data_format, dtype, dtype,
                   tuple(image_shape))


def check_grad_boxes(kind, grads, image, boxes, box_indices, method, data_format="NHWC",
                     names=NATIVE, dtypes=NATIVE_DTYPES, methods=METHODS):
    """Check a box gradient call; the result is ``[N, 4]`` in the forward's dtype."""
    kind.require({names.grads: grads, names.image: image, names.boxes: boxes,
                  names.indices: box_indices})
    _checks.require_choice("data_format", data_format, DATA_FORMATS)
    image_shape = _image(kind, names.image, image, data_format, dtypes.image)
    num_boxes = _boxes(kind, boxes, box_indices, names, dtypes)
    grads_shape = _grads(kind, grads, data_format, num_boxes, names, dtypes)
    _checks.require_same_depth(names.grads, grads_shape[3], names.image, image_shape[3])
    method_code(method, methods)
    return grad_boxes_call(kind, grads, image, num_boxes, method, data_format)


def grad_boxes_call(kind, grads, image, num_boxes, method, data_format):
    """The record of a checked box gradient; derives, checks nothing."""
    return _record(kind, nhwc(image.shape, data_format), num_boxes,
                   nhwc(grads.shape, data_format)[1:3], method, data_format,
                   kind.result_dtype(image.dtype), image.dtype, (num_boxes, 4))


def check_box_values(boxes, box_indices, batch, names=NATIVE):
    """The host's value checks (NumPy arrays): finite boxes, then box indices in
    ``[0, batch)`` (docs/decisions.md#non-finite-boxes); the indices as int64."""
    _checks.require_finite_rows(names.boxes, boxes)
    # On the values given: a uint64 2**63 would wrap to a negative int64.
    _checks.require_indices_in_range(names.indices, box_indices, batch)
    return box_indices.astype(np.int64)


def check_forward_run(call, fresh_result=True, column_tables=True, device=None):
    """The checks that need the compute type and the result size, before allocating:
    ``extrapolation_value`` in ``F``; the memory of the result (unless written into
    ``out``) and of the CPU kernel's per-box column tables (two int64 indices and a weight
    in ``F`` per crop column)."""
    _checks.representable("extrapolation_value", call.extrapolation_value, call.F)
    buffers = [(call.result_shape, call.kernel_dtype.itemsize)] if fresh_result else []
    if column_tables and call.num_boxes and call.image_shape[3]:
        buffers.append(((call.num_boxes, call.crop_size[1]), 16 + np.dtype(call.F).itemsize))
    _checks.require_memory("crop_size", call.crop_size, buffers, device)


def grad_image_accumulator(out_dtype):
    """The dtype the image gradient is summed in: float64 for float64 results, else float32."""
    return np.dtype(np.float64 if np.dtype(out_dtype) == np.float64 else np.float32)


def check_grad_image_run(call, size_name="image_shape", device=None):
    """Memory for the image gradient before allocating: the accumulator and, unless it
    already is the result, the result."""
    accumulate = grad_image_accumulator(call.kernel_dtype)
    buffers = [(call.image_shape, accumulate.itemsize)]
    if call.kernel_dtype != accumulate or call.data_format == "NCHW":
        buffers.append((call.image_shape, call.kernel_dtype.itemsize))
    _checks.require_memory(size_name, call.result_shape, buffers, device)
