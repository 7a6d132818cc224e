"""ONNX export of the roiops operators with ``torch.onnx.export`` (docs/onnx.md).

Both exporters torch ships are served, each the way torch documents extending it:

* the dynamo exporter (``dynamo=True``, torch's default): pass
  ``custom_translation_table=roiops.torch.onnx.translation_table()``. torch offers no global
  registry for it, only this per-call table (it needs ``onnxscript``).
* the TorchScript exporter (``dynamo=False``, deprecated by torch): importing this module
  registers the symbolic functions with ``torch.onnx.register_custom_op_symbolic`` for opset
  16 and later, as torchvision does for its own operators on import.

What each operator becomes (standard ONNX operators only, no custom domain):

* ``roiops::roi_align`` -> ``RoiAlign`` (opset >= 16, ``mode="avg"``): ``aligned=True`` is
  ``coordinate_transformation_mode="half_pixel"``, ``False`` is ``"output_half_pixel"``,
  ``sampling_ratio <= 0`` the adaptive 0; the rois ``[K, 5]`` split into the boxes ``[K, 4]``
  and int64 batch indices. The boxes are multiplied by the spatial scale in the graph (in
  float64 for float64 inputs; the attribute is a float32) and the attribute is 1. MindSpore's
  convention exports for ``sampling_ratio > 0`` only (ONNX's adaptive grid is not its floor).
* ``roiops::crop_and_resize`` -> a loop-free graph of ``Gather`` and elementwise operators
  that performs TensorFlow's arithmetic (MindSpore's for ``bilinear_v2``) operation by
  operation, bit-exact in ONNX Runtime.

Example:
    >>> import torch, roiops, roiops.torch.onnx
    >>> pool = roiops.nn.RoIAlign((7, 7), spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
    >>> program = torch.onnx.export(
    ...     pool, (torch.rand(1, 8, 32, 32), torch.tensor([[0, 16., 16., 320., 240.]])),
    ...     dynamo=True, custom_translation_table=roiops.torch.onnx.translation_table(),
    ...     dynamic_shapes=({}, {0: torch.export.Dim("K", min=0)}), verbose=False)
    >>> [node.op_type for node in program.model.graph if node.op_type == "RoiAlign"]
    ['RoiAlign']
"""
from collections.abc import Callable

import numpy as np
import torch

from . import ops  # noqa: F401  # registers torch.ops.roiops.*, which the symbolics name

__all__ = ["OPSET", "translation_table"]

# RoiAlign's coordinate_transformation_mode (aligned) arrived in opset 16.
OPSET = 16

# ONNX element types (TensorProto.DataType values), as both exporters' Cast takes them.
_FLOAT, _INT64, _FLOAT16, _DOUBLE, _BFLOAT16 = 1, 7, 10, 11, 16
_NUMPY_TYPES = {_FLOAT: np.float32, _DOUBLE: np.float64, _INT64: np.int64}
_FLOAT_TYPES = (_FLOAT16, _BFLOAT16, _FLOAT, _DOUBLE)
# MindSpore reads a roi's batch index as rint(v + 7e-5) in float32 (roiops.roi_align.api).
_MINDSPORE_INDEX_BIAS = 7e-5


def _compute_type(element_type):
    """docs/api.md#dtypes: float64 data computes in float64, everything else in float32."""
    return _DOUBLE if element_type == _DOUBLE else _FLOAT


def _result_type(element_type):
    """The result's element type: the data's float type, float32 for integer images."""
    return element_type if element_type in _FLOAT_TYPES else _FLOAT


# --- the two graph builders --------------------------------------------------------------
#
# Each translation below is written once against this small interface: ``op(name, *inputs,
# **attributes)``, ``constant(array)`` and ``element_type(value)``. One builder emits
# onnxscript operators (dynamo exporter), the other TorchScript graph nodes.

