"""Numba CPU kernels of roi_align: forward, gradient w.r.t. the input, gradient w.r.t. the boxes.

One kernel per direction serves every convention (docs/conventions.md#roi_align-switches): a
convention's ``Geometry`` record (``roiops.roi_align.conventions``) switches the handful of
geometry rules (edges, minimum size, floor or ceil adaptive grid, divisor), and the sample
arithmetic is shared. Every operation is done in the
compute type ``F`` in the peers' order, without FMA or reassociation, so float32 and float64
results are bit-identical to torchvision's CPU kernel and MindSpore's ROIAlign.
``half_arithmetic`` rounds every single operation to binary16, which is how both peers compute
float16.

Design, in two phases:

1. **Plan** (``roiops.roi_align.plan``, vectorized NumPy: it is small). Each axis of every
   roi gets a table of its *valid* samples (coordinate inside ``[-1, size]``): the two
   neighbouring rows (or columns), their interpolation weights, and what the box gradient
   needs; invalid samples are never read (docs/decisions.md#invalid-samples-are-not-read;
   skipping them is exact, since an invalid sample adds a signed zero to an accumulator that
   can never be -0).
2. **Apply**, reusing the tables across channels. The forward parallelizes over (roi, block of
   channels) and the box gradient over rois, each output element written by one thread. The
   input gradient scatters, so it parallelizes over what it writes, (image, block of channels),
   and each task walks the rois in ascending order: every element receives its adds in
   torchvision's sequential order (roi, ph, pw, iy, ix, corner 1..4) whatever the thread count.

Two apply paths give the same bits. *In place* gathers from (or scatters into) the NCHW planes
through their strides, one channel at a time, and serves the half arithmetic. *Channels last*
is taken, for float arithmetic, when the taps outnumber the map elements several times (dense
rois): the maps are copied (or the gradient accumulated) as ``[N, H, W, C]``, so the four taps
of a sample are contiguous vectors over channels and the per-channel arithmetic, unchanged,
vectorizes. Either way each channel sees exactly the peers' operations in the peers' order.
"""
import math

import numpy as np
from numba import njit

from .._numerics import float_to_half_bits, round_to_half
from .._threads import run_tasks

# Plan and SampleTable: Numba's cache indexes of kernels taking a plan name its types where
# they were defined until the plan moved to NumPy, here. An index is unpickled before its
# staleness is checked, so the names stay importable from this module, or a cache an earlier
# roiops left fails to load.
from .plan import Plan, SampleTable, one_map  # noqa: F401

# Channels per parallel task: enough to amortize the per-task setup, small enough that a
# handful of rois still spreads over every core.
_CHANNEL_BLOCK = 16
# Channels per vector chunk of the channels-last paths; blocks are whole chunks.
_LANES = 64
# Channels per block of the channels-last copy (16 float32: one 64-byte line per pixel).
_COPY_BLOCK = 16
# The channels-last copy is made once the taps exceed this many times the map elements.
_CHANNELS_LAST_MIN_RATIO = 4
# Parallel tasks wanted at least (a thread count cannot be read in cached code).
_MIN_TASKS = 16
@njit(cache=True, error_model="numpy")
def _h(value, half):
    """``value`` rounded to binary16 when computing in half, else unchanged (one peer op).

    A NaN passes through with its sign: x86 makes 0/0 a negative NaN and the peers' half
    conversions keep the sign (MindSpore's empty bins are 0xfe00 in float16).
    """
    if half and value == value:
        return round_to_half(value)
    return value


@njit(cache=True, error_model="numpy")
def _half_bits(value):
    """The binary16 bits of float32 ``value``, keeping the sign of a NaN (see ``_h``)."""
    if value != value:
        return np.uint16(0xFE00) if math.copysign(1.0, value) < 0 else np.uint16(0x7E00)
    return float_to_half_bits(value)


