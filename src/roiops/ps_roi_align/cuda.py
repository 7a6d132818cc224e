"""Triton kernels of ps_roi_align for CUDA tensors: forward and the deterministic gradients.

roi_align's device geometry is reused as it is (``roiops.roi_align.cuda``: the aligned
torchvision convention, its plan of valid samples per roi, its per-sample taps), with the
exactness rules written there (no FMA contraction, ``div_rn``, the CPU's operation order), so
the forward and the input gradient are bit-identical to the CPU kernels
(``roiops.ps_roi_align.cpu``) in float32 and float64 (checked under the Triton interpreter;
no GPU run yet). The divisor is ``F(gh * gw)``, without roi_align's minimum.

- **Forward**: one program per (roi, block of input channels); lane ``c`` computes output
  bin ``(c_out, ph, pw)`` with ``c = (c_out * PH + ph) * PW + pw`` from plane ``c``: a
  contiguous block of the result.
- **Input gradient** (deterministic, no atomics): one program per (image, input channel,
  block of pixels), a lane per pixel; it walks the rois of its image in ascending order
  (sorted on the device) and, for each, the valid samples of the one bin its channel feeds,
  adding ``(g * w_i) / count`` where corner ``i`` is the lane's pixel: the CPU's adds in the
  CPU's (torchvision's sequential) order. A roi whose bin's rows miss the block is skipped.
- **Box gradient**: one program per roi, lanes over output channels, partial sums of the
  four edge derivatives reduced in a fixed tree; equal to the CPU within rounding.

float16/bfloat16 compute in float32 and round once, as the native CPU op; torchvision's half
arithmetic (``half_arithmetic``) runs the CPU kernels on a host copy
(``roiops.torch.ps_roi_ops``).
"""
import torch
import triton
import triton.language as tl

from .._triton import compute_dtype, div, float_arg, float_bits, i64
from ..roi_align.cuda import (
    _bin_bases,
    _bin_edge_slopes,
    _common,
    _coordinate,
    _plan,
    _roi_geometry,
    _store_box_gradient,
    _sum_samples,
    _switches,
    _tap,
)

__all__ = ["forward", "grad_input", "grad_boxes"]

