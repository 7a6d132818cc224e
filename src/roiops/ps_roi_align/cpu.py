"""Numba CPU kernels of ps_roi_align: forward, gradient w.r.t. the input and w.r.t. the boxes.

Position-sensitive RoI Align is roi_align's aligned torchvision geometry with one change of
data flow: output bin ``(k, c, ph, pw)`` samples input channel ``(c * PH + ph) * PW + pw``
instead of channel ``c``, and its divisor is ``gh * gw`` without roi_align's minimum of 1
(an empty adaptive grid gives torchvision's 0/0 = NaN). So everything else is roi_align's:
the plan of valid samples per roi and axis (``roiops.roi_align.plan``) and the
per-sample formulas (``sample_value``, ``scatter_sample``, ``sample_slopes``), called, not
copied; the arithmetic is torchvision's operation for operation, float16 in half
(docs/position_sensitive.md#ps_roi_align).

Parallel tasks, each output element written by one thread: the forward and the input
gradient over (image, block of input channels), channel-major: an input channel feeds one
bin of one output channel of every roi, so each task walks the rois of its image for one
channel at a time while that channel's plane stays in cache (roi-major loops would read
every plane from memory once per roi: twice as slow as torchvision's single thread gained).
An input channel receives from one bin per roi, in ascending roi order, so every element
gets its adds in torchvision's sequential order (roi, iy, ix, corner 1..4) whatever the
thread count. The box gradient runs over rois.
"""
import numpy as np
from numba import njit

from .._threads import run_tasks
from ..roi_align.cpu import (
    _edge_derivatives,
    _h,
    _store,
    sample_slopes,
    sample_value,
    scatter_sample,
)
from ..roi_align.plan import one_map

# Channels per parallel task (output channels in the forward, input channels in the input
# gradient): enough to amortize a task's setup, few enough that a handful of rois spreads.
_CHANNEL_BLOCK = 16