def _use_channels_last(plan, input_shape):
    """Whether to gather from a channels-last copy of the maps rather than in place.

    A channels-last copy makes the four taps of a sample contiguous vectors over channels,
    which vectorize and stream; it costs one pass over the maps. It pays off once the taps
    outnumber the map elements a few times over (dense rois on a map), not for a few rois.
    """
    batch, channels, height, width = input_shape
    y_first, x_first = plan.ys.first, plan.xs.first
    samples = int(((y_first[:, -1] - y_first[:, 0]) * (x_first[:, -1] - x_first[:, 0])).sum())
    return 4 * channels * samples >= _CHANNELS_LAST_MIN_RATIO * batch * channels * height * width


@njit(cache=True, error_model="numpy")
def channels_last_row(input, b, first_channel, y, row):
    """``row[x, c] = input[b, first_channel + c, y, x]`` for every pixel ``x`` and channel
    ``c`` of the ``[W, lanes]`` ``row``, a block of ``_COPY_BLOCK`` channels at a time: the
    block's channel rows are read as that many sequential streams, which the hardware
    prefetcher follows (the rows of all 256 channels at once it does not: the copy of an
    FPN pyramid took 1.5 times as long), and each pixel's block is a whole cache line of
    float32."""
    width, lanes = row.shape
    whole_blocks = lanes // _COPY_BLOCK * _COPY_BLOCK
    for first in range(0, whole_blocks, _COPY_BLOCK):
        for x in range(width):
            for c in range(first, first + _COPY_BLOCK):
                row[x, c] = input[b, first_channel + c, y, x]
    for x in range(width):
        for c in range(whole_blocks, lanes):
            row[x, c] = input[b, first_channel + c, y, x]


@njit(cache=True, nogil=True, error_model="numpy")
def _channels_last_rows(input, result, task_begin, task_end):
    """``result[b, y, x, c] = input[b, c, y, x]`` for the (image, row) tasks given."""
    height = result.shape[1]
    for task in range(task_begin, task_end):
        b = task // height
        y = task % height
        channels_last_row(input, b, 0, y, result[b, y])


def _channels_last(input):
    """A C-contiguous ``[N, H, W, C]`` copy of ``[N, C, H, W]`` ``input`` (any strides)."""
    batch, channels, height, width = input.shape
    result = np.empty((batch, height, width, channels), input.dtype)
    run_tasks(_channels_last_rows, batch * height, input, result)
    return result


@njit(cache=True, nogil=True, error_model="numpy")
def _channels_first_planes(out, source, task_begin, task_end):
    """``out[n, c, y, x] = source[n, y, x, c]`` for the (image, channel) tasks given."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    for task in range(task_begin, task_end):
        b = task // channels
        c = task % channels
        for y in range(height):
            for x in range(width):
                out[b, c, y, x] = source[b, y, x, c]


@njit(cache=True, error_model="numpy")
def sample_value(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx, half):
    """One valid sample's bilinear value, the per-sample formula of every gathering path
    (roi_align's in-place forward, ps_roi_align's forward):
    ``((w1*v1 + w2*v2) + w3*v3) + w4*v4`` with ``w1 = hy*hx, w2 = hy*lx, w3 = ly*hx,
    w4 = ly*lx`` in the peers' order; every op rounded to half when ``half``."""
    w1 = _h(hy * hx, half)
    w2 = _h(hy * lx, half)
    w3 = _h(ly * hx, half)
    w4 = _h(ly * lx, half)
    term = _h(_h(w1 * plane[row_lo, col_lo], half) + _h(w2 * plane[row_lo, col_hi], half),
              half)
    term = _h(term + _h(w3 * plane[row_hi, col_lo], half), half)
    return _h(term + _h(w4 * plane[row_hi, col_hi], half), half)


@njit(cache=True, error_model="numpy")
def scatter_sample(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx, g, count, half):
    """The adjoint of :func:`sample_value`: add ``(g * w_i) / count`` to the four corners in
    order ``i = 1..4`` (a pinned sample's corners are one pixel: the order matters)."""
    w1 = _h(hy * hx, half)
    w2 = _h(hy * lx, half)
    w3 = _h(ly * hx, half)
    w4 = _h(ly * lx, half)
    plane[row_lo, col_lo] = _h(plane[row_lo, col_lo] + _h(_h(g * w1, half) / count, half), half)
    plane[row_lo, col_hi] = _h(plane[row_lo, col_hi] + _h(_h(g * w2, half) / count, half), half)
    plane[row_hi, col_lo] = _h(plane[row_hi, col_lo] + _h(_h(g * w3, half) / count, half), half)
    plane[row_hi, col_hi] = _h(plane[row_hi, col_hi] + _h(_h(g * w4, half) / count, half), half)


