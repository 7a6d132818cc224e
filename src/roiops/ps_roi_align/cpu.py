"""Numba CPU kernels of ps_roi_align: forward, gradient w.r.t. the input and w.r.t. the boxes.

Position-sensitive RoI Align is roi_align's aligned torchvision geometry with one change of
data flow: output bin ``(k, c, ph, pw)`` samples input channel ``(c * PH + ph) * PW + pw``
instead of channel ``c``, and its divisor is ``gh * gw`` without roi_align's minimum of 1
(an empty adaptive grid gives torchvision's 0/0 = NaN). So everything else is roi_align's:
the plan of valid samples per roi and axis (``roiops.roi_align.cpu._plan``) and the
per-sample formulas (``sample_value``, ``scatter_sample``, ``sample_slopes``), called, not
copied; the arithmetic is torchvision's operation for operation, float16 in half
(docs/torchvision.md#ps_roi_align).

Parallel tasks, each output element written by one thread: the forward over (roi, block of
output channels), the box gradient over rois, the input gradient over (image, block of input
channels), each task walking the rois of its image in ascending order. An input channel
receives from one bin of one output channel per roi, so every element gets its adds in
torchvision's sequential order (roi, iy, ix, corner 1..4) whatever the thread count.
"""
import numpy as np
from numba import njit

from .._threads import run_tasks
from ..roi_align.cpu import (
    _edge_derivatives,
    _h,
    _plan_float,
    _plan_for,
    _store,
    sample_slopes,
    sample_value,
    scatter_sample,
)

# Channels per parallel task (output channels in the forward, input channels in the input
# gradient): enough to amortize a task's setup, few enough that a handful of rois spreads.
_CHANNEL_BLOCK = 16


@njit(cache=True, error_model="numpy")
def _counts(grid_h, grid_w, half, F):
    """torchvision's divisor of every roi, ``F(gh * gw)``: no minimum, so an empty grid gives
    0/0 = NaN and a reversed box's negative grid a signed zero, as torchvision has them."""
    count = np.empty(grid_h.shape[0], F)
    for k in range(grid_h.shape[0]):
        count[k] = _h(F(grid_h[k] * grid_w[k]), half)
    return count