@njit(cache=True, error_model="numpy")
def channel_bin(c, pooled_height, pooled_width):
    """``(c_out, ph, pw)``: the output bin that input channel ``c`` feeds,
    ``c = (c_out * PH + ph) * PW + pw``."""
    c_out = c // (pooled_height * pooled_width)
    return c_out, (c // pooled_width) % pooled_height, c % pooled_width


@njit(cache=True, error_model="numpy")
def _counts(grid_h, grid_w, half, F):
    """torchvision's divisor of every roi, ``F(gh * gw)``: no minimum, so an empty grid gives
    0/0 = NaN and a reversed box's negative grid a signed zero, as torchvision has them."""
    count = np.empty(grid_h.shape[0], F)
    for k in range(grid_h.shape[0]):
        count[k] = _h(F(grid_h[k] * grid_w[k]), half)
    return count


def rois_by_image(batch_indices, batch):
    """``(order, starts)``: the rois of image ``b`` are ``order[starts[b]:starts[b + 1]]``,
    ascending (the per-image loops of the kernels)."""
    order = np.argsort(batch_indices, kind="stable")
    starts = np.searchsorted(batch_indices[order], np.arange(batch + 1))
    return order, starts


# float32 values per 64-byte cache line: the stride of the streaming read
_LINE = 16


def dense(starts, height, width):
    """Whether to stream each plane into cache before its rois read it: when the rois of an
    image read about as many cache lines of a plane as it has (a few lines each), a
    sequential read (which the hardware prefetches) is cheaper than their scattered misses;
    on R-FCN maps it took a 1-thread forward from 54 to 35 ms. Not for a few rois on large
    maps, where it would read the whole map for nothing."""
    most = int(np.max(starts[1:] - starts[:-1])) if starts.size > 1 else 0
    return 4 * most * _LINE >= height * width


@njit(cache=True, error_model="numpy")
def stream(plane):
    """Read one value per cache line of ``plane`` in memory order; the sum is returned only
    so that the reads are not optimized away."""
    total = 0.0
    for y in range(plane.shape[0]):
        for x in range(0, plane.shape[1], _LINE):
            total += plane[y, x]
    return total


@njit(cache=True, error_model="numpy")
def _forward_bin(plane, out, out_half, k, c_out, ph, pw, count, ys, xs, half, F):
    """Output bin ``(k, c_out, ph, pw)`` from its channel's ``plane``: the sum of its valid
    samples, iy-major, divided by ``count``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    acc = F(0)
    for j in range(y_first[k, ph], y_first[k, ph + 1]):
        row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
        for i in range(x_first[k, pw], x_first[k, pw + 1]):
            col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
            acc = _h(acc + sample_value(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx,
                                        half), half)
    _store(out, out_half, k, c_out, ph, pw, _h(acc / count, half))


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_tasks(input, out, out_half, order, starts, num_blocks, streamed, sink, plan,
                   count, half, F, task_begin, task_end):
    """The (image, ``_CHANNEL_BLOCK`` input channels) tasks given: each input channel feeds
    one bin of one output channel of every roi of its image. Channel-major, so that the
    channel's plane stays in cache across the rois (roi-major loops read every plane once
    per roi, from memory)."""
    channels = input.shape[1]
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        for c in range(first_channel, min(first_channel + _CHANNEL_BLOCK, channels)):
            c_out, ph, pw = channel_bin(c, pooled_height, pooled_width)
            plane = input[b, c]
            if streamed:
                sink[task] += stream(plane)
            for r in range(starts[b], starts[b + 1]):
                k = order[r]
                _forward_bin(plane, out, out_half, k, c_out, ph, pw, count[k], plan.ys,
                             plan.xs, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_float(input, out, order, starts, num_blocks, streamed, sink, plan, count, F,
                   task_begin, task_end):
    """``_forward_tasks`` into a float ``out`` in float arithmetic: the constants compile a
    variant without half rounding (as roi_align's ``_forward_in_place_float``)."""
    _forward_tasks(input, out, False, order, starts, num_blocks, streamed, sink, plan, count,
                   False, F, task_begin, task_end)


def forward(input, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
            half_arithmetic, out, out_half, F):
    """ps_roi_align forward into ``out`` ``[K, C / (PH*PW), PH, PW]`` (dtype ``F``, or uint16
    half bits when ``out_half``); every op rounded to half when ``half_arithmetic``."""
    batch, channels, height, width = input.shape
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, pooled_height,
                   pooled_width, height, width, half_arithmetic, F)
    count = _counts(plan.grid_h, plan.grid_w, half_arithmetic, F)
    order, starts = rois_by_image(batch_indices, batch)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    streamed = dense(starts, height, width)
    sink = np.zeros(batch * num_blocks)
    if half_arithmetic or out_half:
        run_tasks(_forward_tasks, batch * num_blocks, input, out, out_half, order, starts,
                  num_blocks, streamed, sink, plan, count, half_arithmetic, F)
    else:
        run_tasks(_forward_float, batch * num_blocks, input, out, order, starts, num_blocks,
                  streamed, sink, plan, count, F)