@njit(cache=True, error_model="numpy")
def sample_slopes(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx):
    """``(d value/dy, d value/dx)`` of :func:`sample_value` with the other axis' weights
    fixed: ``hx*(v3 - v1) + lx*(v4 - v2)`` and ``hy*(v2 - v1) + ly*(v4 - v3)``."""
    v1 = plane[row_lo, col_lo]
    v2 = plane[row_lo, col_hi]
    v3 = plane[row_hi, col_lo]
    v4 = plane[row_hi, col_hi]
    return hx * (v3 - v1) + lx * (v4 - v2), hy * (v2 - v1) + ly * (v4 - v3)


@njit(cache=True, error_model="numpy")
def _store(out, out_half, k, c, ph, pw, value):
    if out_half:
        out[k, c, ph, pw] = _half_bits(value)
    else:
        out[k, c, ph, pw] = value


@njit(cache=True, error_model="numpy")
def _forward_in_place(input, out, out_half, k, batch_index, first_channel, stop_channel,
                      count, ys, xs, half, F):
    """Output bins of roi ``k``, channels ``[first_channel, stop_channel)``, gathered from the
    ``[N, C, H, W]`` maps through their strides; every op rounded to half when ``half``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    for c in range(first_channel, stop_channel):
        plane = input[batch_index, c]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                acc = F(0)
                for j in range(y_first[k, ph], y_first[k, ph + 1]):
                    row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                    for i in range(x_first[k, pw], x_first[k, pw + 1]):
                        col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                        acc = _h(acc + sample_value(plane, row_lo, row_hi, col_lo, col_hi,
                                                    ly, hy, lx, hx, half), half)
                _store(out, out_half, k, c, ph, pw, _h(acc / count, half))


@njit(cache=True, error_model="numpy")
def _forward_channels_last(features, out, out_half, k, batch_index, first_channel,
                           stop_channel, count, ys, xs, acc, F):
    """As ``_forward_in_place`` (float path) from ``[N, H, W, C]`` ``features``: the channel
    loop is innermost over contiguous memory, so the same per-channel arithmetic vectorizes.
    ``acc`` (``[bins, >= channels]``) holds every bin's sums; the roi's result is written
    out once, channel by channel, contiguous over its bins (writing each bin's channels
    straight into ``[K, C, PH, PW]``, strided by the bin count, made the forwards of the
    roi_align and multi-scale benchmarks about 5% slower)."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    image = features[batch_index]
    offset = np.uint64(first_channel)
    num_channels = stop_channel - first_channel
    num_chunks = num_channels // _LANES
    for ph in range(pooled_height):
        for pw in range(pooled_width):
            bin_acc = acc[ph * pooled_width + pw]
            for c in range(num_channels):
                bin_acc[c] = F(0)
            for j in range(y_first[k, ph], y_first[k, ph + 1]):
                row_lo, row_hi = np.int64(y_low[j]), np.int64(y_high[j])
                ly, hy = y_frac[j], y_comp[j]
                for i in range(x_first[k, pw], x_first[k, pw + 1]):
                    col_lo, col_hi = np.int64(x_low[i]), np.int64(x_high[i])
                    lx, hx = x_frac[i], x_comp[i]
                    w1 = hy * hx
                    w2 = hy * lx
                    w3 = ly * hx
                    w4 = ly * lx
                    # Whole-pixel views (not slices) keep the unit stride visible to LLVM.
                    v1 = image[row_lo, col_lo]
                    v2 = image[row_lo, col_hi]
                    v3 = image[row_hi, col_lo]
                    v4 = image[row_hi, col_hi]
                    # Channel chunks of a compile-time length let LLVM emit straight vector
                    # code (a runtime trip count costs twice as much here); unsigned indices
                    # skip Numba's negative-index wraparound, which would become gathers.
                    for chunk in range(num_chunks):
                        lanes = bin_acc[chunk * _LANES:(chunk + 1) * _LANES]
                        base = offset + np.uint64(chunk * _LANES)
                        for c in range(_LANES):
                            s = base + np.uint64(c)
                            lanes[c] += ((w1 * v1[s] + w2 * v2[s]) + w3 * v3[s]) + w4 * v4[s]
                    for c in range(num_chunks * _LANES, num_channels):
                        s = offset + np.uint64(c)
                        bin_acc[c] += ((w1 * v1[s] + w2 * v2[s]) + w3 * v3[s]) + w4 * v4[s]
    # The branch stays outside the loops: inside, the half conversion would keep LLVM from
    # vectorizing the whole function.
    if out_half:
        for c in range(num_channels):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    out[k, first_channel + c, ph, pw] = _half_bits(
                        acc[ph * pooled_width + pw, c] / count)
    else:
        for c in range(num_channels):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    out[k, first_channel + c, ph, pw] = acc[ph * pooled_width + pw, c] / count


