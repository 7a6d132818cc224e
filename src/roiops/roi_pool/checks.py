"""The one validator of roi_pool and its input gradient (docs/errors.md).

Every entry point (the NumPy functions, the torch functions, the compat layer) builds the
:class:`Options` of its call and calls :func:`check_forward` or :func:`check_grad_input` with
the kind of its arrays (``roiops._checks.NUMPY`` or torch's) and its framework's argument
names (:class:`Names`); they read metadata only and return a :class:`RoiPool` record. The
rules shared with roi_align (the feature map, the ``[K, 5]`` rois, the grads' shape, the
batch index truncated toward zero) are roi_align's checks, called from here. The values
(finite rois, batch indices in the batch, argmax indices inside a plane) are checked next to
the kernels that read them: on the host by :func:`check_roi_values` and
:func:`check_argmax_values`, on a CUDA device by ``roiops.torch.ops`` (same rules, same
messages).
"""
from typing import Any, NamedTuple

import numpy as np

from .. import _arrays, _checks
from ..roi_align import checks as align_checks
from ..roi_align.conventions import TORCHVISION

# The batch index rule of every roi_pool path: torchvision's, truncated toward zero, in [0, N)
# (roi_align's convention record carries it; roi_pool has no other switch of it).
TORCHVISION_INDEX_RULE = TORCHVISION
# The argmax is a flat index into one [H, W] plane stored as int32 (torchvision's type): a
# plane must have fewer than 2**31 elements.
MAX_PLANE = 2**31 - 1
ARGMAX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


class Options:
    """Checked roi_pool options, shared by the forward and the input gradient."""

    def __init__(self, output_size, spatial_scale):
        self.pooled_height, self.pooled_width = _checks.size_pair(
            "output_size", output_size, allow_int=True)
        spatial_scale = _checks.require_number("spatial_scale", spatial_scale)
        # A comparison, not np.isfinite: torch.compile traces it, also for a symbolic float.
        if not -float("inf") < spatial_scale < float("inf"):
            raise ValueError(f"spatial_scale must be finite, got {spatial_scale!r}")
        self.spatial_scale = spatial_scale

    @classmethod
    def from_op_args(cls, output_size, spatial_scale):
        """The options of a custom op's arguments (:meth:`op_args`, already checked)."""
        options = cls.__new__(cls)
        options.pooled_height, options.pooled_width = (int(v) for v in output_size)
        options.spatial_scale = float(spatial_scale)
        return options

    def op_args(self):
        """The custom ops' arguments after the tensors (``roiops.torch.ops``)."""
        return [self.pooled_height, self.pooled_width], self.spatial_scale

    @property
    def output_size(self):
        return self.pooled_height, self.pooled_width


class Names(NamedTuple):
    """The arguments' names in messages: each framework's spelling."""
    input: str = "input"
    rois: str = "rois"
    grads: str = "grads"
    argmax: str = "argmax"
    input_shape: str = "input_shape"
    output_size: str = "output_size"


NATIVE = Names()


class RoiPool(NamedTuple):
    """A checked call: what the kernels and the result allocation need."""
    input_shape: tuple  # (N, C, H, W)
    num_rois: int
    options: Options
    out_dtype: Any  # the result's dtype, of the arrays' kind
    kernel_dtype: np.dtype  # the NumPy dtype the kernels write it as (bfloat16: float32)
    F: type  # np.float32 or np.float64, the compute type
    result_shape: tuple
    names: Names = NATIVE
    # the geometry rounded to half at every operation and the gradient summed in half
    # (torchvision's float16 kernels)
    half_arithmetic: bool = False


def _align_names(names):
    return align_checks.Names(input=names.input, rois=names.rois, grads=names.grads,
                              input_shape=names.input_shape, output_size=names.output_size)


def _record(kind, input_shape, num_rois, options, dtype, result_shape, names):
    kernel_dtype = kind.numpy_dtype(dtype)
    return RoiPool(tuple(input_shape), num_rois, options, dtype, kernel_dtype,
                   _arrays.native_compute_type(kernel_dtype), tuple(result_shape), names)


def _require_plane(name, height, width):
    """ValueError when an ``[H, W]`` plane has too many elements for an int32 argmax."""
    if height * width > MAX_PLANE:
        raise ValueError(f"{name} must have height * width <= 2**31 - 1 (the argmax is an "
                         f"int32 index into one plane), got {height}x{width}")


def check_forward(kind, input, rois, options, names=NATIVE, dtypes=None):
    """Check a forward call's arrays; ``dtypes`` (names, ``None``: float16/32/64 and torch's
    bfloat16) is a framework's rule for both arrays."""
    call = align_checks.check_forward(kind, input, rois, options, _align_names(names), dtypes)
    _require_plane(names.input, *call.input_shape[2:])
    return forward_call(kind, input, call.num_rois, options, names)