LAUNCH = {"forward": {"BLOCK": 128, "num_warps": 4},
          "grad_input": {"BLOCK": 256, "num_warps": 4},
          "grad_boxes": {"BLOCK_C": 32, "num_warps": 1}}


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "sampling_ratio", "s_n", "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, rois_ptr, index_ptr, out_ptr, scale_bits, y_first_ptr,
                    y_count_ptr, x_first_ptr, x_count_ptr,
                    channels, height, width, pooled_h, pooled_w, sampling_ratio,
                    s_n, s_c, s_h, s_w,
                    OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr, FLOAT64: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, _, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    count = (grid_h * grid_w).to(F)  # no minimum: an empty grid gives 0/0
    channel = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = channel < channels
    bins = i64(pooled_h) * pooled_w
    bin_id = tl.where(mask, channel % bins, 0)
    ph = bin_id // pooled_w
    pw = bin_id % pooled_w
    h64 = i64(height)
    w64 = i64(width)
    y_base = _bin_bases(y_start, y_bin, ph)
    x_base = _bin_bases(x_start, x_bin, pw)
    y_first = tl.load(y_first_ptr + k * pooled_h + ph)
    x_first = tl.load(x_first_ptr + k * pooled_w + pw)
    y_count = tl.where(mask, tl.load(y_count_ptr + k * pooled_h + ph), 0)
    x_count = tl.where(mask, tl.load(x_count_ptr + k * pooled_w + pw), 0)
    plane = input_ptr + tl.load(index_ptr + k) * s_n + channel * s_c
    acc = _sum_samples(tl.full([BLOCK], 0, F), plane, s_h, s_w, mask,
                       y_base, y_bin, grid_h.to(F), y_first, y_count, h64,
                       x_base, x_bin, grid_w.to(F), x_first, x_count, w64)
    value = div(acc, tl.broadcast_to(count, [BLOCK]))
    tl.store(out_ptr + k * channels + channel, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _corner(acc, pixel, at, g, weight, count):
    """``acc + (g * weight) / count`` on the lanes whose pixel is ``at``."""
    share = div(g * weight, count)
    return tl.where(pixel == at, acc + share, acc)


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "sampling_ratio", "g_k", "g_c", "g_h", "g_w"])
def _grad_input_kernel(grads_ptr, rois_ptr, order_ptr, starts_ptr, out_ptr, scale_bits,
                       y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr,
                       channels, height, width, pooled_h, pooled_w, sampling_ratio,
                       g_k, g_c, g_h, g_w,
                       OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                       MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                       COUNT_PRODUCT: tl.constexpr, FLOAT64: tl.constexpr,
                       BLOCK: tl.constexpr):
    plane_id = tl.program_id(0).to(tl.int64)  # image * channels + channel
    b = plane_id // channels
    c = plane_id % channels
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    h64 = i64(height)
    w64 = i64(width)
    pixel = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = pixel < h64 * w64
    first_row = (tl.program_id(1).to(tl.int64) * BLOCK) // w64
    last_row = (tl.program_id(1).to(tl.int64) * BLOCK + BLOCK - 1) // w64
    bins = i64(pooled_h) * pooled_w
    c_out = c // bins
    ph = (c // pooled_w) % pooled_h
    pw = c % pooled_w
    acc = tl.full([BLOCK], 0, F)
    for r in range(tl.load(starts_ptr + b), tl.load(starts_ptr + b + 1)):
        k = tl.load(order_ptr + r)
        y_start, y_bin, grid_h, x_start, x_bin, grid_w, _, _, _ = _roi_geometry(
            rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END,
            END_EXTRA, MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
        count = (grid_h * grid_w).to(F)
        y_first = tl.load(y_first_ptr + k * pooled_h + ph)
        y_stop = y_first + tl.load(y_count_ptr + k * pooled_h + ph)
        x_first = tl.load(x_first_ptr + k * pooled_w + pw)
        x_stop = x_first + tl.load(x_count_ptr + k * pooled_w + pw)
        y_base = _bin_bases(y_start, y_bin, i64(ph))
        x_base = _bin_bases(x_start, x_bin, i64(pw))
        g = tl.load(grads_ptr + k * g_k + c_out * g_c + ph * g_h + pw * g_w).to(F)
        # the rows the bin's samples touch, ascending in the sample index either way round
        top, _, _, _ = _tap(_coordinate(y_base, y_bin, grid_h.to(F), y_first), h64)
        bottom, _, _, _ = _tap(_coordinate(y_base, y_bin, grid_h.to(F), y_stop - 1), h64)
        low_row = tl.minimum(top, bottom)
        high_row = tl.maximum(top, bottom) + 1
        if (y_stop > y_first) & (x_stop > x_first) & (high_row >= first_row) & (
                low_row <= last_row):
            for iy in range(y_first, y_stop):
                row_lo, row_hi, ly, hy = _tap(_coordinate(y_base, y_bin, grid_h.to(F), iy),
                                              h64)
                for ix in range(x_first, x_stop):
                    col_lo, col_hi, lx, hx = _tap(
                        _coordinate(x_base, x_bin, grid_w.to(F), ix), w64)
                    acc = _corner(acc, pixel, row_lo * w64 + col_lo, g, hy * hx, count)
                    acc = _corner(acc, pixel, row_lo * w64 + col_hi, g, hy * lx, count)
                    acc = _corner(acc, pixel, row_hi * w64 + col_lo, g, ly * hx, count)
                    acc = _corner(acc, pixel, row_hi * w64 + col_hi, g, ly * lx, count)
    tl.store(out_ptr + plane_id * h64 * w64 + pixel, acc, mask=mask)


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "sampling_ratio", "g_k", "g_c", "g_h", "g_w",
                               "s_n", "s_c", "s_h", "s_w"])
def _grad_boxes_kernel(grads_ptr, input_ptr, rois_ptr, index_ptr, out_ptr, scale_bits,
                       y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr,
                       channels, height, width, pooled_h, pooled_w, sampling_ratio,
                       g_k, g_c, g_h, g_w, s_n, s_c, s_h, s_w,
                       OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                       MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                       COUNT_PRODUCT: tl.constexpr, FLOAT64: tl.constexpr,
                       BLOCK_C: tl.constexpr):
    # roi_align's box gradient kernel with each bin reading its own channel; ``channels`` are
    # the output channels here.
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, _, y_clamped, x_clamped = (
        _roi_geometry(rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET,
                      ADD_END, END_EXTRA, MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT))
    count = (grid_h * grid_w).to(F)
    grid_h_f = grid_h.to(F)
    grid_w_f = grid_w.to(F)
    h64 = i64(height)
    w64 = i64(width)
    bins = i64(pooled_h) * pooled_w
    b = tl.load(index_ptr + k)
    zeros = tl.full([BLOCK_C], 0, F)
    d_y1 = zeros
    d_x1 = zeros
    d_y2 = zeros
    d_x2 = zeros
    for first_channel in range(0, channels, BLOCK_C):
        channel = first_channel + tl.arange(0, BLOCK_C).to(tl.int64)
        mask = channel < channels
        for ph in range(pooled_h):
            y_base = _bin_bases(y_start, y_bin, i64(ph))
            y_first = tl.load(y_first_ptr + k * pooled_h + ph)
            y_stop = y_first + tl.load(y_count_ptr + k * pooled_h + ph)
            for pw in range(pooled_w):
                x_base = _bin_bases(x_start, x_bin, i64(pw))
                x_first = tl.load(x_first_ptr + k * pooled_w + pw)
                x_stop = x_first + tl.load(x_count_ptr + k * pooled_w + pw)
                plane = input_ptr + b * s_n + (channel * bins + ph * pooled_w + pw) * s_c
                g = tl.load(grads_ptr + k * g_k + channel * g_c + ph * g_h + pw * g_w,
                            mask=mask, other=0).to(F)
                d_y1, d_y2, d_x1, d_x2 = _bin_edge_slopes(
                    d_y1, d_y2, d_x1, d_x2, plane, s_h, s_w, mask, g, scale,
                    y_base, y_bin, grid_h_f, y_first, y_stop, h64, ph, pooled_h, y_clamped,
                    x_base, x_bin, grid_w_f, x_first, x_stop, w64, pw, pooled_w, x_clamped)
    _store_box_gradient(out_ptr, k, d_y1, d_y2, d_x1, d_x2, grid_h, grid_w, count)


