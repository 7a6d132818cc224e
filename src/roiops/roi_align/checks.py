"""The one validator of roi_align and its gradients (docs/errors.md).

Every entry point (the NumPy functions, the torch functions, the compat layers) builds the
:class:`Options` of its call and calls :func:`check_forward`, :func:`check_grad_input` or
:func:`check_grad_boxes` with the kind of its arrays (``roiops._checks.NUMPY`` or torch's)
and its framework's argument names (:class:`Names`) and dtype rule; they read metadata only
and return a :class:`RoiAlign` record. The values (finite rois, batch indices in the batch,
by each convention's rule) are checked next to the kernels that read them: on the host by
:func:`check_roi_values`, on a CUDA device by ``roiops.torch.ops`` (same rule, same
messages). The validators of ps_roi_align, rotated RoI Align, roi_pool and multi-scale RoI
Align build on this one: its checks (rotated rois have 6 columns) or its parts
(:func:`require_maps`, :func:`require_rois`, :func:`call_record`).
"""
import copy
import math
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays, _checks
from . import conventions

# A roi row: (batch_index, x1, y1, x2, y2).
ROI_COLUMNS = 5
# MindSpore's batch index is rint(v + 7e-5) in float32.
MINDSPORE_INDEX_BIAS = np.float32(7e-5)


class Options:
    """Checked roi_align options, shared by the forward and both gradients; ``convention``
    is the selected :class:`roiops.roi_align.conventions.Convention` record."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned, convention,
                 roi_end_mode):
        self.pooled_height, self.pooled_width = _checks.size_pair(
            "output_size", output_size, allow_int=True)
        self.spatial_scale = _checks.require_number("spatial_scale", spatial_scale)
        # A comparison, not np.isfinite: torch.compile traces it, also for a symbolic float.
        if not -math.inf < self.spatial_scale < math.inf:
            raise ValueError(f"spatial_scale must be finite, got {spatial_scale!r}")
        self.sampling_ratio = _checks.require_sampling_ratio("sampling_ratio", sampling_ratio)
        self.convention = conventions.convention(convention, aligned, roi_end_mode)
        self.aligned = bool(aligned)
        self.roi_end_mode = int(roi_end_mode)

    @classmethod
    def from_op_args(cls, output_size, spatial_scale, sampling_ratio, aligned, convention,
                     roi_end_mode):
        """The options of a custom op's arguments (:meth:`op_args`) that were checked
        already: converted, not checked again."""
        options = cls.__new__(cls)
        options.pooled_height, options.pooled_width = (int(v) for v in output_size)
        options.spatial_scale = float(spatial_scale)
        options.sampling_ratio = int(sampling_ratio)
        options.convention = conventions.convention(convention, aligned, roi_end_mode)
        options.aligned, options.roi_end_mode = bool(aligned), int(roi_end_mode)
        return options

    def op_args(self):
        """The custom ops' arguments after the tensors (``roiops.torch.ops``)."""
        return ([self.pooled_height, self.pooled_width], self.spatial_scale,
                self.sampling_ratio, self.aligned, self.convention.name, self.roi_end_mode)

    @property
    def output_size(self):
        return self.pooled_height, self.pooled_width

    def with_scale(self, spatial_scale):
        """These options with a framework's rounding of the spatial scale (already checked)."""
        options = copy.copy(self)
        options.spatial_scale = spatial_scale
        return options

    def kernel_args(self, F):
        return F(self.spatial_scale), self.sampling_ratio, self.convention.geometry


class Names(NamedTuple):
    """The arguments' names in messages: each framework's spelling."""
    input: str = "input"
    rois: str = "rois"
    grads: str = "grads"
    input_shape: str = "input_shape"
    output_size: str = "output_size"


NATIVE = Names()


class RoiAlign(NamedTuple):
    """A checked call: what the kernels and the result allocation need."""
    input_shape: tuple  # (N, C, H, W)
    num_rois: int
    options: Options
    out_dtype: Any  # the result's dtype, of the arrays' kind
    kernel_dtype: np.dtype  # the NumPy dtype the kernels write it as (bfloat16: float32)
    F: type  # np.float32 or np.float64, the compute type
    result_shape: tuple
    names: Names = NATIVE
    # every operation rounded to half (the frameworks' float16 kernels)
    half_arithmetic: bool = False


def call_record(kind, input_shape, num_rois, options, dtype, result_shape, names):
    """The record of a result of ``dtype`` (computed in its compute type)."""
    kernel_dtype = kind.numpy_dtype(dtype)
    return RoiAlign(tuple(input_shape), num_rois, options, dtype, kernel_dtype,
                    _arrays.native_compute_type(kernel_dtype), tuple(result_shape), names)


def allowed_dtypes(kind, names):
    """``kind``'s dtypes of the names given; ``None``: float16/32/64 and torch's bfloat16."""
    return kind.float_dtypes if names is None else kind.dtypes(names)


def require_maps(kind, name, input, dtypes):
    """``[N, C, H, W]`` feature maps of an allowed dtype, at least one pixel each."""
    _checks.require_dtype(name, input, allowed_dtypes(kind, dtypes))
    _checks.require_shape(name, input, ("batch", "channels", "height", "width"))
    _checks.require_positive_image_size(name, input.shape[2], input.shape[3])


def require_rois(kind, name, rois, dtypes, columns=ROI_COLUMNS):
    """``[K, columns]`` rois of an allowed dtype; returns ``K``."""
    _checks.require_dtype(name, rois, allowed_dtypes(kind, dtypes))
    _checks.require_shape(name, rois, ("num_rois", columns))
    return rois.shape[0]


