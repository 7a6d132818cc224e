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
from ..roi_align.cpu import _h

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
def _forward_tasks(input, out, out_half, batch_indices, num_blocks, geo, half, F, task_begin,
                   task_end):
    """Output bins of the (roi, channel block) tasks given: per bin, the samples in order
    (iy-major), each adding ``((w1*v1 + w2*v2) + w3*v3) + w4*v4`` to every channel's
    accumulator; then ``acc / count``."""
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
                        w1 = _h(hy * hx, half)
                        w2 = _h(hy * lx, half)
                        w3 = _h(ly * hx, half)
                        w4 = _h(ly * lx, half)
                        for c in range(first, stop):
                            plane = input[b, c]
                            term = _h(_h(w1 * plane[y_low, x_low], half)
                                      + _h(w2 * plane[y_low, x_high], half), half)
                            term = _h(term + _h(w3 * plane[y_high, x_low], half), half)
                            term = _h(term + _h(w4 * plane[y_high, x_high], half), half)
                            acc[c - first] = _h(acc[c - first] + term, half)
                for c in range(first, stop):
                    value = _h(acc[c - first] / geo.count[k], half)
                    if out_half:
                        out[k, c, ph, pw] = float_to_half_bits(value)
                    else:
                        out[k, c, ph, pw] = value


def forward(input, rois, batch_indices, geo, half, out, out_half, F):
    """Rotated RoI Align into ``out`` ``[K, C, PH, PW]`` (dtype ``F``, or uint16 half bits
    when ``out_half``); ``geo`` from :func:`geometry_of` (in the same ``half`` arithmetic)."""
    num_blocks = (input.shape[1] + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    run_tasks(_forward_tasks, out.shape[0] * num_blocks, input, out, out_half, batch_indices,
              num_blocks, geo, half, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_tasks(grads, out, batch_indices, num_blocks, geo, half, F, task_begin,
                      task_end):
    """Scatter of the (image, channel block) tasks given: every roi of the image in
    ascending order, each sample in the map adding ``(g * w_i) / (gh*gw)`` to its corners
    ``i = 1..4`` in order."""
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
                            w1 = _h(hy * hx, half)
                            w2 = _h(hy * lx, half)
                            w3 = _h(ly * hx, half)
                            w4 = _h(ly * lx, half)
                            for c in range(first, stop):
                                g = grads[k, c, ph, pw]
                                plane = out[b, c]
                                plane[y_low, x_low] = _h(plane[y_low, x_low] + _h(
                                    _h(g * w1, half) / count, half), half)
                                plane[y_low, x_high] = _h(plane[y_low, x_high] + _h(
                                    _h(g * w2, half) / count, half), half)
                                plane[y_high, x_low] = _h(plane[y_high, x_low] + _h(
                                    _h(g * w3, half) / count, half), half)
                                plane[y_high, x_high] = _h(plane[y_high, x_high] + _h(
                                    _h(g * w4, half) / count, half), half)


def grad_input(grads, batch_indices, geo, half, out, F):
    """The input gradient added into the zeroed ``[N, C, H, W]`` ``out`` (dtype ``F``): the
    adjoint of :func:`forward`, in the frameworks' sequential order of adds."""
    batch, channels = out.shape[0], out.shape[1]
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    run_tasks(_grad_input_tasks, batch * num_blocks, grads, out, batch_indices, num_blocks,
              geo, half, F)


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
                            plane = input[b, c]
                            g = grads[k, c, ph, pw]
                            v1 = plane[y_low, x_low]
                            v2 = plane[y_low, x_high]
                            v3 = plane[y_high, x_low]
                            v4 = plane[y_high, x_high]
                            if y_moving:
                                slope_y += g * (hx * (v3 - v1) + lx * (v4 - v2))
                            if x_moving:
                                slope_x += g * (hy * (v2 - v1) + ly * (v4 - v3))
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