class _OnnxScriptGraph:
    """onnxscript's traced operators (the dynamo exporter calls translations eagerly)."""

    def __init__(self):
        import onnx_ir
        import onnxscript
        self._ir = onnx_ir
        self._opset = onnxscript.opset18

    def op(self, name, *inputs, **attributes):
        return getattr(self._opset, name)(*inputs, **attributes)

    def constant(self, array):
        return self._opset.Constant(value=self._ir.tensor(np.asarray(array)))

    def element_type(self, value):
        return int(value.dtype)


class _TorchScriptGraph:
    """``torch._C.Graph`` nodes for the TorchScript exporter's symbolic functions."""

    # g.op spells an attribute's type as a suffix of its name.
    _SUFFIXES = ((bool, "i"), (int, "i"), (float, "f"), (str, "s"), (list, "is"))

    def __init__(self, graph):
        self._graph = graph

    def op(self, name, *inputs, **attributes):
        typed = {}
        for key, value in attributes.items():
            suffix = next(s for kind, s in self._SUFFIXES if isinstance(value, kind))
            typed[f"{key}_{suffix}"] = value
        return self._graph.op(name, *inputs, **typed)

    def constant(self, array):
        return self._graph.op("Constant", value_t=torch.from_numpy(np.array(array)))

    def element_type(self, value):
        return int(torch.onnx.JitScalarType.from_value(value).onnx_type())


def _cast(g, value, source, target):
    """``value`` (of element type ``source``) as ``target``; no node when they are equal.

    The caller states ``source``: values made inside a translation have no type yet.
    """
    return value if source == target else g.op("Cast", value, to=target)


def _columns(g, matrix, start, end, axis=1):
    """Columns ``[start, end)`` of a ``[K, n]`` value (``[K, end - start]``), or elements of a
    vector with ``axis=0``."""
    return g.op("Slice", matrix, g.constant([start]), g.constant([end]), g.constant([axis]))


def _scalar(element_type, value):
    return np.array(value, _NUMPY_TYPES[element_type])


# --- roi_align ---------------------------------------------------------------------------

def _roi_align_mode(convention, aligned, roi_end_mode, sampling_ratio):
    """(coordinate_transformation_mode, add 0.5 to the boxes) of a convention; ValueError for
    what ONNX RoiAlign cannot express."""
    if convention == "torchvision":
        return ("half_pixel" if aligned else "output_half_pixel"), False
    if sampling_ratio <= 0:
        raise ValueError(
            f"roi_align with convention='mindspore' and sampling_ratio={sampling_ratio} has no "
            f"ONNX export: MindSpore's adaptive grid is floor(roi / pooled) samples (0 gives "
            f"NaN), ONNX RoiAlign's is ceil; export with a sampling_ratio > 0")
    # roi_end_mode 0: start = x1*s, end = x2*s, size at least 1: output_half_pixel exactly.
    # roi_end_mode 1 has no minimum size: half_pixel subtracts 0.5 from boxes given + 0.5.
    return ("half_pixel", True) if roi_end_mode else ("output_half_pixel", False)


def _batch_indices(g, rois, convention, rois_type):
    """The int64 batch indices, read from the rois as given (``rois_type``), before any cast
    to the compute type, as ``roiops.roi_align.api`` reads them."""
    column = g.op("Squeeze", _columns(g, rois, 0, 1), g.constant([1]))
    if convention == "mindspore":
        biased = g.op("Add", _cast(g, column, rois_type, _FLOAT),
                      g.constant(_scalar(_FLOAT, _MINDSPORE_INDEX_BIAS)))
        return g.op("Cast", g.op("Round", biased), to=_INT64)
    return g.op("Cast", column, to=_INT64)  # truncation toward zero, as torchvision's cast