@njit(cache=True, error_model="numpy")
def _grad_input_bin(grads, plane, k, c_out, ph, pw, count, ys, xs, half):
    """Scatter the gradient of bin ``(k, c_out, ph, pw)`` into its channel's ``plane``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    g = grads[k, c_out, ph, pw]
    for j in range(y_first[k, ph], y_first[k, ph + 1]):
        row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
        for i in range(x_first[k, pw], x_first[k, pw + 1]):
            col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
            scatter_sample(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx, g, count,
                           half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_tasks(grads, out, order, starts, num_blocks, plan, count, half, task_begin,
                      task_end):
    """The (image, ``_CHANNEL_BLOCK`` input channels) tasks given, channel-major (see
    ``_forward_tasks``), every roi of the image in ascending order."""
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
                _grad_input_bin(grads, plane, k, c_out, ph, pw, count[k], plan.ys, plan.xs,
                                half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_float(grads, out, order, starts, num_blocks, plan, count, task_begin,
                      task_end):
    """``_grad_input_tasks`` in float arithmetic (see ``_forward_float``)."""
    _grad_input_tasks(grads, out, order, starts, num_blocks, plan, count, False, task_begin,
                      task_end)


def grad_input(grads, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
               half_arithmetic, out, F):
    """Gradient of the forward w.r.t. its input, written into every element of the
    ``[N, C, H, W]`` ``out`` of dtype ``F`` (each task zeroes its planes first): every valid
    sample of bin ``(k, c_out, ph, pw)`` adds ``(grads[k, c_out, ph, pw] * w_i) / count`` to
    its corners ``i = 1..4`` in channel ``(c_out * PH + ph) * PW + pw``, in torchvision's
    sequential order."""
    batch, channels, height, width = out.shape
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, pooled_height,
                   pooled_width, height, width, half_arithmetic, F)
    count = _counts(plan.grid_h, plan.grid_w, half_arithmetic, F)
    order, starts = rois_by_image(batch_indices, batch)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    if half_arithmetic:
        run_tasks(_grad_input_tasks, batch * num_blocks, grads, out, order, starts,
                  num_blocks, plan, count, True)
    else:
        run_tasks(_grad_input_float, batch * num_blocks, grads, out, order, starts,
                  num_blocks, plan, count)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_boxes(grads, input, batch_indices, spatial_scale, plan, count, out, F, roi_begin,
                roi_end):
    """``grad_boxes`` of the rois ``[roi_begin, roi_end)``."""
    channels, pooled_height, pooled_width = grads.shape[1], grads.shape[2], grads.shape[3]
    ys, xs = plan.ys, plan.xs
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    y_active, x_active = ys.active, xs.active
    for k in range(roi_begin, roi_end):
        if plan.grid_h[k] <= 0 or plan.grid_w[k] <= 0:
            continue  # no samples at all
        y_begin, y_end = y_first[k, 0], y_first[k, pooled_height]
        x_begin, x_end = x_first[k, 0], x_first[k, pooled_width]
        row_slopes = np.zeros(y_end - y_begin, F)
        column_slopes = np.zeros(x_end - x_begin, F)
        b = batch_indices[k]
        for c in range(channels):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    plane = input[b, (c * pooled_height + ph) * pooled_width + pw]
                    g = grads[k, c, ph, pw]
                    for j in range(y_first[k, ph], y_first[k, ph + 1]):
                        row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                        for i in range(x_first[k, pw], x_first[k, pw + 1]):
                            col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                            slope_y, slope_x = sample_slopes(plane, row_lo, row_hi, col_lo,
                                                             col_hi, ly, hy, lx, hx)
                            if y_active[j]:
                                row_slopes[j - y_begin] += g * slope_y
                            if x_active[i]:
                                column_slopes[i - x_begin] += g * slope_x
        d_y1, d_y2 = _edge_derivatives(row_slopes, y_begin, y_end, ys.position,
                                       plan.y_clamped[k], spatial_scale, F)
        d_x1, d_x2 = _edge_derivatives(column_slopes, x_begin, x_end, xs.position,
                                       plan.x_clamped[k], spatial_scale, F)
        out[k, 1] = d_x1 / count[k]
        out[k, 2] = d_y1 / count[k]
        out[k, 3] = d_x2 / count[k]
        out[k, 4] = d_y2 / count[k]


def grad_boxes(grads, input, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
               out, F):
    """Gradient of ``sum(grads * forward(input, rois))`` w.r.t. x1, y1, x2, y2 into columns
    1..4 of the zeroed ``[K, 5]`` ``out``: roi_align's derivation
    (docs/arithmetic.md#roi_align-box-gradient) with each bin reading its own channel. The
    sample grid and count are held fixed; an empty grid gives 0. One thread per roi."""
    plan = one_map(rois, spatial_scale, sampling_ratio, geometry, grads.shape[2],
                   grads.shape[3], input.shape[2], input.shape[3], False, F)
    count = _counts(plan.grid_h, plan.grid_w, False, F)
    run_tasks(_grad_boxes, grads.shape[0], grads, input, batch_indices, spatial_scale, plan,
              count, out, F)
