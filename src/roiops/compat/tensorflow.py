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

from .. import _arrays, _checks
from .._typing import ArrayOrTensor, FloatDtype
from ..crop_and_resize import api

_METHODS = ("bilinear", "nearest")


def _check_tf_boxes(boxes, box_ind, batch, indices_name="box_ind"):
    """boxes float32, indices int32 (named ``indices_name``: ``box_indices`` in
    ``tf.image.crop_and_resize``, ``box_ind`` in the raw ops)."""
    _checks.require_array("boxes", boxes)
    _checks.require_array(indices_name, box_ind)
    _checks.require_dtype("boxes", boxes, (np.dtype(np.float32),))
    _checks.require_dtype(indices_name, box_ind, (np.dtype(np.int32),))
    return api.check_boxes(boxes, box_ind, batch, indices_name)


def crop_and_resize(image: ArrayOrTensor, boxes: ArrayOrTensor, box_indices: ArrayOrTensor,
                    crop_size: Sequence[int], method: str = "bilinear",
                    extrapolation_value: float = 0.0) -> ArrayOrTensor:
    """``tf.image.crop_and_resize``: image ``[B,H,W,D]`` -> float32 crops ``[N,ch,cw,D]``.

    image: uint8, uint16, int8, int16, int32, int64, float16, float32 or float64;
    boxes ``[N,4]`` float32 ``[y1,x1,y2,x2]``; box_indices ``[N]`` int32; crop_size
    ``(crop_height, crop_width)``; method "bilinear" or "nearest".
    """
    return _crop_and_resize(image, boxes, box_indices, crop_size, method, extrapolation_value,
                            "box_indices")


def _crop_and_resize(image, boxes, box_indices, crop_size, method, extrapolation_value,
                     indices_name):
    """The forward of both spellings; ``indices_name`` is the indices' name in messages."""
    if _checks.any_tensor(image, boxes, box_indices):
        from ..torch import compat as torch_compat  # torch is optional: imported on first use
        return torch_compat.crop_and_resize(image, boxes, box_indices, crop_size, method,
                                            extrapolation_value,
                                            ("image", "boxes", indices_name), _METHODS)
    image, boxes, box_indices = _arrays.native_byte_order(image, boxes, box_indices)
    view = api.check_image("image", image, "NHWC")
    indices = _check_tf_boxes(boxes, box_indices, view.shape[0], indices_name)
    crop_size = _checks.size_pair("crop_size", crop_size)
    api.method_code(method, _METHODS)
    extrapolation_value = _checks.require_number("extrapolation_value", extrapolation_value)
    return api.run_forward(view, boxes, indices, crop_size, method, extrapolation_value,
                           "NHWC", np.float32, np.float32)


class raw_ops:  # lower case, as tf.raw_ops
    """The raw ops, with TensorFlow's argument names (callable positionally or by name)."""

    @staticmethod
    def CropAndResize(image: ArrayOrTensor, boxes: ArrayOrTensor, box_ind: ArrayOrTensor,
                      crop_size: Sequence[int], method: str = "bilinear",
                      extrapolation_value: float = 0.0) -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResize``: see :func:`crop_and_resize`."""
        return _crop_and_resize(image, boxes, box_ind, crop_size, method, extrapolation_value,
                                "box_ind")

    @staticmethod
    def CropAndResizeGradImage(grads: ArrayOrTensor, boxes: ArrayOrTensor,
                               box_ind: ArrayOrTensor, image_size: Sequence[int],
                               T: FloatDtype, method: str = "bilinear") -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResizeGradImage``: grads ``[N,ch,cw,D]`` float32 -> ``T`` image.

        image_size is ``[B,H,W,D]``; T float16, float32 or float64; method "bilinear" or
        "nearest".
        """
        if _checks.any_tensor(grads, boxes, box_ind):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.host_call(raw_ops.CropAndResizeGradImage, grads, boxes,
                                          box_ind, image_size, T, method)
        dtype = _checks.float_dtype("T", T)
        api.method_code(method, _METHODS)
        grads, boxes, box_ind = _arrays.native_byte_order(grads, boxes, box_ind)
        shape = api.check_image_shape(image_size, "NHWC", "image_size")
        indices = _check_tf_boxes(boxes, box_ind, shape[0])
        _checks.require_dtype("grads", _checks.require_array("grads", grads),
                              (np.dtype(np.float32),))
        view = api.check_grads(grads, "NHWC", boxes.shape[0])
        api.require_same_depth("image_size", shape[3], "grads", view.shape[3])
        return api.run_grad_image(view, boxes, indices, shape, method, "NHWC", np.float32,
                                  dtype, half_accumulate=dtype == np.float16,
                                  size_name="image_size")

    @staticmethod
    def CropAndResizeGradBoxes(grads: ArrayOrTensor, image: ArrayOrTensor, boxes: ArrayOrTensor,
                               box_ind: ArrayOrTensor, method: str = "bilinear"
                               ) -> ArrayOrTensor:
        """``tf.raw_ops.CropAndResizeGradBoxes``: float32 ``[N,4]`` d/d``[y1,x1,y2,x2]``.

        Always TensorFlow's bilinear derivative; method must be "bilinear".
        """
        if _checks.any_tensor(grads, image, boxes, box_ind):
            from ..torch import compat as torch_compat  # torch is optional: imported on first use
            return torch_compat.host_call(raw_ops.CropAndResizeGradBoxes, grads, image, boxes,
                                          box_ind, method)
        api.method_code(method, ("bilinear",))
        grads, image, boxes, box_ind = _arrays.native_byte_order(grads, image, boxes, box_ind)
        view = api.check_image("image", image, "NHWC")
        indices = _check_tf_boxes(boxes, box_ind, view.shape[0])
        _checks.require_dtype("grads", _checks.require_array("grads", grads),
                              (np.dtype(np.float32),))
        grads_view = api.check_grads(grads, "NHWC", boxes.shape[0])
        api.require_same_depth("grads", grads_view.shape[3], "image", view.shape[3])
        return api.run_grad_boxes(grads_view, view, boxes, indices, np.float32, np.float32,
                                  crop1_in_double=True)
