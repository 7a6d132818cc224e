"""crop_and_resize and its gradients: the native API (docs/api.md) over the Numba kernels.

Each entry point checks its call with the validator of ``roiops.crop_and_resize.checks``
and hands the record to a ``run_*`` function, which the compatibility layers call too with
their framework's record; tensors go to ``roiops.torch`` through ``roiops._dispatch``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor, FloatDtype
from . import checks, cpu
from .checks import check_forward_run, check_grad_image_run, grad_image_accumulator

METHODS, DATA_FORMATS = checks.METHODS, checks.DATA_FORMATS


def run_forward(call, image, boxes, indices, out=None):
    """The kernel call of a checked ``call`` (``out`` checked too); ``image`` is the NHWC
    view, ``indices`` the checked int64 box indices."""
    check_forward_run(call, fresh_result=out is None)
    result = np.empty(call.result_shape, call.kernel_dtype) if out is None else out
    target, out_half = _arrays.kernel_output(_arrays.nhwc_view(result, call.data_format))
    if call.num_boxes and call.image_shape[3]:
        cpu.forward(_arrays.kernel_input(image, call.F), _arrays.kernel_input(boxes, call.F),
                    indices, checks.METHOD_CODES[call.method], call.F(call.extrapolation_value),
                    target, out_half, call.F)
    return result


def run_grad_image(call, grads, boxes, indices, half_accumulate=False, size_name="image_shape"):
    """The kernel call of a checked ``call``; ``grads`` is the NHWC view (the image shape is
    named ``size_name`` in messages).

    The kernel accumulates in float64 for float64 results and in float32 otherwise; a float16
    result is the float32 sum rounded once, or with ``half_accumulate`` the peers' half sum
    (every addend and every add rounded to half).
    """
    check_grad_image_run(call, size_name)
    total = np.zeros(call.image_shape, grad_image_accumulator(call.kernel_dtype))
    if call.num_boxes and call.image_shape[3]:
        cpu.grad_image(_arrays.kernel_input(grads, call.F), _arrays.kernel_input(boxes, call.F),
                       indices, checks.METHOD_CODES[call.method], total, half_accumulate,
                       call.F)
    if call.data_format == "NCHW":
        total = total.transpose(0, 3, 1, 2)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return np.ascontiguousarray(total, dtype=call.kernel_dtype)


def run_grad_boxes(call, grads, image, boxes, indices, crop1_in_double=True):
    """The kernel call of a checked ``call`` (NHWC views); ``[N, 4]`` of its result dtype.

    ``crop1_in_double``: a crop size of 1 accumulates ``(gy * 0.5) * (H - 1)`` in float64
    (TensorFlow) rather than float32 (MindSpore).
    """
    total = np.zeros((call.num_boxes, 4), call.F)
    if call.num_boxes and call.image_shape[3]:
        cpu.grad_boxes(_arrays.kernel_input(grads, call.F), _arrays.kernel_input(image, call.F),
                       _arrays.kernel_input(boxes, call.F), indices, crop1_in_double, total,
                       call.F)
    with np.errstate(over="ignore"):  # a float16 result beyond its range is inf, silently
        return total.astype(call.kernel_dtype, copy=False)


@_dispatch.script_as("script.crop_and_resize")
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
        return _dispatch.tensor_implementation("crop_and_resize")(
            image, boxes, box_indices, crop_size, method=method,
            extrapolation_value=extrapolation_value, data_format=data_format, out=out)

    image, boxes, box_indices = _arrays.native_byte_order(image, boxes, box_indices)
    call = checks.check_forward(_checks.NUMPY, image, boxes, box_indices, crop_size, method,
                                extrapolation_value, data_format)
    indices = checks.check_box_values(boxes, box_indices, call.image_shape[0])
    if out is not None:
        _arrays.check_out(out, call.result_shape, call.kernel_dtype,
                          {"image": image, "boxes": boxes, "box_indices": box_indices})
    return run_forward(call, _arrays.nhwc_view(image, data_format), boxes, indices, out)


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
        return _dispatch.tensor_implementation("crop_and_resize_grad_image")(
            grads, boxes, box_indices, image_shape, method=method, dtype=dtype,
            data_format=data_format)

    grads, boxes, box_indices = _arrays.native_byte_order(grads, boxes, box_indices)
    call = checks.check_grad_image(_checks.NUMPY, grads, boxes, box_indices, image_shape,
                                   method, dtype, data_format)
    indices = checks.check_box_values(boxes, box_indices, call.image_shape[0])
    return run_grad_image(call, _arrays.nhwc_view(grads, data_format), boxes, indices)


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
        return _dispatch.tensor_implementation("crop_and_resize_grad_boxes")(
            grads, image, boxes, box_indices, method=method, data_format=data_format)

    grads, image, boxes, box_indices = _arrays.native_byte_order(grads, image, boxes,
                                                                 box_indices)
    call = checks.check_grad_boxes(_checks.NUMPY, grads, image, boxes, box_indices, method,
                                   data_format)
    indices = checks.check_box_values(boxes, box_indices, call.image_shape[0])
    return run_grad_boxes(call, _arrays.nhwc_view(grads, data_format),
                          _arrays.nhwc_view(image, data_format), boxes, indices)
