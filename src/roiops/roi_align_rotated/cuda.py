"""Triton kernels of rotated RoI Align for CUDA tensors: forward and the deterministic
gradients.

The forward and the input gradient reproduce the Numba CPU kernels
(``roiops.roi_align_rotated.cpu``) operation for operation, so float32 and float64 results
are bit-identical to the CPU ones (checked under the Triton interpreter,
``TRITON_INTERPRET=1``, in CI; no GPU was at hand when they were written). The box gradient
sums in another fixed order: equal to the CPU within rounding.

Compute type ``F``: float32 for float16/bfloat16/float32 storage, float64 for float64. The
per-roi geometry (centre, bin sizes, cosine and sine, grid sizes, divisor) is not computed
here: ``roiops.torch.rotated_ops`` computes it on the host with the CPU kernels' own
function (``cpu.geometry_of``) and hands it over as two small tensors, so that the angle's
cosine and sine, which libdevice and the interpreter's NumPy compute differently from the
host's libm, are the CPU's bits on every device.

Exactness rules (docs/arithmetic.md#one-rounding-per-operation): every launch passes
``enable_fp_fusion=False``; every float division is ``div`` (``tl.div_rn`` for float32); the
operation order is the CPU's: ``(start + p*bin) + ((i + 0.5)*bin)/grid`` for a sample's box
offset, ``(yy*cos - xx*sin) + cy`` and ``(yy*sin + xx*cos) + cx`` for its position,
``((w1*v1 + w2*v2) + w3*v3) + w4*v4`` per sample, a running sum in (iy, ix) order, one
division by the count; ``(g*w)/count`` per corner in the gradient.

Design:

- **Forward**: one program per (roi, block of channels, block of bins); the lanes are a
  ``[channels, bins]`` tile. A roi's grid is the same for all its bins, so every lane walks
  the same (iy, ix) loop; a sample outside the map adds ``+0.0`` (the accumulator is never
  -0, so no sum changes).
- **Input gradient** (deterministic, no atomics): every corner add becomes a record
  ``(pixel, weight, bin)`` at a position given by its (roi, bin, iy, ix, corner), the CPU's
  order; samples outside the map leave the pixel past the last one. A stable sort by pixel
  and roi_align's record sum (``roiops.roi_align.cuda._sum_records_kernel``, one program per
  (pixel, block of channels) adding ``(g * w) / count`` in order) give every element the
  CPU's adds in the CPU's order. Memory: about 4 x 12 bytes per sample (float32).
- **Box gradient**: one program per roi, lanes over channels, partial sums per lane reduced
  by ``tl.reduce``: deterministic, another order than the CPU's.
"""
import importlib

import torch
import triton
import triton.language as tl

from .._triton import add, compute_dtype, div, float_arg, float_bits, i64, tile_lanes
from .api import angle_unit

__all__ = ["forward", "grad_input", "grad_boxes"]

LAUNCH = {
    "forward": {"LANES": 256, "num_warps": 2},
    "records": {"BLOCK_BINS": 64, "num_warps": 2},
    "grad_input": {"BLOCK_C": 256, "UNROLL": 8, "num_warps": 8},
    "grad_boxes": {"BLOCK_C": 128, "num_warps": 4},
}
# Columns of the geometry table (``_tables``), in F: centre y, x; start y, x; bin sizes
# h, w; cos, sin; the divisor; whether the minimum size held h, w (0 or 1).
_COLUMNS = 11


@triton.jit
def _bin_offset(start, p, bin_size, i, grid):
    """``(start + p*bin) + ((i + 0.5)*bin)/grid``; ``i + 0.5`` formed in float32."""
    base = start + p.to(start.dtype) * bin_size
    centre = (i64(i).to(tl.float32) + 0.5).to(start.dtype)
    return base + div(centre * bin_size, grid.to(start.dtype))


@triton.jit
def _tap(c, size):
    """Rows (or columns) and weights ``(l, 1 - l)`` of a coordinate in ``[-1, size]``:
    ``c < 0`` reads row 0 at full weight (-0.0 stays), rows at or past the last are pinned;
    also whether the value moves with ``c``."""
    zero = tl.full([], 0, c.dtype)
    clamped = c < zero
    c = tl.where(clamped, zero, c)
    last = size - 1
    row = c.to(tl.int64)  # c >= 0: truncation is floor
    pinned = row >= last
    row = tl.where(pinned, last, row)
    row_next = tl.where(pinned, last, row + 1)
    c = tl.where(pinned, last.to(c.dtype), c)
    frac = c - row.to(c.dtype)
    return row, row_next, frac, 1 - frac, ~clamped & ~pinned