def require_grads(kind, name, grads, expected, dtypes):
    """Output gradients of an allowed dtype and the ``expected`` result shape."""
    _checks.require_dtype(name, grads, allowed_dtypes(kind, dtypes))
    if tuple(grads.shape) != expected:
        raise ValueError(f"{name} must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {expected}, got {tuple(grads.shape)}")


def check_input_shape(input_shape, name="input_shape"):
    """The input shape as Python ints (``name`` is the argument's name in messages)."""
    dims = _checks.array_shape(name, input_shape, "(N, C, H, W)")
    _checks.require_positive_image_size(name, dims[2], dims[3])
    return dims


def check_forward(kind, input, rois, options, names=NATIVE, dtypes=None, *,
                  columns=ROI_COLUMNS):
    """Check a forward call's arrays against its ``options``; ``dtypes`` (names, ``None``:
    float16/32/64 and torch's bfloat16) is a framework's rule for both arrays; ``columns``
    the rois' row length (rotated RoI Align's rows have 6)."""
    kind.require({names.input: input, names.rois: rois})
    require_maps(kind, names.input, input, dtypes)
    num_rois = require_rois(kind, names.rois, rois, dtypes, columns)
    return forward_call(kind, input, num_rois, options, names)


def forward_call(kind, input, num_rois, options, names=NATIVE):
    """The record of a forward whose arguments were checked; derives, checks nothing."""
    return call_record(kind, input.shape, num_rois, options, input.dtype,
                   (num_rois, input.shape[1], *options.output_size), names)


def check_grad_input(kind, grads, rois, input_shape, options, names=NATIVE, dtypes=None, *,
                     columns=ROI_COLUMNS):
    """Check an input gradient call; the result has ``input_shape`` and the grads' dtype."""
    kind.require({names.grads: grads, names.rois: rois})
    shape = check_input_shape(input_shape, names.input_shape)
    num_rois = require_rois(kind, names.rois, rois, dtypes, columns)
    require_grads(kind, names.grads, grads, (num_rois, shape[1], *options.output_size), dtypes)
    return grad_input_call(kind, grads, num_rois, shape, options, names)


def grad_input_call(kind, grads, num_rois, input_shape, options, names=NATIVE):
    """The record of a checked input gradient; derives, checks nothing."""
    return call_record(kind, input_shape, num_rois, options, grads.dtype, input_shape, names)


def check_grad_boxes(kind, grads, input, rois, options, names=NATIVE, *, columns=ROI_COLUMNS):
    """Check a box gradient call; the result is ``[K, columns]`` of the input's dtype."""
    kind.require({names.grads: grads, names.input: input, names.rois: rois})
    require_maps(kind, names.input, input, None)
    num_rois = require_rois(kind, names.rois, rois, None, columns)
    require_grads(kind, names.grads, grads, (num_rois, input.shape[1], *options.output_size), None)
    return grad_boxes_call(kind, input, num_rois, options, names, columns=columns)


def grad_boxes_call(kind, input, num_rois, options, names=NATIVE, *, columns=ROI_COLUMNS):
    """The record of a checked box gradient; derives, checks nothing."""
    return call_record(kind, input.shape, num_rois, options, input.dtype, (num_rois, columns),
                   names)


def check_roi_values(rois, batch, convention, name="rois"):
    """The host's value checks (NumPy rois): finite rows, then each convention's batch index
    in the batch (docs/decisions.md#batch-index-out-of-range); the batch indices as int64.

    torchvision truncates toward zero and the truncated index must lie in ``[0, N)``;
    MindSpore requires the raw value in ``[0, N - 1]`` and then rounds ``v + 7e-5`` half to
    even in float32.
    """
    _checks.require_finite_rows(name, rois)
    column = rois[:, 0]
    if convention.rounded_batch_index:
        raw = column.astype(np.float32)
        bad = (raw < 0) | (raw > np.float32(batch - 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} batch index must be in [0, {batch - 1}], "
                             f"row {row} is {column[row].item()!r}")
        return np.rint(raw + MINDSPORE_INDEX_BIAS).astype(np.int64)
    truncated = np.trunc(column)
    # in range before the cast: a value beyond int64 (1e30) has no int64 to become
    _checks.require_indices_in_range(f"{name} batch index", truncated, batch, shown=column)
    return truncated.astype(np.int64)


def check_compute_type(call):
    """ValueError if the spatial scale overflows the compute type (1e39 in float32)."""
    _checks.representable("spatial_scale", call.options.spatial_scale, call.F)


def check_forward_run(call, fresh_result=True, device=None):
    """The checks that need the compute type and the result size, before allocating it."""
    check_compute_type(call)
    buffers = [(call.result_shape, call.kernel_dtype.itemsize)] if fresh_result else []
    _checks.require_memory(call.names.output_size, call.options.output_size, buffers, device)


def check_grad_input_run(call, device=None):
    """The checks before allocating the input gradient: the accumulator in ``F`` and, when
    the result's dtype differs, the result."""
    check_compute_type(call)
    F = np.dtype(call.F)
    buffers = [(call.input_shape, F.itemsize)]
    if call.kernel_dtype != F:
        buffers.append((call.input_shape, call.kernel_dtype.itemsize))
    _checks.require_memory(call.names.input_shape, call.input_shape, buffers, device)