def _roi_boxes(g, rois, spatial_scale, convention, roi_end_mode, compute, shift, adaptive):
    """The ``[K, 4]`` boxes RoiAlign reads with a spatial scale of 1: the convention's edges
    times the scale, computed in ``compute`` as the kernels do (``roiops.roi_align.cpu``)."""
    starts, ends = _columns(g, rois, 1, 3), _columns(g, rois, 3, 5)
    if convention == "mindspore" and roi_end_mode:
        ends = g.op("Add", ends, g.constant(_scalar(compute, 1.0)))
    scale = g.constant(_scalar(compute, spatial_scale))
    starts, ends = g.op("Mul", starts, scale), g.op("Mul", ends, scale)
    if adaptive:
        # ONNX Runtime sizes its sample buffer by the product of the two adaptive grids, which
        # fails when exactly one axis is reversed; torchvision samples nothing on a reversed
        # axis (zeros), and so does an empty one.
        ends = g.op("Max", ends, starts)
    boxes = g.op("Concat", starts, ends, axis=1)
    if shift:
        boxes = g.op("Add", boxes, g.constant(_scalar(compute, 0.5)))
    return boxes


def _roi_align(g, input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
               aligned=False, convention="torchvision", roi_end_mode=1):
    """``roiops::roi_align`` as ONNX ``RoiAlign`` (docs/onnx.md#roi_align)."""
    mode, shift = _roi_align_mode(convention, aligned, roi_end_mode, sampling_ratio)
    element_type = g.element_type(input)
    compute = _compute_type(element_type)  # ONNX Runtime's RoiAlign: float and double only
    rois_type = g.element_type(rois)
    batch_indices = _batch_indices(g, rois, convention, rois_type)
    adaptive = sampling_ratio <= 0 and mode == "half_pixel"
    boxes = _roi_boxes(g, _cast(g, rois, rois_type, compute), spatial_scale, convention,
                       roi_end_mode, compute, shift, adaptive)
    pooled_height, pooled_width = output_size
    result = g.op("RoiAlign", _cast(g, input, element_type, compute), boxes,
                  batch_indices, mode="avg",
                  coordinate_transformation_mode=mode, output_height=int(pooled_height),
                  output_width=int(pooled_width), sampling_ratio=max(int(sampling_ratio), 0),
                  spatial_scale=1.0)
    return _cast(g, result, compute, element_type)


def _roi_align_torchvision(g, input, rois, spatial_scale, pooled_height, pooled_width,
                           sampling_ratio, aligned):
    """``roiops::roi_align_torchvision`` as its composite computes it (``roiops.torch.compat``):
    the boxes in the data's type (float32 for bfloat16 data), then ``roiops::roi_align``.
    float16 data is computed in float32, as under autocast, not in torchvision's half
    arithmetic (docs/onnx.md#roi_align)."""
    element_type = g.element_type(input)
    data_type = _FLOAT if element_type == _BFLOAT16 else element_type
    rois = _cast(g, rois, g.element_type(rois), data_type)
    return _roi_align(g, input, rois, (pooled_height, pooled_width), spatial_scale,
                      sampling_ratio, aligned)


# --- crop_and_resize ---------------------------------------------------------------------

