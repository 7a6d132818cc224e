"""Numba CPU kernels of ps_roi_pool: forward and gradient w.r.t. the input.

Position-sensitive average pooling (R-FCN), torchvision's arithmetic operation for operation
(docs/position_sensitive.md#ps_roi_pool): the roi's scaled corners rounded half away from zero to
whole pixels, its size at least 1, ``PH x PW`` bins from ``floor(p * bin)`` to
``ceil((p + 1) * bin)`` offset by the roi start and clipped to the map (each direction's
:class:`roiops.ps_roi_pool.conventions.Bins` rule), and bin ``(c, ph, pw)`` the mean of input
channel ``(c * PH + ph) * PW + pw`` over the bin, row-major; an empty bin gives 0. Every
float-to-int conversion saturates and every index is clamped in integer arithmetic, so no
roi, however large, reads outside the map.

Parallel tasks, each output element written by one thread:

* the forward over (image, bin, block of output channels), bin-major: a task reads only the
  input channels of its bin and block, which stay in cache while it walks the rois of the
  image, and it sums the bin of ``_GROUP`` channels at once: their sums are independent
  chains of adds, where one channel's chain waits on each add (on R-FCN maps, the
  channel-major forward with one chain per bin took 1.45x the time on 2 threads);
* the input gradient as in ``roiops.ps_roi_align.cpu``: over (image, block of input
  channels), channel-major, walking the rois of the image in ascending order for each
  channel while its plane is in cache; that is torchvision's sequential order for every
  element of the gradient.
"""
import numpy as np
from numba import njit

from .._numerics import round_half_away
from .._threads import run_tasks
from ..ps_roi_align.cpu import channel_bin, rois_by_image
from ..roi_align.cpu import _h, _store

# Input channels per gradient task; output channels per forward task (a multiple of _GROUP)
_CHANNEL_BLOCK = 16
# Output channels whose bin sums the forward carries together
_GROUP = 4
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


@njit(cache=True, error_model="numpy")
def _bin_sums(maps, c0, c1, c2, c3, h0, h1, w0, w1, half, F):
    """The sums over pixels ``[h0, h1) x [w0, w1)`` of the ``_GROUP`` channels ``c0..c3`` of
    ``maps``, each added row-major as torchvision adds it, carried together as independent
    chains."""
    p0, p1, p2, p3 = maps[c0], maps[c1], maps[c2], maps[c3]
    a0 = a1 = a2 = a3 = F(0)
    for h in range(h0, h1):
        for w in range(w0, w1):
            a0 = _h(a0 + p0[h, w], half)
            a1 = _h(a1 + p1[h, w], half)
            a2 = _h(a2 + p2[h, w], half)
            a3 = _h(a3 + p3[h, w], half)
    return a0, a1, a2, a3


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_tasks(input, out, out_half, order, starts, num_blocks, y_start, y_end, x_start,
                   x_end, half, F, task_begin, task_end):
    """The (image, bin, ``_CHANNEL_BLOCK`` output channels) tasks given: bin ``(ph, pw)`` of
    those channels for every roi of the image, ``_GROUP`` channels at a time (the last group
    repeats its last channel, whose extra sums are not stored)."""
    out_channels, pooled_height, pooled_width = out.shape[1], out.shape[2], out.shape[3]
    num_bins = pooled_height * pooled_width
    for task in range(task_begin, task_end):
        b, rest = divmod(task, num_bins * num_blocks)
        bin_index, block = divmod(rest, num_blocks)
        ph, pw = divmod(bin_index, pooled_width)
        first = block * _CHANNEL_BLOCK
        stop = min(first + _CHANNEL_BLOCK, out_channels)
        maps = input[b]
        last_channel = (stop - 1) * num_bins + bin_index
        for r in range(starts[b], starts[b + 1]):
            k = order[r]
            h0, h1 = y_start[k, ph], y_end[k, ph]
            w0, w1 = x_start[k, pw], x_end[k, pw]
            if h1 <= h0 or w1 <= w0:
                for c_out in range(first, stop):
                    _store(out, out_half, k, c_out, ph, pw, F(0))
                continue
            area = _h(F((h1 - h0) * (w1 - w0)), half)
            for c_out in range(first, stop, _GROUP):
                c = c_out * num_bins + bin_index  # the input channel of (c_out, ph, pw)
                sums = _bin_sums(maps, c, min(c + num_bins, last_channel),
                                 min(c + 2 * num_bins, last_channel),
                                 min(c + 3 * num_bins, last_channel), h0, h1, w0, w1, half, F)
                for j in range(min(_GROUP, stop - c_out)):
                    _store(out, out_half, k, c_out + j, ph, pw, _h(sums[j] / area, half))


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_float(input, out, order, starts, num_blocks, y_start, y_end, x_start, x_end, F,
                   task_begin, task_end):
    """``_forward_tasks`` into a float ``out`` in float arithmetic: the constants compile a
    variant without half rounding (as ps_roi_align's)."""
    _forward_tasks(input, out, False, order, starts, num_blocks, y_start, y_end, x_start,
                   x_end, False, F, task_begin, task_end)


def forward(input, rois, batch_indices, spatial_scale, bins, half_arithmetic, out, out_half,
            F):
    """ps_roi_pool forward into ``out`` ``[K, C / (PH*PW), PH, PW]`` (dtype ``F``, or uint16
    half bits when ``out_half``) with the bin rule ``bins``."""
    batch, channels, height, width = input.shape
    out_channels, pooled_height, pooled_width = out.shape[1], out.shape[2], out.shape[3]
    tables = _bins(rois, spatial_scale, pooled_height, pooled_width, height, width, bins,
                   half_arithmetic, F)
    order, starts = rois_by_image(batch_indices, batch)
    num_blocks = (out_channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    num_tasks = batch * pooled_height * pooled_width * num_blocks
    if half_arithmetic or out_half:
        run_tasks(_forward_tasks, num_tasks, input, out, out_half, order, starts, num_blocks,
                  *tables, half_arithmetic, F)
    else:
        run_tasks(_forward_float, num_tasks, input, out, order, starts, num_blocks, *tables,
                  F)


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