def forward(input, rois, indices, options):
    """``[K, C / (PH*PW), PH, PW]`` of ``input.dtype``; ``indices`` are the checked batch
    indices."""
    num_rois = rois.shape[0]
    _, channels, height, width = input.shape
    ph, pw = options.pooled_height, options.pooled_width
    # bfloat16 is stored in float32 and rounded by torch (see roiops.roi_align.cuda.forward)
    store_dtype = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    out = torch.empty((num_rois, channels // (ph * pw), ph, pw), dtype=store_dtype,
                      device=input.device)
    if out.numel() == 0:
        return out.to(input.dtype)
    F = compute_dtype(input.dtype)
    rois_f, indices = _common(rois, indices, F, input.device)
    y_first, y_count, x_first, x_count, _ = _plan(rois_f, height, width, options, F)
    launch = dict(LAUNCH["forward"])
    block = min(launch.pop("BLOCK"), triton.next_power_of_2(channels))
    _forward_kernel[(num_rois, triton.cdiv(channels, block))](
        input, rois_f, indices, out, float_bits(options.spatial_scale, F), y_first, y_count,
        x_first, x_count, channels, height, width, ph, pw, options.sampling_ratio,
        *input.stride(), BLOCK=block, **launch, **_switches(options, F))
    return out.to(input.dtype)


def grad_input(grads, rois, indices, input_shape, options):
    """``input_shape`` of ``grads.dtype`` (contiguous), the CPU kernel's bits."""
    batch, channels, height, width = input_shape
    F = compute_dtype(grads.dtype)
    total = torch.empty(input_shape, dtype=F, device=grads.device)
    if total.numel():
        rois_f, indices = _common(rois, indices, F, grads.device)
        y_first, y_count, x_first, x_count, _ = _plan(rois_f, height, width, options, F)
        order = torch.argsort(indices, stable=True)
        starts = torch.searchsorted(indices[order], torch.arange(
            batch + 1, dtype=indices.dtype, device=indices.device))
        launch = dict(LAUNCH["grad_input"])
        block = min(launch.pop("BLOCK"), triton.next_power_of_2(height * width))
        _grad_input_kernel[(batch * channels, triton.cdiv(height * width, block))](
            grads, rois_f, order, starts, total, float_bits(options.spatial_scale, F),
            y_first, y_count, x_first, x_count, channels, height, width,
            options.pooled_height, options.pooled_width, options.sampling_ratio,
            *grads.stride(), BLOCK=block, **launch, **_switches(options, F))
    return total.to(grads.dtype)


def grad_boxes(grads, input, rois, indices, options):
    """``[K, 5]`` of ``input.dtype`` (column 0 zero), within rounding of the CPU's."""
    _, channels, height, width = input.shape
    F = compute_dtype(input.dtype)
    total = torch.zeros((rois.shape[0], 5), dtype=F, device=input.device)
    if grads.numel():
        rois_f, indices = _common(rois, indices, F, input.device)
        y_first, y_count, x_first, x_count, _ = _plan(rois_f, height, width, options, F)
        _grad_boxes_kernel[(rois.shape[0],)](
            grads, input, rois_f, indices, total, float_bits(options.spatial_scale, F),
            y_first, y_count, x_first, x_count, grads.shape[1], height, width,
            options.pooled_height, options.pooled_width, options.sampling_ratio,
            *grads.stride(), *input.stride(), **LAUNCH["grad_boxes"], **_switches(options, F))
    return total.to(input.dtype)
