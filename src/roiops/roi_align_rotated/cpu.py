"""Numba CPU kernels of rotated RoI Align: forward, gradient w.r.t. the input, gradient
w.r.t. the boxes.

One kernel per direction serves both conventions: a convention's ``Geometry`` record
(``roiops.roi_align_rotated.conventions``) switches the offset, the angle's unit and sign,
the minimum size and the grid rounding (docs/rotated.md); the sample arithmetic,
:func:`sample`, is defined once and shared by the three directions. Every operation is done
in the compute type ``F`` in the frameworks' order, without FMA or reassociation, so float32
and float64 results are bit-identical to detectron2's and mmcv's CPU kernels. ``half``
rounds every single operation to binary16, which is how mmcv's CPU kernel computes float16
(``roiops.roi_align.cpu._h``).

A rotated sample's row depends on both of its grid indices, so unlike roi_align there is no
per-axis table: each task recomputes its samples (a few dozen flops each) and applies them to
a block of channels, which keeps memory at a block's accumulators whatever the grid. The
forward runs over (roi, channel block) tasks, the box gradient over rois; the input gradient
scatters, so it runs over (image, channel block) tasks, each walking the rois in ascending
order: every element receives its adds in the frameworks' sequential order (roi, bin,
sample, corner 1..4) on any number of threads.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .._numerics import float_to_half_bits
from .._threads import run_tasks
from ..roi_align.cpu import (
    _CHANNELS_LAST_MIN_RATIO,
    _LANES,
    _channels_last,
    _h,
    _scatter_corner,
    _vector_blocks,
    sample_slopes,
    sample_value,
    scatter_sample,
)

# Channels per parallel task: enough to amortize the per-sample geometry, small enough that
# a handful of rois still spreads over every core.
_CHANNEL_BLOCK = 16
# Adaptive grid sizes saturate here (the frameworks' int); the validator refuses rois whose
# grid makes more than 2**31 - 1 samples anyway.
_MAX_GRID = 2147483647.0


class RoiGeometry(NamedTuple):
    """Per-roi geometry (``[K]`` arrays, docs/rotated.md#geometry)."""

    center_y: np.ndarray
    center_x: np.ndarray
    start_y: np.ndarray   # -height/2
    start_x: np.ndarray
    bin_h: np.ndarray
    bin_w: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    grid_h: np.ndarray    # int64
    grid_w: np.ndarray
    count: np.ndarray     # forward divisor max(gh*gw, 1)
    clamped_h: np.ndarray  # the minimum size held the axis (its size is the constant 1)
    clamped_w: np.ndarray


@njit(cache=True, error_model="numpy")
def _grid_size(ratio, geometry):
    """The adaptive grid ``ceil(ratio)`` as an int, saturating (NaN gives 0); mmcv takes the
    ceiling of the ratio rounded to float32 (its ``ceilf``)."""
    if geometry.grid_in_float32:
        ratio = np.float32(ratio)
    value = np.ceil(ratio)
    if not value == value:
        return 0
    if value > _MAX_GRID:
        return 2147483647
    if value < -_MAX_GRID:
        return -2147483647
    return int(value)


@njit(cache=True, error_model="numpy")
def rotation(angle, geometry, half, F):
    """``(cos, sin)`` of a roi's angle in ``F``: the angle in radians is ``angle*pi/180``
    in float64 then rounded to ``F`` (degrees) or ``angle`` itself, its sign flipped when
    clockwise; cosine and sine are the double-precision values rounded to ``F``."""
    if geometry.degrees:
        theta = F(np.float64(angle) * math.pi / 180.0)
    else:
        theta = F(angle)
    if geometry.angle_sign < 0:
        theta = -theta
    return (_h(F(math.cos(np.float64(theta))), half),
            _h(F(math.sin(np.float64(theta))), half))


@njit(cache=True, error_model="numpy")
def geometry_of(rois, spatial_scale, sampling_ratio, geometry, pooled_height, pooled_width,
                half, F):
    """The :class:`RoiGeometry` of ``[K, 6]`` rois ``(b, cx, cy, w, h, angle)`` in ``F``
    (every operation rounded to half when ``half``)."""
    num_rois = rois.shape[0]
    center_y = np.empty(num_rois, F)
    center_x = np.empty(num_rois, F)
    start_y = np.empty(num_rois, F)
    start_x = np.empty(num_rois, F)
    bin_h = np.empty(num_rois, F)
    bin_w = np.empty(num_rois, F)
    cos = np.empty(num_rois, F)
    sin = np.empty(num_rois, F)
    grid_h = np.empty(num_rois, np.int64)
    grid_w = np.empty(num_rois, np.int64)
    count = np.empty(num_rois, F)
    clamped_h = np.zeros(num_rois, np.bool_)
    clamped_w = np.zeros(num_rois, np.bool_)
    offset = F(geometry.offset)
    one = F(1)
    for k in range(num_rois):
        center_x[k] = _h(_h(rois[k, 1] * spatial_scale, half) - offset, half)
        center_y[k] = _h(_h(rois[k, 2] * spatial_scale, half) - offset, half)
        width = _h(rois[k, 3] * spatial_scale, half)
        height = _h(rois[k, 4] * spatial_scale, half)
        cos[k], sin[k] = rotation(rois[k, 5], geometry, half, F)
        if geometry.min_size_one:
            if width < one:
                width = one
                clamped_w[k] = True
            if height < one:
                height = one
                clamped_h[k] = True
        bin_h[k] = _h(height / _h(F(pooled_height), half), half)
        bin_w[k] = _h(width / _h(F(pooled_width), half), half)
        if sampling_ratio > 0:
            grid_h[k] = sampling_ratio
            grid_w[k] = sampling_ratio
        else:  # the grid's ratio is the bin size, computed the same way
            grid_h[k] = _grid_size(bin_h[k], geometry)
            grid_w[k] = _grid_size(bin_w[k], geometry)
        count[k] = _h(F(max(grid_h[k] * grid_w[k], 1)), half)
        start_y[k] = _h(-height / F(2), half)
        start_x[k] = _h(-width / F(2), half)
    return RoiGeometry(center_y, center_x, start_y, start_x, bin_h, bin_w, cos, sin, grid_h,
                       grid_w, count, clamped_h, clamped_w)


@njit(cache=True, error_model="numpy")
def bin_offset(start, p, bin_size, index, grid, half, F):
    """``(start + p*bin) + ((index + 0.5)*bin)/grid``: a sample's offset from the roi centre
    along one box axis, before rotation (``index + 0.5`` formed in float32, as both
    frameworks do)."""
    base = _h(start + _h(_h(F(p), half) * bin_size, half), half)
    centre = _h(F(np.float32(index) + np.float32(0.5)), half)
    return _h(base + _h(_h(centre * bin_size, half) / _h(F(grid), half), half), half)


@njit(cache=True, error_model="numpy")
def _axis(c, size, half, F):
    """Bilinear along one axis for ``c`` in ``[-1, size]``: ``(low, high, l, h, moving)``.

    ``c < 0`` reads row 0 at full weight (strictly below: ``-0.0`` stays), a row at or past
    the last pins both neighbours to it; ``moving`` is False where the value no longer
    depends on ``c``.
    """
    moving = True
    if c < F(0):
        c = F(0)
        moving = False
    low = np.int64(c)  # c >= 0: truncation is floor
    if low >= size - 1:
        low = size - 1
        high = low
        c = _h(F(low), half)
        moving = False
    else:
        high = low + 1
    frac = _h(c - _h(F(low), half), half)
    return low, high, frac, _h(F(1) - frac, half), moving


@njit(cache=True, error_model="numpy")
def sample(yy, xx, cos, sin, center_y, center_x, height, width, half, F):
    """One sample at box offsets ``(yy, xx)``, rotated and translated:
    ``y = (yy*cos - xx*sin) + cy``, ``x = (yy*sin + xx*cos) + cx``.

    Returns ``(valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, y_moving, x_moving)``;
    a sample is valid when ``-1 <= y <= H`` and ``-1 <= x <= W`` (NaN is not).
    """
    y = _h(_h(_h(yy * cos, half) - _h(xx * sin, half), half) + center_y, half)
    x = _h(_h(_h(yy * sin, half) + _h(xx * cos, half), half) + center_x, half)
    if not (y >= F(-1) and y <= F(height) and x >= F(-1) and x <= F(width)):
        zero = F(0)
        return False, 0, 0, 0, 0, zero, zero, zero, zero, False, False
    y_low, y_high, ly, hy, y_moving = _axis(y, height, half, F)
    x_low, x_high, lx, hx, x_moving = _axis(x, width, half, F)
    return True, y_low, y_high, x_low, x_high, ly, hy, lx, hx, y_moving, x_moving


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_in_place_tasks(input, out, out_half, batch_indices, num_blocks, geo, half, F,
                            task_begin, task_end):
    """Output bins of the (roi, ``_CHANNEL_BLOCK`` channels) tasks given, gathered from the
    ``[N, C, H, W]`` maps through their strides: per bin, the samples in order (iy-major),
    each adding roi_align's ``sample_value`` to every channel's accumulator; then
    ``acc / count``. Every op rounded to half when ``half``."""
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    acc = np.empty(_CHANNEL_BLOCK, F)
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first = (task % num_blocks) * _CHANNEL_BLOCK
        stop = min(first + _CHANNEL_BLOCK, channels)
        b = batch_indices[k]
        gh, gw = geo.grid_h[k], geo.grid_w[k]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                for c in range(stop - first):
                    acc[c] = F(0)
                for iy in range(gh):
                    yy = bin_offset(geo.start_y[k], ph, geo.bin_h[k], iy, gh, half, F)
                    for ix in range(gw):
                        xx = bin_offset(geo.start_x[k], pw, geo.bin_w[k], ix, gw, half, F)
                        (valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, _,
                         _) = sample(yy, xx, geo.cos[k], geo.sin[k], geo.center_y[k],
                                     geo.center_x[k], height, width, half, F)
                        if not valid:
                            continue
                        for c in range(first, stop):
                            acc[c - first] = _h(acc[c - first] + sample_value(
                                input[b, c], y_low, y_high, x_low, x_high, ly, hy, lx, hx,
                                half), half)
                for c in range(first, stop):
                    value = _h(acc[c - first] / geo.count[k], half)
                    if out_half:
                        out[k, c, ph, pw] = float_to_half_bits(value)
                    else:
                        out[k, c, ph, pw] = value


@njit(cache=True, error_model="numpy")
def _gather_pixels(acc, v1, v2, v3, v4, w1, w2, w3, w4, offset, num_channels):
    """``acc[c] += ((w1*v1 + w2*v2) + w3*v3) + w4*v4`` at channels ``offset + c`` of four
    channels-last pixels, in fixed-length vector chunks (roi_align's channels-last forward
    does the same): per channel, ``sample_value``'s operations in its order."""
    num_chunks = num_channels // _LANES
    for chunk in range(num_chunks):
        lanes = acc[chunk * _LANES:(chunk + 1) * _LANES]
        base = offset + np.uint64(chunk * _LANES)
        for c in range(_LANES):
            s = base + np.uint64(c)
            lanes[c] += ((w1 * v1[s] + w2 * v2[s]) + w3 * v3[s]) + w4 * v4[s]
    for c in range(num_chunks * _LANES, num_channels):
        s = offset + np.uint64(c)
        acc[c] += ((w1 * v1[s] + w2 * v2[s]) + w3 * v3[s]) + w4 * v4[s]


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_channels_last_tasks(features, out, out_half, batch_indices, block, num_blocks,
                                 geo, F, task_begin, task_end):
    """As ``_forward_in_place_tasks`` (float arithmetic) from ``[N, H, W, C]`` ``features``,
    over (roi, ``block`` channels) tasks: the channel loop is innermost over contiguous
    memory, so the same per-channel arithmetic vectorizes, and a sample's geometry is
    computed once per block."""
    channels, height, width = out.shape[1], features.shape[1], features.shape[2]
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first = (task % num_blocks) * block
        stop = min(first + block, channels)
        num_channels = stop - first
        offset = np.uint64(first)
        acc = np.empty(num_channels, F)
        image = features[batch_indices[k]]
        gh, gw = geo.grid_h[k], geo.grid_w[k]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                for c in range(num_channels):
                    acc[c] = F(0)
                for iy in range(gh):
                    yy = bin_offset(geo.start_y[k], ph, geo.bin_h[k], iy, gh, False, F)
                    for ix in range(gw):
                        xx = bin_offset(geo.start_x[k], pw, geo.bin_w[k], ix, gw, False, F)
                        (valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, _,
                         _) = sample(yy, xx, geo.cos[k], geo.sin[k], geo.center_y[k],
                                     geo.center_x[k], height, width, False, F)
                        if valid:
                            _gather_pixels(acc, image[y_low, x_low], image[y_low, x_high],
                                           image[y_high, x_low], image[y_high, x_high],
                                           hy * hx, hy * lx, ly * hx, ly * lx, offset,
                                           num_channels)
                # The branch stays outside the loops (it would keep them from vectorizing).
                if out_half:
                    for c in range(num_channels):
                        out[k, first + c, ph, pw] = float_to_half_bits(acc[c] / geo.count[k])
                else:
                    for c in range(num_channels):
                        out[k, first + c, ph, pw] = acc[c] / geo.count[k]


def forward(input, rois, batch_indices, geo, half, out, out_half, F):
    """Rotated RoI Align into ``out`` ``[K, C, PH, PW]`` (dtype ``F``, or uint16 half bits
    when ``out_half``); ``geo`` from :func:`geometry_of` (in the same ``half`` arithmetic)."""
    num_rois, channels = out.shape[0], out.shape[1]
    if not half and _dense(geo, out.shape, input.shape):
        block, num_blocks = _vector_blocks(channels, num_rois)
        run_tasks(_forward_channels_last_tasks, num_rois * num_blocks, _channels_last(input),
                  out, out_half, batch_indices, block, num_blocks, geo, F)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        run_tasks(_forward_in_place_tasks, num_rois * num_blocks, input, out, out_half,
                  batch_indices, num_blocks, geo, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_in_place_tasks(grads, out, batch_indices, num_blocks, geo, half, F,
                               task_begin, task_end):
    """Scatter of the (image, ``_CHANNEL_BLOCK`` channels) tasks given into ``[N, C, H, W]``
    ``out``: every roi of the image in ascending order, each sample in the map adding
    ``(g * w_i) / (gh*gw)`` to its corners ``i = 1..4`` in order (roi_align's
    ``scatter_sample``)."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first = (task % num_blocks) * _CHANNEL_BLOCK
        stop = min(first + _CHANNEL_BLOCK, channels)
        for k in range(grads.shape[0]):
            if batch_indices[k] != b:
                continue
            gh, gw = geo.grid_h[k], geo.grid_w[k]
            count = _h(F(gh * gw), half)
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    for iy in range(gh):
                        yy = bin_offset(geo.start_y[k], ph, geo.bin_h[k], iy, gh, half, F)
                        for ix in range(gw):
                            xx = bin_offset(geo.start_x[k], pw, geo.bin_w[k], ix, gw, half,
                                            F)
                            (valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, _,
                             _) = sample(yy, xx, geo.cos[k], geo.sin[k], geo.center_y[k],
                                         geo.center_x[k], height, width, half, F)
                            if not valid:
                                continue
                            for c in range(first, stop):
                                scatter_sample(out[b, c], y_low, y_high, x_low, x_high, ly,
                                               hy, lx, hx, grads[k, c, ph, pw], count, half)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_channels_last_tasks(grads, gradient, batch_indices, block, num_blocks, geo, F,
                                    task_begin, task_end):
    """As ``_grad_input_in_place_tasks`` (float arithmetic) into ``[N, H, W, C]``
    ``gradient``, over (image, ``block`` channels) tasks, roi_align's ``_scatter_corner``
    adding a corner's share to a block of contiguous channels."""
    channels, height, width = gradient.shape[3], gradient.shape[1], gradient.shape[2]
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first = (task % num_blocks) * block
        stop = min(first + block, channels)
        num_channels = stop - first
        offset = np.uint64(first)
        g = np.empty(num_channels, F)
        image = gradient[b]
        for k in range(grads.shape[0]):
            if batch_indices[k] != b:
                continue
            gh, gw = geo.grid_h[k], geo.grid_w[k]
            count = F(gh * gw)
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    for c in range(num_channels):
                        g[c] = grads[k, first + c, ph, pw]
                    for iy in range(gh):
                        yy = bin_offset(geo.start_y[k], ph, geo.bin_h[k], iy, gh, False, F)
                        for ix in range(gw):
                            xx = bin_offset(geo.start_x[k], pw, geo.bin_w[k], ix, gw, False,
                                            F)
                            (valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, _,
                             _) = sample(yy, xx, geo.cos[k], geo.sin[k], geo.center_y[k],
                                         geo.center_x[k], height, width, False, F)
                            if not valid:
                                continue
                            # corner by corner: a pinned sample's corners are one pixel
                            _scatter_corner(image[y_low, x_low], offset, g, hy * hx, count,
                                            num_channels)
                            _scatter_corner(image[y_low, x_high], offset, g, hy * lx, count,
                                            num_channels)
                            _scatter_corner(image[y_high, x_low], offset, g, ly * hx, count,
                                            num_channels)
                            _scatter_corner(image[y_high, x_high], offset, g, ly * lx, count,
                                            num_channels)


def grad_input(grads, batch_indices, geo, half, out, out_channels_last, F):
    """The input gradient added into the zeroed ``[N, C, H, W]`` ``out`` (dtype ``F``), which
    is the same memory as the C-contiguous ``[N, H, W, C]`` ``out_channels_last``: the
    adjoint of :func:`forward`, every element's adds in the frameworks' sequential order."""
    batch, channels = out.shape[0], out.shape[1]
    if not half and _dense(geo, grads.shape, out.shape):
        block, num_blocks = _vector_blocks(channels, batch)
        run_tasks(_grad_input_channels_last_tasks, batch * num_blocks, grads,
                  out_channels_last, batch_indices, block, num_blocks, geo, F)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        run_tasks(_grad_input_in_place_tasks, batch * num_blocks, grads, out, batch_indices,
                  num_blocks, geo, half, F)


def _dense(geo, result_shape, input_shape):
    """Whether the channels-last paths pay: the taps (4 per sample and bin) outnumber the map
    elements several times over, as roi_align decides (a copy or transpose of the maps costs
    one pass over them)."""
    batch, _, height, width = input_shape
    bins = result_shape[2] * result_shape[3]
    samples = int((geo.grid_h.clip(0) * geo.grid_w.clip(0)).sum()) * bins
    return 4 * samples >= _CHANNELS_LAST_MIN_RATIO * batch * height * width


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_boxes(grads, input, batch_indices, spatial_scale, dtheta, geo, out, F, roi_begin,
                roi_end):
    """``grad_boxes`` of the rois ``[roi_begin, roi_end)``."""
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    half = F(0.5)
    for k in range(roi_begin, roi_end):
        b = batch_indices[k]
        gh, gw = geo.grid_h[k], geo.grid_w[k]
        cos, sin = geo.cos[k], geo.sin[k]
        d_cx = F(0)
        d_cy = F(0)
        d_w = F(0)
        d_h = F(0)
        d_theta = F(0)
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                for iy in range(gh):
                    yy = bin_offset(geo.start_y[k], ph, geo.bin_h[k], iy, gh, False, F)
                    a_y = (F(ph) + (F(iy) + half) / F(gh)) / F(pooled_height) - half
                    for ix in range(gw):
                        xx = bin_offset(geo.start_x[k], pw, geo.bin_w[k], ix, gw, False, F)
                        (valid, y_low, y_high, x_low, x_high, ly, hy, lx, hx, y_moving,
                         x_moving) = sample(yy, xx, cos, sin, geo.center_y[k],
                                            geo.center_x[k], height, width, False, F)
                        if not valid:
                            continue
                        # d(sum over channels of grads * value)/d(y) and d/d(x)
                        slope_y = F(0)
                        slope_x = F(0)
                        for c in range(channels):
                            d_y, d_x = sample_slopes(input[b, c], y_low, y_high, x_low, x_high,
                                                     ly, hy, lx, hx)
                            g = grads[k, c, ph, pw]
                            if y_moving:
                                slope_y += g * d_y
                            if x_moving:
                                slope_x += g * d_x
                        a_x = (F(pw) + (F(ix) + half) / F(gw)) / F(pooled_width) - half
                        d_cy += slope_y * spatial_scale
                        d_cx += slope_x * spatial_scale
                        if not geo.clamped_h[k]:
                            d_h += (spatial_scale * a_y) * (cos * slope_y + sin * slope_x)
                        if not geo.clamped_w[k]:
                            d_w += (spatial_scale * a_x) * (cos * slope_x - sin * slope_y)
                        d_theta += ((-yy * sin - xx * cos) * slope_y
                                    + (yy * cos - xx * sin) * slope_x)
        count = geo.count[k]
        out[k, 1] = d_cx / count
        out[k, 2] = d_cy / count
        out[k, 3] = d_w / count
        out[k, 4] = d_h / count
        out[k, 5] = dtheta * d_theta / count


def grad_boxes(grads, input, batch_indices, spatial_scale, dtheta, geo, out, F):
    """Gradient of ``sum(grads * forward(input, rois))`` w.r.t. ``(cx, cy, w, h, angle)``
    into columns 1..5 of the zeroed ``[K, 6]`` ``out`` (docs/rotated.md#box-gradient): the
    derivative with the sample grid held fixed, one thread per roi, in ``F``. ``dtheta`` is
    the angle's radians per unit (``±pi/180`` or ``±1``)."""
    run_tasks(_grad_boxes, grads.shape[0], grads, input, batch_indices, spatial_scale,
              dtheta, geo, out, F)