def _axis_samples(g, low, high, size, crop_size, nearest, compute):
    """One axis of TensorFlow's samples (``roiops.crop_and_resize.cpu``), ``[N, crop_size]``.

    ``low``/``high`` are ``[N, 1]`` box edges in ``compute``, ``size`` the image size as a
    ``[1]`` int64. Returns (low pixel, high pixel, weight of the high pixel, inside): pixels
    int64 clamped to the image, the weight ``None`` for nearest.
    """
    last = g.op("Sub", size, g.constant([1]))
    last_f = g.op("Cast", last, to=compute)
    if crop_size > 1:
        start = g.op("Mul", low, last_f)
        step = g.op("Div", g.op("Mul", g.op("Sub", high, low), last_f),
                    g.constant(_scalar(compute, crop_size - 1)))
        index = g.constant(np.arange(crop_size, dtype=_NUMPY_TYPES[compute]).reshape(1, -1))
        coordinate = g.op("Add", start, g.op("Mul", index, step))
    else:
        # The box centre: TF forms 0.5 * (low + high) * (size - 1) in double, rounds once.
        centre = g.op("Mul", g.op("Mul", g.op("Cast", g.op("Add", low, high), to=_DOUBLE),
                                  g.constant(_scalar(_DOUBLE, 0.5))),
                      g.op("Cast", last, to=_DOUBLE))
        coordinate = g.op("Cast", centre, to=compute)
    zero = g.constant(_scalar(compute, 0.0))
    inside = g.op("And", g.op("GreaterOrEqual", coordinate, zero),
                  g.op("LessOrEqual", coordinate, last_f))  # NaN is outside
    # Outside samples are replaced by the extrapolation value; 0 keeps their indices defined.
    coordinate = g.op("Where", inside, coordinate, zero)
    floor = g.op("Floor", coordinate)
    weight = g.op("Sub", coordinate, floor)  # exact: 0 <= floor <= coordinate
    low_pixel = g.op("Cast", floor, to=_INT64)
    if nearest:
        # C roundf of a coordinate >= 0: half away from zero, from the exact fraction.
        up = g.op("GreaterOrEqual", weight, g.constant(_scalar(compute, 0.5)))
        pixel = g.op("Min", g.op("Add", low_pixel, g.op("Cast", up, to=_INT64)), last)
        return pixel, pixel, None, inside
    high_pixel = g.op("Cast", g.op("Ceil", coordinate), to=_INT64)
    # In float32, size - 1 can round up past the last pixel from 2**24 on: clamp the indices.
    return g.op("Min", low_pixel, last), g.op("Min", high_pixel, last), weight, inside


def _window_edge(g, value, compute):
    """bilinear_v2's C truncation of a window edge, made total: NaN -> 0, clamped to +-2**61
    (``roiops.crop_and_resize.cpu._window_edge``); int64."""
    limit = 2.0 ** 61
    zero = g.constant(_scalar(compute, 0.0))
    value = g.op("Where", g.op("IsNaN", value), zero, value)
    value = g.op("Clip", value, g.constant(_scalar(compute, -limit)),
                 g.constant(_scalar(compute, limit)))
    truncated = g.op("Where", g.op("Less", value, zero), g.op("Ceil", value),
                     g.op("Floor", value))
    return g.op("Cast", truncated, to=_INT64)


def _v2_axis_samples(g, low, high, size, crop_size, compute):
    """One axis of MindSpore's bilinear_v2 (``roiops.crop_and_resize.cpu._v2_axis_sample``):
    (low pixel, high pixel, weight of the high pixel), ``[N, crop_size]``.

    The box is truncated to the pixel window ``[trunc(low*H), trunc(high*H)]`` (at least one
    pixel), sampled at half-pixel centres with the ratio formed first, the indices clamped to
    the window and then to the image; the weight is taken from the clamped low index.
    """
    size_f = g.op("Cast", size, to=compute)
    first = _window_edge(g, g.op("Mul", low, size_f), compute)
    last = _window_edge(g, g.op("Mul", high, size_f), compute)
    one = g.constant([1])
    length = g.op("Max", g.op("Add", g.op("Sub", last, first), one), one)
    ratio = g.op("Div", g.op("Cast", length, to=compute),
                 g.constant(_scalar(compute, crop_size)))
    centres = np.arange(crop_size, dtype=_NUMPY_TYPES[compute]).reshape(1, -1)
    centres = centres + _NUMPY_TYPES[compute](0.5)  # exact, as F(index) + F(0.5)
    position = g.op("Sub", g.op("Mul", g.constant(centres), ratio),
                    g.constant(_scalar(compute, 0.5)))
    zero, window_last = g.constant([0]), g.op("Sub", length, one)

    def window_index(rounded):
        return g.op("Min", g.op("Max", g.op("Cast", rounded, to=_INT64), zero), window_last)

    low_index = window_index(g.op("Floor", position))
    high_index = window_index(g.op("Ceil", position))
    weight = g.op("Sub", position, g.op("Cast", low_index, to=compute))
    image_last = g.op("Sub", size, one)

    def pixel(index):
        return g.op("Min", g.op("Max", g.op("Add", first, index), zero), image_last)

    return pixel(low_index), pixel(high_index), weight


