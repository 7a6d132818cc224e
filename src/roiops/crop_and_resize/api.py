"""crop_and_resize and its gradients: the native API (docs/api.md) over the Numba kernels.

The ``_run_*`` functions take already-validated arguments and an explicit compute type, so the
compatibility layers can apply their framework's dtype rules and share everything else.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks
from .._typing import ArrayOrTensor, FloatDtype
from . import cpu

METHODS = ("bilinear", "nearest", "bilinear_v2")
_METHOD_CODES = {name: code for code, name in enumerate(METHODS)}
DATA_FORMATS = ("NHWC", "NCHW")


def check_boxes(boxes, box_indices, batch, indices_name="box_indices"):
    """Validate boxes ``[N, 4]`` and box_indices ``[N]`` (``indices_name`` in messages: the
    compat layers' ``box_ind``, ``box_index``); return box_indices as int64."""
    _checks.require_array("boxes", boxes)
    _checks.require_array(indices_name, box_indices)
    _checks.require_dtype("boxes", boxes, _checks.FLOAT_DTYPES)
    _checks.require_shape("boxes", boxes, ("num_boxes", 4))
    if box_indices.dtype.kind not in "iu":
        raise TypeError(f"{indices_name} must have an integer dtype, got {box_indices.dtype}")
    _checks.require_shape(indices_name, box_indices, ("num_boxes",))
    _checks.require_length(indices_name, box_indices, boxes.shape[0], "box")
    _checks.require_finite_rows("boxes", boxes)
    # On the values given: a uint64 2**63 would wrap to a negative int64.
    _checks.require_indices_in_range(indices_name, box_indices, batch)
    return box_indices.astype(np.int64)


def check_image(name, image, data_format, dtypes=_checks.IMAGE_DTYPES):
    """Validate a rank-4 image; return its NHWC view."""
    _checks.require_choice("data_format", data_format, DATA_FORMATS)
    _checks.require_array(name, image)
    _checks.require_dtype(name, image, dtypes)
    layout = ("batch", "height", "width", "depth") if data_format == "NHWC" else (
        "batch", "depth", "height", "width")
    _checks.require_shape(name, image, layout)
    view = _arrays.nhwc_view(image, data_format)
    _checks.require_positive_image_size(name, view.shape[1], view.shape[2])
    return view


def check_grads(grads, data_format, num_boxes):
    """Validate grads ``[N, ch, cw, D]`` (or NCHW); return the NHWC view."""
    _checks.require_array("grads", grads)
    _checks.require_dtype("grads", grads, _checks.FLOAT_DTYPES)
    layout = ("num_boxes", "crop_height", "crop_width", "depth") if data_format == "NHWC" else (
        "num_boxes", "depth", "crop_height", "crop_width")
    _checks.require_shape("grads", grads, layout)
    view = _arrays.nhwc_view(grads, data_format)
    if view.shape[1] < 1 or view.shape[2] < 1:
        raise ValueError(f"grads must have crop height and width >= 1, got shape {grads.shape}")
    _checks.require_length("grads", grads, num_boxes, "box")
    return view


def require_same_depth(name, depth, other, other_depth):
    """ValueError unless ``name``'s depth equals ``other``'s (the gradients' consistency)."""
    if depth != other_depth:
        raise ValueError(f"{name} depth must equal {other} depth {other_depth}, got {depth}")


def method_code(method, allowed=METHODS):
    _checks.require_choice("method", method, allowed)
    return _METHOD_CODES[method]


def forward_shape(num_boxes, crop_size, depth, data_format):
    crop_height, crop_width = crop_size
    return ((num_boxes, crop_height, crop_width, depth) if data_format == "NHWC"
            else (num_boxes, depth, crop_height, crop_width))


def check_forward_run(crop_size, extrapolation_value, shape, out_dtype, F, fresh_result=True,
                      column_tables=True, device=None):
    """The checks that need the compute type ``F`` and the result ``shape``; before allocating.

    Memory: the result (unless written into ``out``) and the CPU kernel's per-box column
    tables (two int64 indices and a weight in ``F`` per crop column).
    """
    _checks.representable("extrapolation_value", extrapolation_value, F)
    buffers = [(shape, np.dtype(out_dtype).itemsize)] if fresh_result else []
    if column_tables:
        buffers.append(((shape[0], crop_size[1]), 16 + np.dtype(F).itemsize))
    _checks.require_memory("crop_size", crop_size, buffers, device)


def run_forward(image, boxes, box_indices, crop_size, method, extrapolation_value,
                data_format, F, out_dtype, out=None):
    """Kernel call for validated arguments (``out`` too); ``image`` is the NHWC view."""
    num_boxes, depth = boxes.shape[0], image.shape[3]
    shape = forward_shape(num_boxes, crop_size, depth, data_format)
    check_forward_run(crop_size, extrapolation_value, shape, out_dtype, F,
                      fresh_result=out is None, column_tables=bool(num_boxes and depth))
    result = np.empty(shape, out_dtype) if out is None else out
    target, out_half = _arrays.kernel_output(_arrays.nhwc_view(result, data_format))
    if num_boxes and depth:
        cpu.forward(_arrays.kernel_input(image, F), _arrays.kernel_input(boxes, F), box_indices,
                    _METHOD_CODES[method], F(extrapolation_value), target, out_half, F)
    return result


def grad_image_accumulator(out_dtype):
    """The dtype the image gradient is summed in: float64 for float64 results, else float32."""
    return np.dtype(np.float64 if np.dtype(out_dtype) == np.float64 else np.float32)


def check_grad_image_run(image_shape, out_dtype, data_format, size_name="image_shape",
                         device=None):
    """Memory for the image gradient (NHWC ``image_shape``), before allocating: the
    accumulator and, unless it already is the result, the result."""
    accumulate = grad_image_accumulator(out_dtype)
    buffers = [(image_shape, accumulate.itemsize)]
    if np.dtype(out_dtype) != accumulate or data_format == "NCHW":
        buffers.append((image_shape, np.dtype(out_dtype).itemsize))
    batch, height, width, depth = image_shape
    given = image_shape if data_format == "NHWC" else (batch, depth, height, width)
    _checks.require_memory(size_name, given, buffers, device)


def run_grad_image(grads, boxes, box_indices, image_shape, method, data_format, F,
                   out_dtype, half_accumulate=False, size_name="image_shape"):
    """Kernel call for validated arguments; ``grads`` is the NHWC view, ``image_shape`` NHWC
    (named ``size_name`` in messages).

    The kernel accumulates in float64 for float64 results and in float32 otherwise; a float16
    result is the float32 sum rounded once, or with ``half_accumulate`` the peers' half sum
    (every addend and every add rounded to half).
    """
    check_grad_image_run(image_shape, out_dtype, data_format, size_name)
    out_dtype = np.dtype(out_dtype)
    total = np.zeros(image_shape, grad_image_accumulator(out_dtype))
    if boxes.shape[0] and image_shape[3]:
        cpu.grad_image(_arrays.kernel_input(grads, F), _arrays.kernel_input(boxes, F), box_indices,
                       _METHOD_CODES[method], total, half_accumulate, F)
    if data_format == "NCHW":
        total = total.transpose(0, 3, 1, 2)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return np.ascontiguousarray(total, dtype=out_dtype)


def run_grad_boxes(grads, image, boxes, box_indices, F, out_dtype, crop1_in_double=True):
    """Kernel call for validated arguments (NHWC views); returns ``[N, 4]`` of ``out_dtype``."""
    total = np.zeros((boxes.shape[0], 4), F)
    if boxes.shape[0] and image.shape[3]:
        cpu.grad_boxes(_arrays.kernel_input(grads, F), _arrays.kernel_input(image, F),
                       _arrays.kernel_input(boxes, F), box_indices, crop1_in_double, total, F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(out_dtype, copy=False)


def crop_and_resize(image: ArrayOrTensor, boxes: ArrayOrTensor, box_indices: ArrayOrTensor,
                    crop_size: Sequence[int], *, method: str = "bilinear",
                    extrapolation_value: float = 0.0, data_format: str = "NHWC",
                    out: ArrayOrTensor | None = None) -> ArrayOrTensor:
    """Crop boxes out of a batch of images and resize each crop to ``crop_size``.

    TensorFlow's ``tf.image.crop_and_resize`` semantics (and MindSpore's, plus its
    ``bilinear_v2``), computed in float32 (float64 for float64 images) and bit-identical to
    TensorFlow for float32 images.

    Args:
        image: ``[B, H, W, D]`` (``data_format="NHWC"``) or ``[B, D, H, W]`` (``"NCHW"``);
            int8, int16, int32, int64, uint8, uint16, float16, float32 or float64 (arrays of
            either byte order: non-native ones are converted).
        boxes: ``[N, 4]`` float rows ``[y1, x1, y2, x2]`` in normalized coordinates: ``y``
            maps to ``y * (H - 1)``. ``y1 > y2`` flips the crop; coordinates outside
            ``[0, 1]`` sample outside the image (``extrapolation_value`` there).
        box_indices: ``[N]`` integers in ``[0, B)``: the image each box is cut from.
        crop_size: ``(crop_height, crop_width)``, positive ints.
        method: ``"bilinear"``, ``"nearest"`` (ties away from zero) or ``"bilinear_v2"``
            (MindSpore: the box snapped to an integer pixel window and resized with
            half-pixel centres and edge replication; never extrapolates).
        extrapolation_value: the value of samples outside the image.
        data_format: ``"NHWC"`` or ``"NCHW"`` for both image and result.
        out: optional C-contiguous array of the result's shape and dtype to write into.

    Returns:
        ``[N, crop_height, crop_width, D]`` (or ``[N, D, crop_height, crop_width]``) of the
        image's float dtype, float32 for integer images.

    Raises:
        TypeError: a non-array argument (a masked array or ``np.matrix`` too) or an
            unsupported dtype.
        ValueError: wrong shapes, non-positive sizes, unknown options, non-finite boxes or a
            box index outside ``[0, B)``; an ``extrapolation_value`` that overflows the
            compute type; a result larger than the machine's memory; ``out`` of the wrong
            shape, dtype or layout, or sharing memory with an input. docs/errors.md lists
            every rule.

    Example:
        >>> import numpy as np, roiops
        >>> image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> crops = roiops.crop_and_resize(image, np.array([[0, 0, 1, 1]], np.float32),
        ...                                np.array([0]), (2, 2))
        >>> crops[0, :, :, 0]
        array([[ 0.,  3.],
               [12., 15.]], dtype=float32)
    """
    if _checks.any_tensor(image, boxes, box_indices):
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.crop_and_resize(image, boxes, box_indices, crop_size, method=method,
                                         extrapolation_value=extrapolation_value,
                                         data_format=data_format, out=out)

    image, boxes, box_indices = _arrays.native_byte_order(image, boxes, box_indices)
    view = check_image("image", image, data_format)
    indices = check_boxes(boxes, box_indices, view.shape[0])
    crop_size = _checks.size_pair("crop_size", crop_size)
    method_code(method)
    extrapolation_value = _checks.require_number("extrapolation_value", extrapolation_value)
    F = _arrays.native_compute_type(image.dtype)
    out_dtype = _arrays.native_output_dtype(image.dtype)
    if out is not None:
        shape = forward_shape(boxes.shape[0], crop_size, view.shape[3], data_format)
        _arrays.check_out(out, shape, out_dtype,
                          {"image": image, "boxes": boxes, "box_indices": box_indices})
    return run_forward(view, boxes, indices, crop_size, method, extrapolation_value,
                       data_format, F, out_dtype, out)


def check_image_shape(image_shape, data_format, name="image_shape"):
    """The image shape as NHWC Python ints (``name`` is the argument's name in messages)."""
    order = "(B, H, W, D)" if data_format == "NHWC" else "(B, D, H, W)"
    dims = _checks.array_shape(name, image_shape, order)
    nhwc = dims if data_format == "NHWC" else (dims[0], dims[2], dims[3], dims[1])
    _checks.require_positive_image_size(name, nhwc[1], nhwc[2])
    return nhwc


def crop_and_resize_grad_image(grads: ArrayOrTensor, boxes: ArrayOrTensor,
                               box_indices: ArrayOrTensor, image_shape: Sequence[int], *,
                               method: str = "bilinear", dtype: FloatDtype | None = None,
                               data_format: str = "NHWC") -> ArrayOrTensor:
    """Gradient of :func:`crop_and_resize` with respect to the image.

    Every box scatters each crop pixel's gradient to the source pixels its sample read, in
    the sequential order (boxes, rows, columns), whatever the thread count. For
    ``"bilinear_v2"`` it is the true adjoint of the forward.

    Args:
        grads: ``[N, ch, cw, D]`` (or ``[N, D, ch, cw]`` for NCHW), float16/32/64.
        boxes, box_indices, method, data_format: as in :func:`crop_and_resize`.
        image_shape: the image's shape ``(B, H, W, D)`` (``(B, D, H, W)`` for NCHW).
        dtype: the result dtype, float16, float32 or float64; default ``grads.dtype``.
            Computed in float64 for float64, in float32 otherwise (float16 rounded once).

    Returns:
        ``image_shape`` array of ``dtype``.

    Example:
        >>> import numpy as np, roiops
        >>> g = roiops.crop_and_resize_grad_image(np.ones((1, 1, 1, 1), np.float32),
        ...     np.array([[0, 0, 1, 1]], np.float32), np.array([0]), (1, 3, 3, 1))
        >>> g[0, :, :, 0]
        array([[0., 0., 0.],
               [0., 1., 0.],
               [0., 0., 0.]], dtype=float32)
    """
    if _checks.any_tensor(grads, boxes, box_indices):
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.crop_and_resize_grad_image(grads, boxes, box_indices, image_shape,
                                                    method=method, dtype=dtype,
                                                    data_format=data_format)

    grads, boxes, box_indices = _arrays.native_byte_order(grads, boxes, box_indices)
    _checks.require_choice("data_format", data_format, DATA_FORMATS)
    shape = check_image_shape(image_shape, data_format)
    indices = check_boxes(boxes, box_indices, shape[0])
    view = check_grads(grads, data_format, boxes.shape[0])
    require_same_depth("image_shape", shape[3], "grads", view.shape[3])
    method_code(method)
    out_dtype = grads.dtype if dtype is None else _checks.float_dtype("dtype", dtype)
    F = _arrays.native_compute_type(out_dtype)
    return run_grad_image(view, boxes, indices, shape, method, data_format, F, out_dtype)


def crop_and_resize_grad_boxes(grads: ArrayOrTensor, image: ArrayOrTensor,
                               boxes: ArrayOrTensor, box_indices: ArrayOrTensor, *,
                               method: str = "bilinear",
                               data_format: str = "NHWC") -> ArrayOrTensor:
    """Gradient of :func:`crop_and_resize` with respect to the boxes.

    TensorFlow's bilinear box gradient for every method (as TensorFlow and MindSpore register
    it; for ``"nearest"`` and ``"bilinear_v2"`` it is a surrogate, their true derivative being
    zero almost everywhere). Samples outside the image contribute nothing.

    Args:
        grads: ``[N, ch, cw, D]`` (or NCHW), float16/32/64.
        image, boxes, box_indices, method, data_format: as in :func:`crop_and_resize`.

    Returns:
        ``[N, 4]`` d/d``[y1, x1, y2, x2]`` in the forward's result dtype.

    Example:
        >>> import numpy as np, roiops
        >>> image = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)   # value = 3*y + x
        >>> roiops.crop_and_resize_grad_boxes(np.ones((1, 1, 1, 1), np.float32), image,
        ...     np.array([[0.25, 0.25, 0.25, 0.25]], np.float32), np.array([0]))
        array([[3., 1., 3., 1.]], dtype=float32)
    """
    if _checks.any_tensor(grads, image, boxes, box_indices):
        from ..torch import api as torch_api  # imported on first use: torch is optional
        return torch_api.crop_and_resize_grad_boxes(grads, image, boxes, box_indices,
                                                    method=method, data_format=data_format)

    grads, image, boxes, box_indices = _arrays.native_byte_order(grads, image, boxes,
                                                                 box_indices)
    view = check_image("image", image, data_format)
    indices = check_boxes(boxes, box_indices, view.shape[0])
    grads_view = check_grads(grads, data_format, boxes.shape[0])
    require_same_depth("grads", grads_view.shape[3], "image", view.shape[3])
    method_code(method)
    F = _arrays.native_compute_type(image.dtype)
    return run_grad_boxes(grads_view, view, boxes, indices, F,
                          _arrays.native_output_dtype(image.dtype))