@triton.jit
def _sample(yy, xx, cos, sin, cy, cx, height, width):
    """A sample at box offsets ``(yy, xx)``: ``(valid, y taps, x taps)`` as ``cpu.sample``;
    an invalid sample's taps are those of pixel 0."""
    y = (yy * cos - xx * sin) + cy
    x = (yy * sin + xx * cos) + cx
    F = y.dtype
    valid = ((y >= tl.full([], -1, F)) & (y <= height.to(F)) & (x >= tl.full([], -1, F))
             & (x <= width.to(F)))
    y = tl.where(valid, y, tl.full([], 0, F))
    x = tl.where(valid, x, tl.full([], 0, F))
    y_low, y_high, ly, hy, y_moves = _tap(y, height)
    x_low, x_high, lx, hx, x_moves = _tap(x, width)
    return valid, y_low, y_high, ly, hy, y_moves, x_low, x_high, lx, hx, x_moves


@triton.jit
def _roi(geo_ptr, k, COLUMNS: tl.constexpr):
    base = geo_ptr + k * COLUMNS
    return (tl.load(base + 0), tl.load(base + 1), tl.load(base + 2), tl.load(base + 3),
            tl.load(base + 4), tl.load(base + 5), tl.load(base + 6), tl.load(base + 7),
            tl.load(base + 8))