def _unsqueeze(g, value, axes):
    return g.op("Unsqueeze", value, g.constant(axes))


def _gather_pixels(g, pixels, batch, rows, columns, width, height, pixel_type, compute):
    """``image[batch, rows, columns, :]`` in ``compute`` as ``[N, ch, cw, D]``.

    ``pixels`` is the image flattened to ``[B*H*W, D]`` of element type ``pixel_type``;
    ``rows`` ``[N, ch]`` and ``columns`` ``[N, cw]`` are int64 pixel indices, ``batch``
    ``[N, 1, 1]``.
    """
    flat = g.op("Add", g.op("Mul", g.op("Add", g.op("Mul", batch, height),
                                        _unsqueeze(g, rows, [2])), width),
                _unsqueeze(g, columns, [1]))
    return _cast(g, g.op("Gather", pixels, flat, axis=0), pixel_type, compute)


def _lerp(g, a, b, weight):
    """TF's two-step form ``a + (b - a) * weight``."""
    return g.op("Add", a, g.op("Mul", g.op("Sub", b, a), weight))


def _v2_sum(g, gather, pixels, y_weight, x_weight, compute):
    """bilinear_v2's four-weight sum in MindSpore's term order: top-left, bottom-right,
    top-right, bottom-left, each ``(pixel * y weight) * x weight``."""
    top, bottom, left, right = pixels
    one = g.constant(_scalar(compute, 1.0))
    y_complement, x_complement = g.op("Sub", one, y_weight), g.op("Sub", one, x_weight)

    def term(rows, columns, y, x):
        return g.op("Mul", g.op("Mul", gather(rows, columns), y), x)

    total = g.op("Add", term(top, left, y_complement, x_complement),
                 term(bottom, right, y_weight, x_weight))
    total = g.op("Add", total, term(top, right, y_complement, x_weight))
    return g.op("Add", total, term(bottom, left, y_weight, x_complement))


def _crop_and_resize(g, image, boxes, box_indices, crop_size, method="bilinear",
                     extrapolation_value=0.0, data_format="NHWC"):
    """``roiops::crop_and_resize`` as Gather and elementwise operators (docs/onnx.md)."""
    element_type = g.element_type(image)
    compute = _compute_type(element_type)
    if data_format == "NCHW":
        image = g.op("Transpose", image, perm=[0, 2, 3, 1])
    shape = g.op("Shape", image)
    height, width = _columns(g, shape, 1, 2, axis=0), _columns(g, shape, 2, 3, axis=0)
    boxes = _cast(g, boxes, g.element_type(boxes), compute)
    crop_height, crop_width = (int(size) for size in crop_size)
    y1, x1, y2, x2 = (_columns(g, boxes, i, i + 1) for i in range(4))
    # [B*H*W, D]. Not Flatten: onnxscript's optimizer rewrites it to a Reshape with a
    # constant named after the input, and two crops of one image then lose one of them.
    pixels = g.op("Reshape", image, g.op("Concat", g.constant([-1]),
                                         _columns(g, shape, 3, 4, axis=0), axis=0))
    batch = g.op("Reshape", _cast(g, box_indices, g.element_type(box_indices), _INT64),
                 g.constant([-1, 1, 1]))

    def gather(rows, columns):
        return _gather_pixels(g, pixels, batch, rows, columns, width, height, element_type,
                              compute)

    if method == "bilinear_v2":
        top, bottom, y_weight = _v2_axis_samples(g, y1, y2, height, crop_height, compute)
        left, right, x_weight = _v2_axis_samples(g, x1, x2, width, crop_width, compute)
        result = _v2_sum(g, gather, (top, bottom, left, right),
                         _unsqueeze(g, y_weight, [2, 3]), _unsqueeze(g, x_weight, [1, 3]),
                         compute)
    else:
        nearest = method == "nearest"
        top, bottom, y_weight, y_inside = _axis_samples(g, y1, y2, height, crop_height,
                                                        nearest, compute)
        left, right, x_weight, x_inside = _axis_samples(g, x1, x2, width, crop_width,
                                                        nearest, compute)
        if nearest:
            value = gather(top, left)
        else:
            x_weight = _unsqueeze(g, x_weight, [1, 3])
            upper = _lerp(g, gather(top, left), gather(top, right), x_weight)
            lower = _lerp(g, gather(bottom, left), gather(bottom, right), x_weight)
            value = _lerp(g, upper, lower, _unsqueeze(g, y_weight, [2, 3]))
        inside = g.op("And", _unsqueeze(g, y_inside, [2, 3]), _unsqueeze(g, x_inside, [1, 3]))
        result = g.op("Where", inside, value,
                      g.constant(_scalar(compute, extrapolation_value)))
    result = _cast(g, result, compute, _result_type(element_type))
    if data_format == "NCHW":
        result = g.op("Transpose", result, perm=[0, 3, 1, 2])
    return result