def forward_call(kind, input, num_rois, options, names=NATIVE):
    """The record of a forward whose arguments were checked; derives, checks nothing."""
    return _record(kind, input.shape, num_rois, options, input.dtype,
                   (num_rois, input.shape[1], *options.output_size), names)


def check_grad_input(kind, grads, argmax, rois, input_shape, names=NATIVE, dtypes=None):
    """Check an input gradient call; the result has ``input_shape`` and the grads' dtype.

    ``argmax`` is the forward's ``[K, C, PH, PW]`` int32 (or int64) array of flat plane
    indices; its shape gives the output size.
    """
    kind.require({names.grads: grads, names.argmax: argmax, names.rois: rois})
    shape = align_checks.check_input_shape(input_shape, names.input_shape)
    _require_plane(names.input_shape, *shape[2:])
    _checks.require_dtype(names.argmax, argmax, kind.dtypes(str(d) for d in ARGMAX_DTYPES))
    _checks.require_shape(names.argmax, argmax,
                          ("num_rois", "channels", "pooled_height", "pooled_width"))
    num_rois = align_checks.require_rois(kind, names.rois, rois, dtypes)
    expected = (num_rois, shape[1], *argmax.shape[2:])
    if tuple(argmax.shape) != expected:
        raise ValueError(f"{names.argmax} must have shape [num_rois, channels, pooled_height, "
                         f"pooled_width] = {expected}, got {tuple(argmax.shape)}")
    _checks.require_dtype(names.grads, grads, align_checks.allowed_dtypes(kind, dtypes))
    if tuple(grads.shape) != expected:
        raise ValueError(f"{names.grads} must have the shape of {names.argmax} {expected}, "
                         f"got {tuple(grads.shape)}")
    return grad_input_call(kind, grads, num_rois, shape, names)


def grad_input_call(kind, grads, num_rois, input_shape, names=NATIVE):
    """The record of a checked input gradient; derives, checks nothing."""
    options = Options.from_op_args(grads.shape[2:], 1.0)
    return _record(kind, input_shape, num_rois, options, grads.dtype, input_shape, names)


def half_arithmetic(call):
    """``call`` in torchvision's float16 arithmetic: the double spatial scale rounded through
    float32 to half (as c10::Half converts a double; ValueError if it overflows), every
    geometry operation and every gradient add rounded to half. The rois must be rounded to
    half too, by the caller that holds them."""
    scale = _checks.representable("spatial_scale", call.options.spatial_scale, np.float32,
                                  np.float16)
    return call._replace(options=Options.from_op_args(call.options.output_size, scale),
                         half_arithmetic=True)


def check_roi_values(rois, batch, name="rois"):
    """The host's value checks (NumPy rois): finite rows, the batch index truncated toward
    zero in ``[0, N)`` (roi_align's torchvision rule); the batch indices as int64."""
    return align_checks.check_roi_values(rois, batch, TORCHVISION_INDEX_RULE, name)


def check_argmax_values(argmax, plane, name="argmax"):
    """ValueError naming the first argmax outside ``[-1, plane)`` (-1: an empty bin)."""
    # Two reductions and no temporary: an argmax is as large as the result.
    if argmax.size == 0 or (argmax.min() >= -1 and argmax.max() < plane):
        return
    bad = (argmax < -1) | (argmax >= plane)  # only to name the first one
    position = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]),
                                                       argmax.shape))
    raise ValueError(f"{name} must hold -1 or a flat index into a plane of {plane} "
                     f"elements, [{', '.join(map(str, position))}] is "
                     f"{argmax[position].item()!r}")


def check_compute_type(call):
    """ValueError if the spatial scale overflows the compute type (1e39 in float32)."""
    _checks.representable("spatial_scale", call.options.spatial_scale, call.F)


def check_forward_run(call, fresh_result=True, device=None, with_argmax=True):
    """The checks that need the compute type and the result size, before allocating it (the
    result and, when asked for, its int32 argmax)."""
    check_compute_type(call)
    buffers = [(call.result_shape, 4)] if with_argmax else []
    if fresh_result:
        buffers.append((call.result_shape, call.kernel_dtype.itemsize))
    _checks.require_memory(call.names.output_size, call.options.output_size, buffers, device)


def check_grad_input_run(call, device=None):
    """The checks before allocating the input gradient (in the compute type ``F``, and the
    result when its dtype differs)."""
    F = np.dtype(call.F)
    buffers = [(call.input_shape, F.itemsize)]
    if call.kernel_dtype != F:
        buffers.append((call.input_shape, call.kernel_dtype.itemsize))
    _checks.require_memory(call.names.input_shape, call.input_shape, buffers, device)