@triton.jit(do_not_specialize=["channels", "height", "width", "pooled_h", "pooled_w", "s_n",
                               "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, geo_ptr, grid_ptr, index_ptr, out_ptr, channels, height, width,
                    pooled_h, pooled_w, s_n, s_c, s_h, s_w, COLUMNS: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_BINS: tl.constexpr):
    k = tl.program_id(0).to(tl.int64)
    cy, cx, sy, sx, bin_h, bin_w, cos, sin, count = _roi(geo_ptr, k, COLUMNS)
    F = cy.dtype
    grid_h = tl.load(grid_ptr + 2 * k)
    grid_w = tl.load(grid_ptr + 2 * k + 1)
    channel, bin_id, _, ph, pw, mask = tile_lanes(channels, pooled_h, pooled_w, BLOCK_C,
                                                  BLOCK_BINS)
    bins = i64(pooled_h) * pooled_w
    h64 = i64(height)
    w64 = i64(width)
    plane = input_ptr + tl.load(index_ptr + k) * s_n + channel * s_c
    acc = tl.full([BLOCK_C, BLOCK_BINS], 0, F)
    for iy in range(grid_h):
        yy = _bin_offset(sy, ph, bin_h, iy, grid_h)
        for ix in range(grid_w):
            xx = _bin_offset(sx, pw, bin_w, ix, grid_w)
            valid, y_low, y_high, ly, hy, _, x_low, x_high, lx, hx, _ = _sample(
                yy, xx, cos, sin, cy, cx, h64, w64)
            ok = mask & valid
            w1 = hy * hx
            w2 = hy * lx
            w3 = ly * hx
            w4 = ly * lx
            v1 = tl.load(plane + y_low * s_h + x_low * s_w, mask=ok, other=0).to(F)
            v2 = tl.load(plane + y_low * s_h + x_high * s_w, mask=ok, other=0).to(F)
            v3 = tl.load(plane + y_high * s_h + x_low * s_w, mask=ok, other=0).to(F)
            v4 = tl.load(plane + y_high * s_h + x_high * s_w, mask=ok, other=0).to(F)
            term = w1 * v1 + w2 * v2
            term = term + w3 * v3
            term = term + w4 * v4
            acc = acc + tl.where(ok, term, tl.full([], 0, F))
    value = div(acc, tl.broadcast_to(count, [BLOCK_C, BLOCK_BINS]))
    out = out_ptr + (k * channels + channel) * bins + bin_id
    tl.store(out, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _record(pixel_ptr, weight_ptr, bin_ptr, at, pixel, weight, flat_bin, ok):
    tl.store(pixel_ptr + at, pixel.to(pixel_ptr.dtype.element_ty), mask=ok)
    tl.store(weight_ptr + at, weight, mask=ok)
    tl.store(bin_ptr + at, flat_bin.to(bin_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["height", "width", "pooled_h", "pooled_w"])
def _records_kernel(geo_ptr, grid_ptr, index_ptr, offset_ptr, pixel_ptr, weight_ptr, bin_ptr,
                    height, width, pooled_h, pooled_w, COLUMNS: tl.constexpr,
                    BLOCK_BINS: tl.constexpr):
    # One program per (roi, block of bins), a lane per bin: record (roi, bin, iy, ix, corner)
    # sits at offset[roi] + ((bin*gh + iy)*gw + ix)*4 + corner; samples outside the map
    # leave their records' pixel past the last pixel (prefilled).
    k = tl.program_id(0).to(tl.int64)
    cy, cx, sy, sx, bin_h, bin_w, cos, sin, _count = _roi(geo_ptr, k, COLUMNS)
    grid_h = tl.load(grid_ptr + 2 * k)
    grid_w = tl.load(grid_ptr + 2 * k + 1)
    bin_id = tl.program_id(1).to(tl.int64) * BLOCK_BINS + tl.arange(0, BLOCK_BINS).to(tl.int64)
    bins = i64(pooled_h) * pooled_w
    in_roi = bin_id < bins
    ph = tl.where(in_roi, bin_id // pooled_w, 0)
    pw = tl.where(in_roi, bin_id % pooled_w, 0)
    h64 = i64(height)
    w64 = i64(width)
    image = tl.load(index_ptr + k) * h64
    base = tl.load(offset_ptr + k)
    flat_bin = k * bins + bin_id
    for iy in range(grid_h):
        yy = _bin_offset(sy, ph, bin_h, iy, grid_h)
        for ix in range(grid_w):
            xx = _bin_offset(sx, pw, bin_w, ix, grid_w)
            valid, y_low, y_high, ly, hy, _, x_low, x_high, lx, hx, _ = _sample(
                yy, xx, cos, sin, cy, cx, h64, w64)
            ok = in_roi & valid
            at = base + ((bin_id * grid_h + iy) * grid_w + ix) * 4
            _record(pixel_ptr, weight_ptr, bin_ptr, at, (image + y_low) * w64 + x_low,
                    hy * hx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 1, (image + y_low) * w64 + x_high,
                    hy * lx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 2, (image + y_high) * w64 + x_low,
                    ly * hx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 3, (image + y_high) * w64 + x_high,
                    ly * lx, flat_bin, ok)


@triton.jit(do_not_specialize=["channels", "height", "width", "pooled_h", "pooled_w", "g_k",
                               "g_c", "g_h", "g_w", "s_n", "s_c", "s_h", "s_w"])
def _grad_boxes_kernel(grads_ptr, input_ptr, geo_ptr, grid_ptr, index_ptr, out_ptr,
                       scale_bits, dtheta_bits, channels, height, width, pooled_h, pooled_w,
                       g_k, g_c, g_h, g_w, s_n, s_c, s_h, s_w, COLUMNS: tl.constexpr,
                       FLOAT64: tl.constexpr, BLOCK_C: tl.constexpr):
    # One program per roi, a lane per channel of a block: per lane, the partial sums of the
    # five derivatives (cpu.grad_boxes' formulas), reduced at the end.
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    dtheta = float_arg(dtheta_bits, FLOAT64)
    F = scale.dtype
    cy, cx, sy, sx, bin_h, bin_w, cos, sin, count = _roi(geo_ptr, k, COLUMNS)
    grid_h = tl.load(grid_ptr + 2 * k)
    grid_w = tl.load(grid_ptr + 2 * k + 1)
    # the minimum size held the axis: its size, hence its sample offsets, are constant
    moves_h = tl.load(geo_ptr + k * COLUMNS + 9) == 0
    moves_w = tl.load(geo_ptr + k * COLUMNS + 10) == 0
    h64 = i64(height)
    w64 = i64(width)
    half = tl.full([], 0.5, F)
    zero = tl.full([BLOCK_C], 0, F)
    d_cx = zero
    d_cy = zero
    d_w = zero
    d_h = zero
    d_t = zero
    image = input_ptr + tl.load(index_ptr + k) * s_n
    for first in range(0, channels, BLOCK_C):
        channel = first + tl.arange(0, BLOCK_C).to(tl.int64)
        in_block = channel < channels
        plane = image + channel * s_c
        for ph in range(pooled_h):
            for iy in range(grid_h):
                yy = _bin_offset(sy, i64(ph), bin_h, iy, grid_h)
                a_y = div(i64(ph).to(F) + div(i64(iy).to(F) + half, grid_h.to(F)),
                          i64(pooled_h).to(F)) - half
                for pw in range(pooled_w):
                    g = tl.load(grads_ptr + k * g_k + channel * g_c + ph * g_h + pw * g_w,
                                mask=in_block, other=0).to(F)
                    for ix in range(grid_w):
                        xx = _bin_offset(sx, i64(pw), bin_w, ix, grid_w)
                        valid, y_low, y_high, ly, hy, y_moves, x_low, x_high, lx, hx, \
                            x_moves = _sample(yy, xx, cos, sin, cy, cx, h64, w64)
                        ok = tl.where(valid, in_block, False)  # a scalar bool: see below
                        v1 = tl.load(plane + y_low * s_h + x_low * s_w, mask=ok,
                                     other=0).to(F)
                        v2 = tl.load(plane + y_low * s_h + x_high * s_w, mask=ok,
                                     other=0).to(F)
                        v3 = tl.load(plane + y_high * s_h + x_low * s_w, mask=ok,
                                     other=0).to(F)
                        v4 = tl.load(plane + y_high * s_h + x_high * s_w, mask=ok,
                                     other=0).to(F)
                        # ``where`` twice, not ``ok & moves``: the interpreter splats a
                        # scalar bool to int64.
                        slope_y = tl.where(y_moves, tl.where(
                            ok, g * (hx * (v3 - v1) + lx * (v4 - v2)), zero), zero)
                        slope_x = tl.where(x_moves, tl.where(
                            ok, g * (hy * (v2 - v1) + ly * (v4 - v3)), zero), zero)
                        a_x = div(i64(pw).to(F) + div(i64(ix).to(F) + half, grid_w.to(F)),
                                  i64(pooled_w).to(F)) - half
                        d_cy += slope_y * scale
                        d_cx += slope_x * scale
                        d_h += tl.where(moves_h, (scale * a_y) * (cos * slope_y
                                                                  + sin * slope_x), zero)
                        d_w += tl.where(moves_w, (scale * a_x) * (cos * slope_x
                                                                  - sin * slope_y), zero)
                        d_t += (-yy * sin - xx * cos) * slope_y + (yy * cos - xx * sin) * slope_x
    out = out_ptr + k * 6
    tl.store(out + 1, div(tl.reduce(d_cx, 0, add), count))
    tl.store(out + 2, div(tl.reduce(d_cy, 0, add), count))
    tl.store(out + 3, div(tl.reduce(d_w, 0, add), count))
    tl.store(out + 4, div(tl.reduce(d_h, 0, add), count))
    tl.store(out + 5, div(dtheta * tl.reduce(d_t, 0, add), count))


# --- host side ---------------------------------------------------------------------------

def _tables(geo, F, device):
    """The host geometry (``cpu.RoiGeometry``) as the kernels read it: ``[K, 11]`` in F and
    the grid sizes ``[K, 2]`` int64, on ``device``."""
    columns = (geo.center_y, geo.center_x, geo.start_y, geo.start_x, geo.bin_h, geo.bin_w,
               geo.cos, geo.sin, geo.count, geo.clamped_h, geo.clamped_w)
    table = torch.stack([torch.from_numpy(c).to(F) for c in columns], dim=1)
    grids = torch.stack([torch.from_numpy(geo.grid_h), torch.from_numpy(geo.grid_w)], dim=1)
    return table.contiguous().to(device), grids.contiguous().to(device)


def forward(input, indices, geo, call):
    """``[K, C, PH, PW]`` of ``input.dtype``; ``indices`` the checked batch indices on the
    input's device, ``geo`` the host geometry of the call."""
    num_rois = call.num_rois
    _, channels, height, width = input.shape
    ph, pw = call.options.output_size
    # bfloat16 is written in float32 and rounded by torch, as roi_align does.
    store_dtype = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    out = torch.empty((num_rois, channels, ph, pw), dtype=store_dtype, device=input.device)
    if out.numel() == 0:
        return out.to(input.dtype)
    F = compute_dtype(input.dtype)
    table, grids = _tables(geo, F, input.device)
    launch = dict(LAUNCH["forward"])
    lanes = launch.pop("LANES")
    block_bins = min(triton.next_power_of_2(ph * pw), lanes)
    block_c = max(lanes // block_bins, 1)
    grid = (num_rois, triton.cdiv(channels, block_c), triton.cdiv(ph * pw, block_bins))
    _forward_kernel[grid](input, table, grids, indices, out, channels, height, width, ph, pw,
                          *input.stride(), COLUMNS=_COLUMNS, BLOCK_C=block_c,
                          BLOCK_BINS=block_bins, **launch, enable_fp_fusion=False)
    return out.to(input.dtype)


def grad_input(grads, indices, geo, call):
    """``call.input_shape`` of ``grads.dtype`` (NCHW): records, a stable sort by pixel,
    roi_align's record sum."""
    roi_align_cuda = importlib.import_module("roiops.roi_align.cuda")
    batch, channels, height, width = call.input_shape
    ph, pw = call.options.output_size
    F = compute_dtype(grads.dtype)
    device = grads.device
    total = torch.zeros((batch, height, width, channels), dtype=F, device=device)
    samples = geo.grid_h.clip(0) * geo.grid_w.clip(0) * (ph * pw)
    records = 4 * int(samples.sum())
    if not total.numel() or not grads.numel() or not records:
        return total.permute(0, 3, 1, 2).contiguous().to(grads.dtype)
    table, grids = _tables(geo, F, device)
    offsets = torch.from_numpy(4 * (samples.cumsum() - samples)).to(device)
    pixels = batch * height * width
    index_dtype = roi_align_cuda._index_dtype
    pixel = torch.full((records,), pixels, dtype=index_dtype(pixels + 1), device=device)
    weight = torch.empty(records, dtype=F, device=device)
    flat_bin = torch.zeros(records, dtype=index_dtype(call.num_rois * ph * pw), device=device)
    launch = dict(LAUNCH["records"])
    block_bins = min(launch.pop("BLOCK_BINS"), triton.next_power_of_2(ph * pw))
    _records_kernel[(call.num_rois, triton.cdiv(ph * pw, block_bins))](
        table, grids, indices, offsets, pixel, weight, flat_bin, height, width, ph, pw,
        COLUMNS=_COLUMNS, BLOCK_BINS=block_bins, **launch, enable_fp_fusion=False)
    pixel, order = torch.sort(pixel, stable=True)
    starts = torch.searchsorted(pixel, torch.arange(pixels + 1, dtype=pixel.dtype,
                                                    device=device))
    rows = grads.permute(0, 2, 3, 1).contiguous()  # [K * PH * PW, C]
    divisor = table[:, 8].contiguous()
    launch = dict(LAUNCH["grad_input"])
    block_c = min(launch.pop("BLOCK_C"), triton.next_power_of_2(channels))
    roi_align_cuda._sum_records_kernel[(pixels, triton.cdiv(channels, block_c))](
        starts, weight[order], flat_bin[order], divisor, rows, total, channels, ph * pw,
        BLOCK_C=block_c, **launch, enable_fp_fusion=False)
    return total.permute(0, 3, 1, 2).contiguous().to(grads.dtype)


def grad_boxes(grads, input, indices, geo, call):
    """``[K, 6]`` of ``input.dtype``: d/d(batch_index, cx, cy, w, h, angle), column 0 zero."""
    _, channels, height, width = input.shape
    F = compute_dtype(input.dtype)
    total = torch.zeros((call.num_rois, 6), dtype=F, device=input.device)
    if grads.numel():
        table, grids = _tables(geo, F, input.device)
        launch = dict(LAUNCH["grad_boxes"])
        block_c = min(launch.pop("BLOCK_C"), triton.next_power_of_2(channels))
        _grad_boxes_kernel[(call.num_rois,)](
            grads, input, table, grids, indices, total,
            float_bits(call.options.spatial_scale, F),
            float_bits(angle_unit(call.options.convention.geometry), F), channels, height,
            width, *call.options.output_size, *grads.stride(), *input.stride(),
            COLUMNS=_COLUMNS, FLOAT64=F == torch.float64, BLOCK_C=block_c, **launch,
            enable_fp_fusion=False)
    return total.to(input.dtype)