# --- the two exporters -------------------------------------------------------------------

def _dynamo_translation(graph_function):
    def translation(*args, **kwargs):
        return graph_function(_OnnxScriptGraph(), *args, **kwargs)
    translation.__name__ = graph_function.__name__.lstrip("_")
    return translation


def translation_table() -> dict[Callable, Callable]:
    """The ``custom_translation_table`` of ``torch.onnx.export(..., dynamo=True)``.

    Maps ``torch.ops.roiops.roi_align.default`` and ``torch.ops.roiops.crop_and_resize.default``
    to their onnxscript translations. ImportError when onnxscript is missing.
    """
    try:
        import onnxscript  # noqa: F401  # the translations build onnxscript operators
    except ImportError as error:
        raise ImportError("roiops.torch.onnx.translation_table needs onnxscript (and onnx): "
                          "pip install 'roiops[onnx]'") from error
    return {
        torch.ops.roiops.roi_align.default: _dynamo_translation(_roi_align),
        torch.ops.roiops.crop_and_resize.default: _dynamo_translation(_crop_and_resize),
    }


def _register_torchscript_symbolics():
    """Register the symbolic functions of the TorchScript exporter (each op's schema parsed by
    ``symbolic_helper.parse_args``: "v" a tensor, "is" int list, "f"/"i"/"b"/"s" scalars)."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "v", "is", "f", "i", "b", "s", "i")
    def roi_align(graph, input, rois, output_size, spatial_scale, sampling_ratio, aligned,
                  convention, roi_end_mode):
        return _roi_align(_TorchScriptGraph(graph), input, rois, output_size, spatial_scale,
                          sampling_ratio, aligned, convention, roi_end_mode)

    @symbolic_helper.parse_args("v", "v", "v", "is", "s", "f", "s")
    def crop_and_resize(graph, image, boxes, box_indices, crop_size, method,
                        extrapolation_value, data_format):
        return _crop_and_resize(_TorchScriptGraph(graph), image, boxes, box_indices,
                                crop_size, method, extrapolation_value, data_format)

    # torch.jit.trace records the composite roiops::roi_align_torchvision itself
    @symbolic_helper.parse_args("v", "v", "f", "i", "i", "i", "b")
    def roi_align_torchvision(graph, input, rois, spatial_scale, pooled_height, pooled_width,
                              sampling_ratio, aligned):
        return _roi_align_torchvision(_TorchScriptGraph(graph), input, rois, spatial_scale,
                                      pooled_height, pooled_width, sampling_ratio, aligned)

    torch.onnx.register_custom_op_symbolic("roiops::roi_align", roi_align, OPSET)
    torch.onnx.register_custom_op_symbolic("roiops::roi_align_torchvision",
                                           roi_align_torchvision, OPSET)
    torch.onnx.register_custom_op_symbolic("roiops::crop_and_resize", crop_and_resize, OPSET)


# The TorchScript exporter is deprecated: register only while torch still ships it.
if hasattr(torch.onnx, "register_custom_op_symbolic"):
    _register_torchscript_symbolics()
