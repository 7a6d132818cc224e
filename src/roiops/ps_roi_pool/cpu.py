"""Numba CPU kernels of ps_roi_pool: forward and gradient w.r.t. the input.

Position-sensitive average pooling (R-FCN), torchvision's arithmetic operation for operation
(docs/position_sensitive.md#ps_roi_pool): the roi's scaled corners rounded half away from zero to
whole pixels, its size at least 1, ``PH x PW`` bins from ``floor(p * bin)`` to
``ceil((p + 1) * bin)`` offset by the roi start and clipped to the map (each direction's
:class:`roiops.ps_roi_pool.conventions.Bins` rule), and bin ``(c, ph, pw)`` the mean of input
channel ``(c * PH + ph) * PW + pw`` over the bin, row-major; an empty bin gives 0. Every
float-to-int conversion saturates and every index is clamped in integer arithmetic, so no
roi, however large, reads outside the map.

Parallel tasks as in ``roiops.ps_roi_align.cpu``: the forward and the input gradient over
(image, block of input channels), channel-major, walking the rois of the image in ascending
order for each channel while its plane is in cache; that is torchvision's sequential order
for every element of the gradient.
"""
import numpy as np
from numba import njit

from .._numerics import round_half_away
from .._threads import run_tasks
from ..ps_roi_align.cpu import channel_bin, dense, rois_by_image, stream
from ..roi_align.cpu import _h, _store

_CHANNEL_BLOCK = 16
# float-to-int conversions saturate to int32, the peer's int (beyond it the peer is undefined)
_INT_MAX = 2147483647.0


@njit(cache=True, error_model="numpy")
def _to_int(value):
    """A float already rounded, floored or ceiled as an int, saturating at int32's range."""
    if value >= _INT_MAX:
        return 2147483647
    if value <= -_INT_MAX - 1:
        return -2147483648
    return int(value)


@njit(cache=True, error_model="numpy")
def _round_coordinate(value, spatial_scale, bins, half, F):
    """C's ``round(value * scale)`` of one roi coordinate, as an int."""
    scaled = _h(value * spatial_scale, half)
    if bins.round_in_float32:
        scaled = np.float32(scaled)
    if not -_INT_MAX < scaled < _INT_MAX:  # saturate first: the rounding works in int64
        return _to_int(scaled)
    return _to_int(round_half_away(scaled))


@njit(cache=True, error_model="numpy")
def _axis_bins(rois, low_column, high_column, spatial_scale, pooled, size, bins, half, F):
    """``(starts, ends)`` ``[K, pooled]`` of one axis: each bin's clipped pixel range."""
    num_rois = rois.shape[0]
    starts = np.empty((num_rois, pooled), np.int64)
    ends = np.empty((num_rois, pooled), np.int64)
    limit = size + bins.end_limit
    for k in range(num_rois):
        low = _round_coordinate(rois[k, low_column], spatial_scale, bins, half, F)
        high = _round_coordinate(rois[k, high_column], spatial_scale, bins, half, F)
        length = max(high - low, 1)
        bin_size = _h(_h(F(length), half) / _h(F(pooled), half), half)
        for p in range(pooled):
            start = _to_int(np.floor(_h(_h(F(p), half) * bin_size, half)))
            end = _to_int(np.ceil(_h(_h(F(p + 1), half) * bin_size, half)))
            starts[k, p] = min(max(start + low, 0), limit)
            ends[k, p] = min(max(end + low, 0), limit)
    return starts, ends