@njit(cache=True, error_model="numpy")
def _forward_roi(input, out, out_half, k, batch_index, first_channel, stop_channel, count,
                 ys, xs, half, F):
    """Output channels ``[first_channel, stop_channel)`` of roi ``k``: each bin the sum of its
    valid samples of its own input channel, iy-major, divided by ``count``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    for c in range(first_channel, stop_channel):
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                plane = input[batch_index, (c * pooled_height + ph) * pooled_width + pw]
                acc = F(0)
                for j in range(y_first[k, ph], y_first[k, ph + 1]):
                    row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                    for i in range(x_first[k, pw], x_first[k, pw + 1]):
                        col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                        acc = _h(acc + sample_value(plane, row_lo, row_hi, col_lo, col_hi,
                                                    ly, hy, lx, hx, half), half)
                _store(out, out_half, k, c, ph, pw, _h(acc / count, half))


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_tasks(input, out, out_half, batch_indices, num_blocks, plan, count, half, F,
                   task_begin, task_end):
    """``_forward_roi`` of the (roi, ``_CHANNEL_BLOCK`` output channels) tasks given."""
    channels = out.shape[1]
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
        _forward_roi(input, out, out_half, k, batch_indices[k], first_channel, stop_channel,
                     count[k], plan.ys, plan.xs, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_float(input, out, batch_indices, num_blocks, plan, count, F, task_begin,
                   task_end):
    """``_forward_tasks`` into a float ``out`` in float arithmetic: the constants compile a
    variant without half rounding (as roi_align's ``_forward_in_place_float``)."""
    _forward_tasks(input, out, False, batch_indices, num_blocks, plan, count, False, F,
                   task_begin, task_end)


def forward(input, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
            half_arithmetic, out, out_half, F):
    """ps_roi_align forward into ``out`` ``[K, C / (PH*PW), PH, PW]`` (dtype ``F``, or uint16
    half bits when ``out_half``); every op rounded to half when ``half_arithmetic``."""
    height, width = input.shape[2], input.shape[3]
    num_rois, channels, pooled_height, pooled_width = out.shape
    plan = _plan_for(half_arithmetic, rois, spatial_scale, sampling_ratio, geometry,
                     pooled_height, pooled_width, height, width, F)
    count = _counts(plan.grid_h, plan.grid_w, half_arithmetic, F)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    if half_arithmetic or out_half:
        run_tasks(_forward_tasks, num_rois * num_blocks, input, out, out_half, batch_indices,
                  num_blocks, plan, count, half_arithmetic, F)
    else:
        run_tasks(_forward_float, num_rois * num_blocks, input, out, batch_indices,
                  num_blocks, plan, count, F)


@njit(cache=True, error_model="numpy")
def _grad_input_roi(grads, out, k, batch_index, first_channel, stop_channel, count, ys, xs,
                    half):
    """Scatter roi ``k``'s gradient into input channels ``[first_channel, stop_channel)``:
    channel ``c`` takes bin ``(ph, pw)`` of output channel ``c_out`` where
    ``c = (c_out * PH + ph) * PW + pw``."""
    y_first, y_low, y_high, y_frac, y_comp = ys.first, ys.low, ys.high, ys.frac, ys.comp
    x_first, x_low, x_high, x_frac, x_comp = xs.first, xs.low, xs.high, xs.frac, xs.comp
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    for c in range(first_channel, stop_channel):
        c_out = c // (pooled_height * pooled_width)
        ph = (c // pooled_width) % pooled_height
        pw = c % pooled_width
        plane = out[batch_index, c]
        g = grads[k, c_out, ph, pw]
        for j in range(y_first[k, ph], y_first[k, ph + 1]):
            row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
            for i in range(x_first[k, pw], x_first[k, pw + 1]):
                col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                scatter_sample(plane, row_lo, row_hi, col_lo, col_hi, ly, hy, lx, hx, g,
                               count, half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_tasks(grads, out, batch_indices, num_blocks, plan, count, half, task_begin,
                      task_end):
    """``_grad_input_roi`` of the (image, ``_CHANNEL_BLOCK`` input channels) tasks given,
    every roi of the image in ascending order."""
    channels = out.shape[1]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
        for k in range(grads.shape[0]):
            if batch_indices[k] == b:
                _grad_input_roi(grads, out, k, b, first_channel, stop_channel, count[k],
                                plan.ys, plan.xs, half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_float(grads, out, batch_indices, num_blocks, plan, count, task_begin,
                      task_end):
    """``_grad_input_tasks`` in float arithmetic (see ``_forward_float``)."""
    _grad_input_tasks(grads, out, batch_indices, num_blocks, plan, count, False, task_begin,
                      task_end)


def grad_input(grads, rois, batch_indices, spatial_scale, sampling_ratio, geometry,
               half_arithmetic, out, F):
    """Gradient of the forward w.r.t. its input, added into the zeroed ``[N, C, H, W]`` ``out``
    of dtype ``F``: every valid sample of bin ``(k, c_out, ph, pw)`` adds
    ``(grads[k, c_out, ph, pw] * w_i) / count`` to its corners ``i = 1..4`` in channel
    ``(c_out * PH + ph) * PW + pw``, in torchvision's sequential order."""
    batch, channels, height, width = out.shape
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    plan = _plan_for(half_arithmetic, rois, spatial_scale, sampling_ratio, geometry,
                     pooled_height, pooled_width, height, width, F)
    count = _counts(plan.grid_h, plan.grid_w, half_arithmetic, F)
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    if half_arithmetic:
        run_tasks(_grad_input_tasks, batch * num_blocks, grads, out, batch_indices, num_blocks,
                  plan, count, True)
    else:
        run_tasks(_grad_input_float, batch * num_blocks, grads, out, batch_indices, num_blocks,
                  plan, count)


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
    plan = _plan_float(rois, spatial_scale, sampling_ratio, geometry, grads.shape[2],
                       grads.shape[3], input.shape[2], input.shape[3], F)
    count = _counts(plan.grid_h, plan.grid_w, False, F)
    run_tasks(_grad_boxes, grads.shape[0], grads, input, batch_indices, spatial_scale, plan,
              count, out, F)