def _vector_blocks(channels, num_tasks_other):
    """(channels per block, blocks) for the channels-last paths: as few blocks as keep every
    thread busy (long blocks amortize the per-sample work over more channels), each a whole
    number of ``_LANES`` chunks."""
    wanted = (_MIN_TASKS + num_tasks_other - 1) // num_tasks_other
    num_blocks = max(1, min(wanted, (channels + _LANES - 1) // _LANES))
    block = (channels + num_blocks - 1) // num_blocks
    block = (block + _LANES - 1) // _LANES * _LANES
    return block, (channels + block - 1) // block


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_channels_last_tasks(features, out, out_half, batch_indices, block, num_blocks,
                                 plan, F, task_begin, task_end):
    """``_forward_channels_last`` of the (roi, channel block) tasks given."""
    channels = out.shape[1]
    acc = np.empty((out.shape[2] * out.shape[3], block), F)
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * block
        stop_channel = min(first_channel + block, channels)
        _forward_channels_last(features, out, out_half, k, batch_indices[k], first_channel,
                               stop_channel, plan.count[k], plan.ys, plan.xs, acc, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_in_place_tasks(input, out, out_half, batch_indices, num_blocks, plan, half, F,
                            task_begin, task_end):
    """``_forward_in_place`` of the (roi, ``_CHANNEL_BLOCK`` channels) tasks given."""
    channels = out.shape[1]
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
        _forward_in_place(input, out, out_half, k, batch_indices[k], first_channel,
                          stop_channel, plan.count[k], plan.ys, plan.xs, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_in_place_float(input, out, batch_indices, num_blocks, plan, F, task_begin,
                            task_end):
    """``_forward_in_place_tasks`` into a float ``out`` in float arithmetic: the constant
    ``False`` switches compile a variant without any half rounding (one with a runtime
    switch compiled the half arithmetic too, for nothing)."""
    _forward_in_place_tasks(input, out, False, batch_indices, num_blocks, plan, False, F,
                            task_begin, task_end)


def forward(input, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
            half_arithmetic, out, out_half, F):
    """roi_align forward into ``out`` ``[K, C, PH, PW]`` (dtype ``F``, or uint16 half bits when
    ``out_half``): each bin is the sum of its samples' bilinear values, iy-major, divided by
    the count (docs/torchvision.md#accumulation, docs/mindspore.md#roialign-samples)."""
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    num_rois, pooled_height, pooled_width = out.shape[0], out.shape[2], out.shape[3]
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, pooled_height,
                   pooled_width, height, width, half_arithmetic, F)
    if not half_arithmetic and _use_channels_last(plan, input.shape):
        block, num_blocks = _vector_blocks(channels, num_rois)
        run_tasks(_forward_channels_last_tasks, num_rois * num_blocks, _channels_last(input),
                  out, out_half, batch_indices, block, num_blocks, plan, F)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        if half_arithmetic or out_half:
            run_tasks(_forward_in_place_tasks, num_rois * num_blocks, input, out, out_half,
                      batch_indices, num_blocks, plan, half_arithmetic, F)
        else:
            run_tasks(_forward_in_place_float, num_rois * num_blocks, input, out,
                      batch_indices, num_blocks, plan, F)


@njit(cache=True, error_model="numpy")
def _grad_input_in_place(grads, out, k, batch_index, first_channel, stop_channel, count, ys,
                         xs, half, F):
    """Scatter roi ``k``'s gradient into the ``[N, C, H, W]`` ``out`` planes of channels
    ``[first_channel, stop_channel)``: each valid sample adds ``(g * w) / count`` to its four
    corners in order; every op rounded to half when ``half``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    for c in range(first_channel, stop_channel):
        plane = out[batch_index, c]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                g = grads[k, c, ph, pw]
                for j in range(y_first[k, ph], y_first[k, ph + 1]):
                    row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                    for i in range(x_first[k, pw], x_first[k, pw + 1]):
                        col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                        scatter_sample(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx,
                                       g, count, half)


@njit(cache=True, error_model="numpy")
def _scatter_corner(pixel, offset, g, weight, count, num_channels):
    """``pixel[offset + c] += (g[c] * weight) / count`` for every channel ``c`` of the block,
    in fixed-length vector chunks (see ``_forward_channels_last``)."""
    num_chunks = num_channels // _LANES
    for chunk in range(num_chunks):
        lanes = g[chunk * _LANES:(chunk + 1) * _LANES]
        base = offset + np.uint64(chunk * _LANES)
        for c in range(_LANES):
            s = base + np.uint64(c)
            pixel[s] += (lanes[c] * weight) / count
    for c in range(num_chunks * _LANES, num_channels):
        s = offset + np.uint64(c)
        pixel[s] += (g[c] * weight) / count


@njit(cache=True, error_model="numpy")
def _grad_input_channels_last(grads, image, image_channel, k, first_channel, stop_channel,
                              count, ys, xs, g):
    """As ``_grad_input_in_place`` (float path) into the ``[H, W, C']`` ``image``: channel
    ``first_channel + c`` of the gradient is added at ``image_channel + c``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    offset = np.uint64(image_channel)
    num_channels = stop_channel - first_channel
    for ph in range(pooled_height):
        for pw in range(pooled_width):
            for c in range(num_channels):
                g[c] = grads[k, first_channel + c, ph, pw]
            for j in range(y_first[k, ph], y_first[k, ph + 1]):
                row_lo, row_hi = np.int64(y_low[j]), np.int64(y_high[j])
                ly, hy = y_frac[j], y_comp[j]
                for i in range(x_first[k, pw], x_first[k, pw + 1]):
                    col_lo, col_hi = np.int64(x_low[i]), np.int64(x_high[i])
                    lx, hx = x_frac[i], x_comp[i]
                    # Corner by corner: a pinned sample's corners are the same pixel, and
                    # its adds must land in order 1..4.
                    _scatter_corner(image[row_lo, col_lo], offset, g, hy * hx, count,
                                    num_channels)
                    _scatter_corner(image[row_lo, col_hi], offset, g, hy * lx, count,
                                    num_channels)
                    _scatter_corner(image[row_hi, col_lo], offset, g, ly * hx, count,
                                    num_channels)
                    _scatter_corner(image[row_hi, col_hi], offset, g, ly * lx, count,
                                    num_channels)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_channels_last_tasks(grads, gradient, batch_indices, block, num_blocks, plan,
                                    F, task_begin, task_end):
    """``_grad_input_channels_last`` of the (image, channel block) tasks given, every roi of
    the image in ascending order."""
    channels = gradient.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * block
        stop_channel = min(first_channel + block, channels)
        g = np.empty(stop_channel - first_channel, F)
        for k in range(grads.shape[0]):
            if batch_indices[k] == b:
                _grad_input_channels_last(grads, gradient[b], first_channel, k, first_channel,
                                          stop_channel, plan.count[k], plan.ys, plan.xs, g)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_in_place_tasks(grads, out, batch_indices, num_blocks, plan, half, F,
                               task_begin, task_end):
    """``_grad_input_in_place`` of the (image, ``_CHANNEL_BLOCK`` channels) tasks given,
    every roi of the image in ascending order."""
    channels = out.shape[1]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
        for k in range(grads.shape[0]):
            if batch_indices[k] == b:
                _grad_input_in_place(grads, out, k, b, first_channel, stop_channel,
                                     plan.count[k], plan.ys, plan.xs, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_in_place_float(grads, out, batch_indices, num_blocks, plan, F, task_begin,
                               task_end):
    """``_grad_input_in_place_tasks`` in float arithmetic (see ``_forward_in_place_float``)."""
    _grad_input_in_place_tasks(grads, out, batch_indices, num_blocks, plan, False, F,
                               task_begin, task_end)


def grad_input(grads, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
               half_arithmetic, out, out_channels_last, F):
    """Gradient of the forward w.r.t. its input, added into the zeroed ``[N, C, H, W]`` ``out``.

    ``out_channels_last`` is either the same memory as ``out`` seen as a C-contiguous
    ``[N, H, W, C]`` array (the channels-last path then accumulates straight into the result)
    or an empty array (the channels-last path then needs a temporary of the result's size).

    The adjoint of ``forward`` (same convention geometry): every valid sample of
    bin ``(k, c, ph, pw)`` adds ``(grads[k, c, ph, pw] * w_i) / count`` to its corners
    ``i = 1..4``. Each task owns an (image, channel block) and walks the rois in ascending
    order, so every element receives its adds in the sequential order (roi, ph, pw, iy, ix,
    corner) on any number of threads: bit-identical to torchvision's CPU backward and to
    MindSpore's single-threaded ROIAlignGrad (the geometry of ``MINDSPORE_END_MODE_1``).
    """
    batch, channels, height, width = out.shape
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, pooled_height,
                   pooled_width, height, width, half_arithmetic, F)
    if not half_arithmetic and _use_channels_last(plan, out.shape):
        in_place = out_channels_last.size == out.size
        if in_place:
            gradient = out_channels_last
        else:
            gradient = np.zeros((batch, height, width, channels), F)
        block, num_blocks = _vector_blocks(channels, batch)
        run_tasks(_grad_input_channels_last_tasks, batch * num_blocks, grads, gradient,
                  batch_indices, block, num_blocks, plan, F)
        if not in_place:
            run_tasks(_channels_first_planes, batch * channels, out, gradient)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        if half_arithmetic:
            run_tasks(_grad_input_in_place_tasks, batch * num_blocks, grads, out,
                      batch_indices, num_blocks, plan, True, F)
        else:
            run_tasks(_grad_input_in_place_float, batch * num_blocks, grads, out,
                      batch_indices, num_blocks, plan, F)


@njit(cache=True, error_model="numpy")
def _edge_derivatives(slopes, first, stop, positions, clamped, spatial_scale, F):
    """``(d/d low, d/d high)`` of one roi axis from the per-sample slopes ``d out / d c``.

    A sample at ``c = start + a * size`` (``a`` its ``position``) moves by ``s * (1 - a)`` per
    unit of the low edge and ``s * a`` per unit of the high edge; when the minimum size
    fired, ``size`` is the constant 1 and ``c`` moves only with the low edge, by ``s``.
    """
    d_low = F(0)
    d_high = F(0)
    for e in range(first, stop):
        if clamped:
            d_low += slopes[e - first] * spatial_scale
        else:
            d_low += slopes[e - first] * (spatial_scale * (F(1) - positions[e]))
            d_high += slopes[e - first] * (spatial_scale * positions[e])
    return d_low, d_high


def grad_boxes(grads, input, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
               out, F):
    """Gradient of ``sum(grads * forward(input, rois))`` w.r.t. x1, y1, x2, y2, into columns
    1..4 of the zeroed ``[K, 5]`` ``out`` (column 0, the batch index, has none). No peer has it
    (docs/arithmetic.md#roi_align-box-gradient).

    Derivation, for the y axis (x is the same with W, PW, x1, x2). Hold the sample grid
    ``gh, gw`` and the count fixed (they are piecewise constant in the box). A sample row is
    ``y = start + (ph + (iy + 0.5)/gh) / PH * size = start + a * size`` with
    ``start = y1*s - off``, ``size = (y2 - y1)*s`` (torchvision) or ``start = y1*s``,
    ``size = (y2 + mode - y1)*s`` (MindSpore); so ``dy/dy1 = s*(1 - a)`` and
    ``dy/dy2 = s*a``, or ``s`` and ``0`` when the minimum size 1 fired (size constant). A
    valid sample's value is ``(1 - ly)*(hx*v1 + lx*v2) + ly*(hx*v3 + lx*v4)`` with
    ``ly = y - y_lo``, so ``d value/dy = hx*(v3 - v1) + lx*(v4 - v2)`` (and
    ``d value/dx = hy*(v2 - v1) + ly*(v4 - v3)``), except where the forward is locally
    constant in y: clamped (``y <= 0``), pinned (``y_lo >= H - 1``), or invalid (not
    sampled). With ``out = sum(values) / count``:

        d loss/d y1 = sum over (c, ph, pw) of grads * sum over samples of
                      d value/dy * dy/dy1 / count.

    At kinks (integer coordinates, clamp and validity boundaries) this is the one-sided
    derivative on the side the forward's floor picks. An empty grid gives 0 (also for
    MindSpore's NaN bins). Computed in ``F``; per roi the slopes are summed over channels and
    bins per sample row and column first, then weighted by ``dy/dy1``: deterministic, one
    thread per roi.
    """
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, grads.shape[2],
                   grads.shape[3], input.shape[2], input.shape[3], False, F)
    run_tasks(_grad_boxes, grads.shape[0], grads, input, batch_indices, spatial_scale, plan,
              out, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_boxes(grads, input, batch_indices, spatial_scale, plan, out, F, roi_begin, roi_end):
    """``grad_boxes`` of the rois ``[roi_begin, roi_end)``."""
    for k in range(roi_begin, roi_end):
        grad_boxes_roi(grads, input, k, batch_indices[k], spatial_scale, plan, out, F)


@njit(cache=True, error_model="numpy")
def grad_boxes_roi(grads, input, k, b, spatial_scale, plan, out, F):
    """Row ``k`` of ``grad_boxes``: roi ``k`` reads image ``b`` of ``input`` at
    ``spatial_scale`` (the scale its plan was made with)."""
    channels, pooled_height, pooled_width = grads.shape[1], grads.shape[2], grads.shape[3]
    ys, xs = plan.ys, plan.xs
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    y_active, x_active = ys.active, xs.active
    if plan.grid_h[k] <= 0 or plan.grid_w[k] <= 0:
        return  # no samples at all
    y_begin, y_end = y_first[k, 0], y_first[k, pooled_height]
    x_begin, x_end = x_first[k, 0], x_first[k, pooled_width]
    # d(sum of grads * values)/d(coordinate) of each sample row and column of the roi
    row_slopes = np.zeros(y_end - y_begin, F)
    column_slopes = np.zeros(x_end - x_begin, F)
    for c in range(channels):
        plane = input[b, c]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                g = grads[k, c, ph, pw]
                for j in range(y_first[k, ph], y_first[k, ph + 1]):
                    row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                    for i in range(x_first[k, pw], x_first[k, pw + 1]):
                        col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                        slope_y, slope_x = sample_slopes(plane, row_lo, row_hi, col_lo, col_hi,
                                                         ly, hy, lx, hx)
                        if y_active[j]:
                            row_slopes[j - y_begin] += g * slope_y
                        if x_active[i]:
                            column_slopes[i - x_begin] += g * slope_x
    d_y1, d_y2 = _edge_derivatives(row_slopes, y_begin, y_end, ys.position,
                                   plan.y_clamped[k], spatial_scale, F)
    d_x1, d_x2 = _edge_derivatives(column_slopes, x_begin, x_end, xs.position,
                                   plan.x_clamped[k], spatial_scale, F)
    count = plan.count[k]
    out[k, 1] = d_x1 / count
    out[k, 2] = d_y1 / count
    out[k, 3] = d_x2 / count
    out[k, 4] = d_y2 / count