def _bins(rois, spatial_scale, pooled_height, pooled_width, height, width, bins, half, F):
    y_start, y_end = _axis_bins(rois, 2, 4, spatial_scale, pooled_height, height, bins, half, F)
    x_start, x_end = _axis_bins(rois, 1, 3, spatial_scale, pooled_width, width, bins, half, F)
    return y_start, y_end, x_start, x_end


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_tasks(input, out, out_half, order, starts, num_blocks, streamed, sink, y_start,
                   y_end, x_start, x_end, half, F, task_begin, task_end):
    """The (image, ``_CHANNEL_BLOCK`` input channels) tasks given, channel-major: each input
    channel's bin of every roi of the image while its plane is in cache."""
    channels = input.shape[1]
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        for c in range(first_channel, min(first_channel + _CHANNEL_BLOCK, channels)):
            c_out, ph, pw = channel_bin(c, pooled_height, pooled_width)
            plane = input[b, c]
            if streamed:  # see roiops.ps_roi_align.cpu.dense
                sink[task] += stream(plane)
            for r in range(starts[b], starts[b + 1]):
                k = order[r]
                h0, h1 = y_start[k, ph], y_end[k, ph]
                w0, w1 = x_start[k, pw], x_end[k, pw]
                if h1 <= h0 or w1 <= w0:
                    _store(out, out_half, k, c_out, ph, pw, F(0))
                    continue
                acc = F(0)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        acc = _h(acc + plane[h, w], half)
                area = _h(F((h1 - h0) * (w1 - w0)), half)
                _store(out, out_half, k, c_out, ph, pw, _h(acc / area, half))


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_float(input, out, order, starts, num_blocks, streamed, sink, y_start, y_end,
                   x_start, x_end, F, task_begin, task_end):
    """``_forward_tasks`` into a float ``out`` in float arithmetic: the constants compile a
    variant without half rounding, whose sums vectorize (as ps_roi_align's)."""
    _forward_tasks(input, out, False, order, starts, num_blocks, streamed, sink, y_start,
                   y_end, x_start, x_end, False, F, task_begin, task_end)


def forward(input, rois, batch_indices, spatial_scale, bins, half_arithmetic, out, out_half,
            F):
    """ps_roi_pool forward into ``out`` ``[K, C / (PH*PW), PH, PW]`` (dtype ``F``, or uint16
    half bits when ``out_half``) with the bin rule ``bins``."""
    batch, channels, height, width = input.shape
    tables = _bins(rois, spatial_scale, out.shape[2], out.shape[3], height, width, bins,
                   half_arithmetic, F)
    order, starts = rois_by_image(batch_indices, batch)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    sink = np.zeros(batch * num_blocks)
    streamed = dense(starts, height, width)
    if half_arithmetic or out_half:
        run_tasks(_forward_tasks, batch * num_blocks, input, out, out_half, order, starts,
                  num_blocks, streamed, sink, *tables, half_arithmetic, F)
    else:
        run_tasks(_forward_float, batch * num_blocks, input, out, order, starts, num_blocks,
                  streamed, sink, *tables, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_tasks(grads, out, order, starts, num_blocks, y_start, y_end, x_start, x_end,
                      half, F, task_begin, task_end):
    """The (image, ``_CHANNEL_BLOCK`` input channels) tasks given, channel-major: every roi of
    the image in ascending order adds ``grads / area`` over its bin, row-major."""
    channels = out.shape[1]
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        for c in range(first_channel, min(first_channel + _CHANNEL_BLOCK, channels)):
            c_out, ph, pw = channel_bin(c, pooled_height, pooled_width)
            plane = out[b, c]
            plane[:] = 0  # here, not before: in parallel, and the plane stays in cache
            for r in range(starts[b], starts[b + 1]):
                k = order[r]
                h0, h1 = y_start[k, ph], y_end[k, ph]
                w0, w1 = x_start[k, pw], x_end[k, pw]
                if h1 <= h0 or w1 <= w0:
                    continue
                area = _h(F((h1 - h0) * (w1 - w0)), half)
                share = _h(grads[k, c_out, ph, pw] / area, half)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        plane[h, w] = _h(plane[h, w] + share, half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_float(grads, out, order, starts, num_blocks, y_start, y_end, x_start, x_end,
                      F, task_begin, task_end):
    """``_grad_input_tasks`` in float arithmetic (see ``_forward_float``)."""
    _grad_input_tasks(grads, out, order, starts, num_blocks, y_start, y_end, x_start, x_end,
                      False, F, task_begin, task_end)


def grad_input(grads, rois, batch_indices, spatial_scale, bins, half_arithmetic, out, F):
    """The input gradient written into every element of the ``[N, C, H, W]`` ``out`` of dtype
    ``F`` (each task zeroes its planes first) with the bin rule ``bins``: each bin's gradient
    over its area, added to every pixel of the bin of its channel, in torchvision's
    sequential order."""
    batch, channels, height, width = out.shape
    tables = _bins(rois, spatial_scale, grads.shape[2], grads.shape[3], height, width, bins,
                   half_arithmetic, F)
    order, starts = rois_by_image(batch_indices, batch)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    if half_arithmetic:
        run_tasks(_grad_input_tasks, batch * num_blocks, grads, out, order, starts, num_blocks,
                  *tables, True, F)
    else:
        run_tasks(_grad_input_float, batch * num_blocks, grads, out, order, starts,
                  num_blocks, *tables, F)
