"""TensorFlow's crop_and_resize family, bit for bit (TensorFlow 2.21 CPU).

``crop_and_resize`` is ``tf.image.crop_and_resize``; ``raw_ops`` holds ``CropAndResize``,
``CropAndResizeGradImage`` and ``CropAndResizeGradBoxes``. TensorFlow's dtype rules apply:
boxes float32, box indices int32, the forward and the box gradient always float32, the image
gradient in ``T`` with float32 weights (a float16 ``T`` rounds after every add).

Differences from TensorFlow, all where TensorFlow is undefined (docs/decisions.md): non-finite boxes
raise ValueError in every op (TensorFlow's gradients crash on them); subnormals are not
flushed to zero; the image gradient always has the sequential order (TensorFlow's
multi-threaded one races on large inputs).

Example:
    >>> import numpy as np
    >>> from roiops.compat import tensorflow as tf
    >>> image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    >>> tf.crop_and_resize(image, np.array([[0, 0, 1, 1]], np.float32),
    ...                    np.array([0], np.int32), (2, 2))[0, :, :, 0]
    array([[ 0.,  3.],
           [12., 15.]], dtype=float32)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _arrays, _checks, _dispatch
from .._typing import ArrayOrTensor, FloatDtype
from ..crop_and_resize import api, checks

_METHODS = ("bilinear", "nearest")
# TensorFlow's dtype rule (MindSpore's too): the nine image dtypes, boxes float32, box
# indices int32, the gradients' grads float32.
DTYPES = checks.Dtypes(image=_checks.IMAGE_NAMES, boxes=("float32",), indices=("int32",),
                       grads=("float32",))
_RAW_NAMES = checks.Names(indices="box_ind", image_shape="image_size", dtype="T")


def crop_and_resize(image: ArrayOrTensor, boxes: ArrayOrTensor, box_indices: ArrayOrTensor,
                    crop_size: Sequence[int], method: str = "bilinear",
                    extrapolation_value: float = 0.0) -> ArrayOrTensor:
    """``tf.image.crop_and_resize``: image ``[B,H,W,D]`` -> float32 crops ``[N,ch,cw,D]``.

    image: uint8, uint16, int8, int16, int32, int64, float16, float32 or float64;
    boxes ``[N,4]`` float32 ``[y1,x1,y2,x2]``; box_indices ``[N]`` int32; crop_size
    ``(crop_height, crop_width)``; method "bilinear" or "nearest".
    """
    return _crop_and_resize(image, boxes, box_indices, crop_size, method, extrapolation_value,
                            checks.NATIVE)


def _crop_and_resize(image, boxes, box_indices, crop_size, method, extrapolation_value, names):
    """The forward of both spellings, ``names`` in messages: float32 arithmetic and result."""
    if _checks.any_tensor(image, boxes, box_indices):
        return _dispatch.tensor_implementation("compat.crop_and_resize")(
            image, boxes, box_indices, crop_size, method, extrapolation_value, names, DTYPES,
            _METHODS)
    image, boxes, box_indices = _arrays.native_byte_order(image, boxes, box_indices)
    call = checks.check_forward(_checks.NUMPY, image, boxes, box_indices, crop_size, method,
                                extrapolation_value, names=names, dtypes=DTYPES,
                                methods=_METHODS)
    indices = checks.check_box_values(boxes, box_indices, call.image_shape[0], names)
    return api.run_forward(call.computed_in(np.float32, np.float32), image, boxes, indices)


class raw_ops:  # lower case, as tf.raw_ops
    """The raw ops, with TensorFlow's argument names (callable positionally or by name)."""

    @staticmethod
    def CropAndResize(image: ArrayOrTensor, boxes: ArrayOrTensor, box_ind: ArrayOrTensor,
                      crop_size: Sequence[int], method: str = "bilinear",
                      extrapolation_value: float = 0.0) -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResize``: see :func:`crop_and_resize`."""
        return _crop_and_resize(image, boxes, box_ind, crop_size, method, extrapolation_value,
                                _RAW_NAMES)

    @staticmethod
    def CropAndResizeGradImage(grads: ArrayOrTensor, boxes: ArrayOrTensor,
                               box_ind: ArrayOrTensor, image_size: Sequence[int],
                               T: FloatDtype, method: str = "bilinear") -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResizeGradImage``: grads ``[N,ch,cw,D]`` float32 -> ``T`` image.

        image_size is ``[B,H,W,D]``; T float16, float32 or float64; method "bilinear" or
        "nearest". Float32 weights; a float16 ``T`` rounds after every add.
        """
        if _checks.any_tensor(grads, boxes, box_ind):
            return _dispatch.tensor_implementation("compat.host_call")(
                raw_ops.CropAndResizeGradImage, grads, boxes, box_ind, image_size, T, method)
        grads, boxes, box_ind = _arrays.native_byte_order(grads, boxes, box_ind)
        call = checks.check_grad_image(_checks.NUMPY, grads, boxes, box_ind, image_size,
                                       method, _checks.float_dtype("T", T), names=_RAW_NAMES,
                                       dtypes=DTYPES, methods=_METHODS)
        indices = checks.check_box_values(boxes, box_ind, call.image_shape[0], _RAW_NAMES)
        return api.run_grad_image(call.computed_in(np.float32, call.kernel_dtype), grads,
                                  boxes, indices, half_accumulate=call.kernel_dtype == np.float16,
                                  size_name="image_size")

    @staticmethod
    def CropAndResizeGradBoxes(grads: ArrayOrTensor, image: ArrayOrTensor, boxes: ArrayOrTensor,
                               box_ind: ArrayOrTensor, method: str = "bilinear"
                               ) -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResizeGradBoxes``: float32 ``[N,4]`` d/d``[y1,x1,y2,x2]``.

        Always TensorFlow's bilinear derivative; method must be "bilinear".
        """
        if _checks.any_tensor(grads, image, boxes, box_ind):
            return _dispatch.tensor_implementation("compat.host_call")(
                raw_ops.CropAndResizeGradBoxes, grads, image, boxes, box_ind, method)
        grads, image, boxes, box_ind = _arrays.native_byte_order(grads, image, boxes, box_ind)
        call = checks.check_grad_boxes(_checks.NUMPY, grads, image, boxes, box_ind, method,
                                       names=_RAW_NAMES, dtypes=DTYPES, methods=("bilinear",))
        indices = checks.check_box_values(boxes, box_ind, call.image_shape[0], _RAW_NAMES)
        return api.run_grad_boxes(call.computed_in(np.float32, np.float32), grads, image,
                                  boxes, indices, crop1_in_double=True)
