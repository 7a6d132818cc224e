"""Triton kernels of roi_align for CUDA tensors: forward and the deterministic gradients.

The forward and the input gradient reproduce the Numba CPU kernels (``roiops.roi_align.cpu``)
operation for operation, so float32 and float64 results are bit-identical to the CPU ones:
checked on an H200 (benchmarks/check_cuda.py) and under the Triton interpreter
(``TRITON_INTERPRET=1``, in CI). The box gradient sums in another fixed order: equal to the
CPU within rounding.

Compute type ``F``: float32 for float16/bfloat16/float32 storage (loads widen exactly, the
result is rounded once on the store), float64 for float64. The rois are cast to ``F`` on the
host side (as the CPU path does) and ``spatial_scale`` travels as its bit pattern in ``F``
(``float_bits``), so every scalar of the geometry is in ``F`` and no literal promotes the
arithmetic. bfloat16 results are produced in float32 and rounded to nearest-even by torch
(the CPU op does the same; the interpreter's in-kernel float32 -> bfloat16 cast truncates).

Exactness rules (docs/arithmetic.md#one-rounding-per-operation):

- every launch passes ``enable_fp_fusion=False``: no multiply-add contraction;
- every float division is ``tl.div_rn`` (IEEE round-to-nearest; plain ``/`` on float32 is
  an approximate reciprocal on NVIDIA GPUs);
- the operation order is the CPU kernel's: ``(start + p*bin) + ((i + 0.5)*bin)/grid`` for a
  sample coordinate, ``((w1*v1 + w2*v2) + w3*v3) + w4*v4`` per sample, a running sum in
  (iy, ix) order, one division by the count; ``(g*w)/count`` per corner in the gradient.

Design:

- **Plan** (``_plan_kernel``, one program per roi): the valid samples (coordinate in
  ``[-1, size]``) of each row of bins and each column of bins, by bisection as the CPU plan
  does: coordinates are monotonic in the sample index, so an adaptive grid of a huge box
  costs only the samples that land on the map (a grid can saturate at 2**31 - 1).
- **Forward**: one program per (roi, block of channels, block of bins); the lanes are a
  ``[channels, bins]`` tile of the roi's output, bins along the fast axis, so the lanes of
  one channel read neighbouring pixels of one plane. Each lane walks its bin's valid samples
  from the plan; a lane with fewer samples than the others adds ``+0.0``, which changes no sum
  (the accumulator is never -0).
- **Input gradient** (deterministic, no atomics, no read-modify-write of memory): every corner
  add becomes a record ``(pixel, weight, bin)``, written in the CPU's order (roi, ph, pw, iy,
  ix, corner 1..4) by ``_records_kernel``; a stable sort by pixel keeps each pixel's records
  in that order; one program per (pixel, block of channels) sums its records in registers,
  ``acc += (g * w) / count`` (``_sum_records_kernel``). Every element thus receives exactly
  the CPU kernel's adds in the CPU kernel's (= torchvision's sequential) order, whatever the
  launch geometry, and a pixel hit by many rois costs one long sum, not a serialized tile.
  Memory: about 40 bytes per corner add (the records and their sort), e.g. 16 MB for 512
  rois of 7 x 7 bins with 2 x 2 samples. The record count is known on the host for a fixed
  sampling ratio; an adaptive grid reads it back (one sync).
- **Box gradient** (deterministic, no atomics): one program per roi walks its blocks of
  channels, then (ph, pw, iy, ix) over the plan's valid samples; each lane (a channel)
  keeps partial sums of the four edge derivatives (docs/arithmetic.md#roi_align-box-gradient:
  per sample slope times ``d c/d edge``), reduced by one fixed-shape ``tl.reduce`` each and
  divided by the count. The CPU sums the slopes per sample row/column first and weights them
  after, so the two agree within F rounding, not bit for bit. Parallelism is ``K`` programs.

Speed (BENCHMARKS.md, "CUDA"): launch shapes in ``LAUNCH``, chosen by a sweep on an H200.
Without a GPU, a compile-only test (tests/torch_ops/test_triton.py) builds every kernel
variant for sm_90 and checks that the PTX has no ``fma`` and no approximate division.
"""
import torch
import triton
import triton.language as tl

from .._triton import (
    add,
    bit_length,
    compute_dtype,
    div,
    float_arg,
    float_bits,
    i64,
    largest,
    tile_lanes,
)

# The kernels call only Triton builtins and roiops._triton's helpers (not the ``@jit`` helpers
# of triton's standard library such as ``tl.zeros``): the interpreter tests load this module
# and roiops._triton with TRITON_INTERPRET=1 after triton itself was imported without it, and
# a library ``@jit`` helper decorated then cannot run under the interpreter.

__all__ = ["forward", "grad_input", "grad_boxes"]

# Launch shapes per kernel, powers of two: lanes per forward program (LANES: bins of a roi x
# channels), channels per program (BLOCK_C), records summed per step of the input gradient
# (UNROLL: their loads overlap) and warps per program. Only speed depends on them (the tests
# vary them); benchmarks/bench_cuda.py --sweep times the alternatives.
LAUNCH = {
    "forward": {"LANES": 256, "num_warps": 2},
    "grad_input": {"BLOCK_C": 256, "UNROLL": 8, "num_warps": 8},
    "grad_boxes": {"BLOCK_C": 128, "num_warps": 4},
}


@triton.jit
def _axis(low, high, scale, pooled, sampling_ratio, OFFSET: tl.constexpr,
          ADD_END: tl.constexpr, END_EXTRA: tl.constexpr, MIN_SIZE: tl.constexpr,
          GRID_FLOOR: tl.constexpr):
    """Start, bin size, grid size (int64) and the clamped flag (the minimum size fired: the
    size is the constant 1) of one roi axis, in F, with a convention's geometry
    (``roiops.roi_align.conventions.Geometry``, here as constexprs): ``start = low*s -
    offset``, ``end = (high [+ end_extra])*s - offset``, the minimum size (1: ``size < 1``;
    2: ``not size > 1``, so NaN becomes 1), a ``floor`` or ``ceil`` adaptive grid.
    """
    one = tl.full([], 1, low.dtype)
    clamped = tl.full([], 0, tl.int1)
    offset = tl.full([], OFFSET, low.dtype)
    start = low * scale - offset  # minus 0.0 changes no value, -0.0 and NaN included
    if ADD_END:
        high = high + tl.full([], END_EXTRA, low.dtype)
    end = high * scale - offset
    size = end - start
    if MIN_SIZE == 1:
        clamped = size < one
        size = tl.where(size < one, one, size)
    elif MIN_SIZE == 2:
        clamped = ~(size > one)  # NaN too, as the CPU's ``not size > 1``
        size = tl.where(size > one, size, one)
    bin_size = div(size, pooled.to(low.dtype))
    if GRID_FLOOR:
        rounded = tl.floor(bin_size)
    else:
        rounded = tl.ceil(bin_size)
    # Saturate like the CPU (an int32 grid as the peers'); NaN gives 0. The float is clamped
    # before the conversion so that no out-of-range value is ever converted.
    rounded = tl.where(rounded == rounded, rounded, tl.full([], 0, rounded.dtype))
    rounded = tl.minimum(tl.maximum(rounded, -2147483648.0), 2147483648.0)
    grid = rounded.to(tl.int64)
    grid = tl.minimum(tl.maximum(grid, -2147483647), 2147483647)
    if sampling_ratio > 0:
        grid = tl.full([], 0, tl.int64) + sampling_ratio
    return start, bin_size, grid, clamped


@triton.jit
def _coordinate(bin_base, bin_size, grid_f, i):
    """``bin_base + ((i + 0.5) * bin) / grid``; ``i + 0.5`` formed in float32 like the peers."""
    centre = (i64(i).to(tl.float32) + 0.5).to(bin_base.dtype)
    return bin_base + div(centre * bin_size, grid_f)


@triton.jit
def _tap(c, size):
    """Neighbouring rows (or columns) and weights ``(l, 1 - l)`` of a valid coordinate."""
    zero = tl.full([], 0, c.dtype)
    c = tl.where(c <= zero, zero, c)  # the margin [-1, 0] reads row 0 at full weight
    last = size - 1
    row = c.to(tl.int64)  # c >= 0: truncation is floor
    pinned = row >= last
    row = tl.where(pinned, last, row)
    row_next = tl.where(pinned, last, row + 1)
    c = tl.where(pinned, last.to(c.dtype), c)
    frac = c - row.to(c.dtype)
    return row, row_next, frac, 1 - frac


@triton.jit
def _roi_geometry(rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio,
                  OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                  MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                  COUNT_PRODUCT: tl.constexpr):
    base = rois_ptr + k * 5
    x1 = tl.load(base + 1)
    y1 = tl.load(base + 2)
    x2 = tl.load(base + 3)
    y2 = tl.load(base + 4)
    x_start, x_bin, grid_w, x_clamped = _axis(x1, x2, scale, pooled_w, sampling_ratio, OFFSET,
                                              ADD_END, END_EXTRA, MIN_SIZE, GRID_FLOOR)
    y_start, y_bin, grid_h, y_clamped = _axis(y1, y2, scale, pooled_h, sampling_ratio, OFFSET,
                                              ADD_END, END_EXTRA, MIN_SIZE, GRID_FLOOR)
    if COUNT_PRODUCT:
        count = grid_h.to(x1.dtype) * grid_w.to(x1.dtype)
    else:
        count = tl.maximum(grid_h * grid_w, 1).to(x1.dtype)
    return y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, y_clamped, x_clamped


@triton.jit
def _first_sample(bin_base, bin_size, grid_f, grid, bound, RELATION: tl.constexpr):
    """Per bin of ``bin_base`` (a tensor of bins, one per lane): the first sample index in
    ``[0, grid)`` whose coordinate stands in RELATION to ``bound`` (0: >=, 1: >, 2: <=, 3: <),
    by bisection (coordinates are monotonic in the index); ``grid`` if none."""
    low = tl.full(bin_base.shape, 0, tl.int64)
    high = low + tl.maximum(grid, 0)
    for _ in range(bit_length(grid)):
        active = low < high
        middle = (low + high) // 2
        c = _coordinate(bin_base, bin_size, grid_f, middle)
        if RELATION == 0:
            holds = c >= bound
        elif RELATION == 1:
            holds = c > bound
        elif RELATION == 2:
            holds = c <= bound
        else:
            holds = c < bound
        high = tl.where(active & holds, middle, high)
        low = tl.where(active & ~holds, middle + 1, low)
    return low


@triton.jit
def _valid_samples(bin_base, bin_size, grid_f, grid, size_f):
    """``(first, count)`` per bin of ``bin_base``: the samples whose coordinate lies in
    ``[-1, size]``, as the CPU plan (``roiops.roi_align.plan``) finds them."""
    lower = -tl.full([], 1, bin_base.dtype)
    if bin_size >= 0:
        first = _first_sample(bin_base, bin_size, grid_f, grid, lower, 0)
        stop = _first_sample(bin_base, bin_size, grid_f, grid, size_f, 1)
    else:
        first = _first_sample(bin_base, bin_size, grid_f, grid, size_f, 2)
        stop = _first_sample(bin_base, bin_size, grid_f, grid, lower, 3)
    return first, tl.maximum(stop - first, 0)


@triton.jit
def _lane_sample(bin_base, bin_size, grid_f, first, count, t, size):
    """Sample ``first + t`` of each lane's bin: ``(ok, low, high, frac, comp)``, where ``ok``
    says the lane has a ``t``-th valid sample; the taps of the others are pixel 0."""
    c = _coordinate(bin_base, bin_size, grid_f, first + t)
    ok = t < count
    row_lo, row_hi, frac, comp = _tap(tl.where(ok, c, tl.full([], 0, c.dtype)), size)
    return ok, row_lo, row_hi, frac, comp


@triton.jit
def _bin_bases(start, bin_size, p):
    """``start + p * bin``: the first edge of bin ``p`` (any shape of ``p``)."""
    return start + p.to(start.dtype) * bin_size


@triton.jit
def _sum_samples(acc, plane, s_h, s_w, mask, y_base, y_bin, grid_h_f, y_first, y_count, h64,
                 x_base, x_bin, grid_w_f, x_first, x_count, w64):
    """``acc`` plus each lane's bin's valid samples of ``plane`` (strides ``s_h``, ``s_w``):
    the CPU's order (valid y samples ascending, then valid x samples ascending), each sample
    ``((w1*v1 + w2*v2) + w3*v3) + w4*v4``. A lane past its count or outside ``mask`` adds
    +0.0, which changes no sum (the accumulator is never -0.0). Any shape of lanes: the
    forward tiles of roi_align and multi-scale, ps_roi_align's channels."""
    F = acc.dtype
    for ty in range(largest(y_count)):
        y_ok, row_lo, row_hi, ly, hy = _lane_sample(y_base, y_bin, grid_h_f, y_first,
                                                    y_count, ty, h64)
        for tx in range(largest(x_count)):
            x_ok, col_lo, col_hi, lx, hx = _lane_sample(x_base, x_bin, grid_w_f, x_first,
                                                        x_count, tx, w64)
            ok = mask & y_ok & x_ok
            w1 = hy * hx
            w2 = hy * lx
            w3 = ly * hx
            w4 = ly * lx
            v1 = tl.load(plane + row_lo * s_h + col_lo * s_w, mask=ok, other=0).to(F)
            v2 = tl.load(plane + row_lo * s_h + col_hi * s_w, mask=ok, other=0).to(F)
            v3 = tl.load(plane + row_hi * s_h + col_lo * s_w, mask=ok, other=0).to(F)
            v4 = tl.load(plane + row_hi * s_h + col_hi * s_w, mask=ok, other=0).to(F)
            term = w1 * v1 + w2 * v2
            term = term + w3 * v3
            term = term + w4 * v4
            acc = acc + tl.where(ok, term, tl.full([], 0, F))
    return acc


@triton.jit
def _forward_tile(out_ptr, image_ptr, s_c, s_h, s_w, k, channels, count, y_start, y_bin, grid_h,
                  x_start, x_bin, grid_w, h64, w64, y_first_ptr, y_count_ptr, x_first_ptr,
                  x_count_ptr, pooled_h, pooled_w, BLOCK_C: tl.constexpr,
                  BLOCK_BINS: tl.constexpr):
    """The forward of roi ``k``'s tile (program axes 1 and 2: a block of channels, a block of
    bins) from its image's maps at ``image_ptr`` (strides ``s_c``, ``s_h``, ``s_w``), into
    the contiguous ``[K, C, PH, PW]`` result: roi_align's and multi-scale's."""
    F = y_bin.dtype
    channel, bin_id, in_roi, ph, pw, mask = tile_lanes(channels, pooled_h, pooled_w, BLOCK_C,
                                                       BLOCK_BINS)
    bins = i64(pooled_h) * pooled_w
    y_base = _bin_bases(y_start, y_bin, ph)
    x_base = _bin_bases(x_start, x_bin, pw)
    y_first = tl.load(y_first_ptr + k * pooled_h + ph)
    x_first = tl.load(x_first_ptr + k * pooled_w + pw)
    # Lanes past the last bin sample nothing.
    y_count = tl.where(in_roi, tl.load(y_count_ptr + k * pooled_h + ph), 0)
    x_count = tl.where(in_roi, tl.load(x_count_ptr + k * pooled_w + pw), 0)
    acc = _sum_samples(tl.full([BLOCK_C, BLOCK_BINS], 0, F), image_ptr + channel * s_c, s_h,
                       s_w, mask, y_base, y_bin, grid_h.to(F), y_first, y_count, h64,
                       x_base, x_bin, grid_w.to(F), x_first, x_count, w64)
    value = div(acc, tl.broadcast_to(count, [BLOCK_C, BLOCK_BINS]))
    out = out_ptr + (k * channels + channel) * bins + bin_id
    tl.store(out, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "sampling_ratio", "s_n", "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, rois_ptr, index_ptr, out_ptr, scale_bits, y_first_ptr,
                    y_count_ptr, x_first_ptr, x_count_ptr,
                    channels, height, width, pooled_h, pooled_w, sampling_ratio,
                    s_n, s_c, s_h, s_w,
                    OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr, FLOAT64: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_BINS: tl.constexpr):
    # One program per (roi, block of channels, block of bins); the lanes are a
    # [BLOCK_C, BLOCK_BINS] tile of the roi's output, bins along the fast axis, so that the
    # lanes of one channel read neighbouring pixels of one plane. The geometry of the roi is
    # scalar; each lane has its own bin, whose valid samples come from ``_plan_kernel``.
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    _forward_tile(out_ptr, input_ptr + tl.load(index_ptr + k) * s_n, s_c, s_h, s_w, k, channels,
                  count, y_start, y_bin, grid_h, x_start, x_bin, grid_w, i64(height),
                  i64(width), y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr, pooled_h,
                  pooled_w, BLOCK_C, BLOCK_BINS)


# --- input gradient: every corner add as a record, sorted by pixel, summed per pixel --------

@triton.jit(do_not_specialize=["scale_bits", "pooled_h", "pooled_w", "sampling_ratio",
                               "height", "width"])
def _plan_kernel(rois_ptr, scale_bits, y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr,
                 divisor_ptr, height, width, pooled_h, pooled_w, sampling_ratio,
                 OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr,
                 FLOAT64: tl.constexpr, BLOCK_P: tl.constexpr):
    # One program per roi: the valid samples of each of its rows of bins ([K, PH] tables) and
    # columns of bins ([K, PW]), and its divisor.
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    p = tl.arange(0, BLOCK_P).to(tl.int64)
    y_first, y_count = _valid_samples(_bin_bases(y_start, y_bin, p), y_bin, grid_h.to(F),
                                         grid_h, i64(height).to(F))
    x_first, x_count = _valid_samples(_bin_bases(x_start, x_bin, p), x_bin, grid_w.to(F),
                                         grid_w, i64(width).to(F))
    tl.store(y_first_ptr + k * pooled_h + p, y_first, mask=p < pooled_h)
    tl.store(y_count_ptr + k * pooled_h + p, y_count, mask=p < pooled_h)
    tl.store(x_first_ptr + k * pooled_w + p, x_first, mask=p < pooled_w)
    tl.store(x_count_ptr + k * pooled_w + p, x_count, mask=p < pooled_w)
    tl.store(divisor_ptr + k, count)


@triton.jit(do_not_specialize=["scale_bits", "height", "width", "pooled_h", "pooled_w",
                               "sampling_ratio"])
def _records_kernel(rois_ptr, index_ptr, scale_bits, y_first_ptr, y_count_ptr, x_first_ptr,
                    x_count_ptr, offset_ptr, pixel_ptr, weight_ptr, bin_ptr,
                    height, width, pooled_h, pooled_w, sampling_ratio,
                    OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr,
                    FLOAT64: tl.constexpr, BLOCK_BINS: tl.constexpr):
    # One program per (roi, block of bins), a lane per bin: the lane writes its bin's records
    # at the bin's offset, in the CPU's order (valid y sample, valid x sample, corner 1..4):
    # the pixel (flat over the batch), the weight w_i and the bin (flat over all rois).
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, _, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    bin_id = tl.program_id(1).to(tl.int64) * BLOCK_BINS + tl.arange(0, BLOCK_BINS).to(tl.int64)
    h64 = i64(height)
    w64 = i64(width)
    _write_records(k, bin_id, tl.load(index_ptr + k) * h64 * w64, h64, w64,
                   y_start, y_bin, grid_h, x_start, x_bin, grid_w, y_first_ptr, y_count_ptr,
                   x_first_ptr, x_count_ptr, offset_ptr, pixel_ptr, weight_ptr, bin_ptr,
                   pooled_h, pooled_w)


@triton.jit
def _write_records(k, bin_id, image, h64, w64, y_start, y_bin, grid_h, x_start, x_bin, grid_w,
                   y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr, offset_ptr, pixel_ptr,
                   weight_ptr, bin_ptr, pooled_h, pooled_w):
    """The records of roi ``k``'s bins ``bin_id`` (a lane each; lanes past the last bin write
    none) at each bin's offset, in the CPU's order (valid y sample, valid x sample, corner
    1..4): the pixel (``image``, the first pixel of the roi's map, plus the row and column),
    the weight w_i and the bin (flat over all rois). roi_align's and multi-scale's."""
    F = y_bin.dtype
    bins = i64(pooled_h) * pooled_w
    in_roi = bin_id < bins
    ph = tl.where(in_roi, bin_id // pooled_w, 0)
    pw = tl.where(in_roi, bin_id % pooled_w, 0)
    y_first = tl.load(y_first_ptr + k * pooled_h + ph)
    y_count = tl.where(in_roi, tl.load(y_count_ptr + k * pooled_h + ph), 0)
    x_first = tl.load(x_first_ptr + k * pooled_w + pw)
    x_count = tl.where(in_roi, tl.load(x_count_ptr + k * pooled_w + pw), 0)
    slot = tl.load(offset_ptr + k * bins + bin_id, mask=in_roi, other=0) * 4
    flat_bin = k * bins + bin_id
    y_base = _bin_bases(y_start, y_bin, ph)
    x_base = _bin_bases(x_start, x_bin, pw)
    for ty in range(largest(y_count)):
        y_ok, row_lo, row_hi, ly, hy = _lane_sample(y_base, y_bin, grid_h.to(F), y_first,
                                                    y_count, ty, h64)
        for tx in range(largest(x_count)):
            x_ok, col_lo, col_hi, lx, hx = _lane_sample(x_base, x_bin, grid_w.to(F), x_first,
                                                        x_count, tx, w64)
            ok = y_ok & x_ok
            at = slot + (ty * x_count + tx) * 4
            _record(pixel_ptr, weight_ptr, bin_ptr, at, image + row_lo * w64 + col_lo,
                    hy * hx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 1, image + row_lo * w64 + col_hi,
                    hy * lx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 2, image + row_hi * w64 + col_lo,
                    ly * hx, flat_bin, ok)
            _record(pixel_ptr, weight_ptr, bin_ptr, at + 3, image + row_hi * w64 + col_hi,
                    ly * lx, flat_bin, ok)


@triton.jit
def _record(pixel_ptr, weight_ptr, bin_ptr, at, pixel, weight, flat_bin, ok):
    tl.store(pixel_ptr + at, pixel.to(pixel_ptr.dtype.element_ty), mask=ok)
    tl.store(weight_ptr + at, weight, mask=ok)
    tl.store(bin_ptr + at, flat_bin.to(bin_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["channels", "bins"])
def _sum_records_kernel(start_ptr, weight_ptr, bin_ptr, divisor_ptr, grads_ptr, out_ptr,
                        channels, bins, UNROLL: tl.constexpr, BLOCK_C: tl.constexpr):
    # One program per (pixel, block of channels): the pixel's records, sorted in the CPU's
    # order, summed in registers: ``acc += (g * w) / divisor`` per record, exactly the CPU's
    # adds to this element in its order. No atomics, no read-modify-write of memory.
    pixel = tl.program_id(0).to(tl.int64)
    channel = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    mask = channel < channels
    first = tl.load(start_ptr + pixel)
    stop = tl.load(start_ptr + pixel + 1)
    F = divisor_ptr.dtype.element_ty
    acc = tl.full([BLOCK_C], 0, F)
    for group in range(first, stop, UNROLL):
        # UNROLL records at a time: their loads are independent, the adds stay in order.
        for u in tl.static_range(UNROLL):
            j = group + u
            ok = j < stop
            flat_bin = tl.load(bin_ptr + j, mask=ok, other=0).to(tl.int64)
            weight = tl.load(weight_ptr + j, mask=ok, other=0)
            divisor = tl.load(divisor_ptr + flat_bin // bins, mask=ok, other=1)
            # ``where``, not ``mask & ok``: the interpreter splats a scalar bool to int64.
            g = tl.load(grads_ptr + flat_bin * channels + channel,
                        mask=tl.where(ok, mask, False), other=0).to(F)
            value = div(g * weight, tl.broadcast_to(divisor, [BLOCK_C]))
            acc = acc + tl.where(ok, value, tl.full([], 0, F))
    tl.store(out_ptr + pixel * channels + channel, acc, mask=mask)


# --- box gradient ----------------------------------------------------------------------

@triton.jit
def _moves(c, size):
    """Whether a valid sample's coordinate moves with the box: neither clamped to 0 (the
    margin ``[-1, 0]``) nor pinned to the last row, the two cases of ``_tap``."""
    return (c > 0) & (c.to(tl.int64) < size - 1)


@triton.jit
def _edge_weights(p, i, grid_f, pooled, scale, clamped):
    """``(d c/d low, d c/d high)`` of sample ``i`` of bin ``p``: ``s*(1 - a)`` and ``s*a`` with
    ``a = (p + (i + 0.5)/grid) / pooled`` its position along the roi; ``s`` and 0 when the
    minimum size fired (the size is the constant 1)."""
    F = grid_f.dtype
    a = div(i64(p).to(F) + div(i64(i).to(F) + 0.5, grid_f), i64(pooled).to(F))
    zero = tl.full([], 0, F)
    return tl.where(clamped, scale, scale * (1 - a)), tl.where(clamped, zero, scale * a)


@triton.jit
def _edge_sample(bin_base, bin_size, grid_f, i, size, p, pooled, scale, clamped):
    """Sample ``i`` of bin ``p`` along one axis, for the box gradient: its taps (``_tap``),
    whether it moves with the box (the low edge; the high edge also needs an unclamped size)
    and its ``(d c/d low, d c/d high)`` (``_edge_weights``)."""
    c = _coordinate(bin_base, bin_size, grid_f, i)
    low, high, frac, comp = _tap(c, size)
    moves = _moves(c, size)
    low_weight, high_weight = _edge_weights(p, i, grid_f, pooled, scale, clamped)
    return low, high, frac, comp, moves, moves & ~clamped, low_weight, high_weight


@triton.jit
def _store_box_gradient(out_ptr, k, d_y1, d_y2, d_x1, d_x2, grid_h, grid_w, count):
    """Row ``k`` of the ``[K, 5]`` box gradient: each edge's partial sums reduced in a fixed
    tree and divided by the bin's ``count``; zero for an empty grid, which has no gradient
    (also MindSpore's 0/0 bins). Column 0 (the batch index) is left as it is (zero)."""
    has_samples = (grid_h > 0) & (grid_w > 0)
    zero = tl.full([], 0, d_y1.dtype)
    out = out_ptr + k * 5
    tl.store(out + 1, tl.where(has_samples, div(tl.reduce(d_x1, 0, add), count), zero))
    tl.store(out + 2, tl.where(has_samples, div(tl.reduce(d_y1, 0, add), count), zero))
    tl.store(out + 3, tl.where(has_samples, div(tl.reduce(d_x2, 0, add), count), zero))
    tl.store(out + 4, tl.where(has_samples, div(tl.reduce(d_y2, 0, add), count), zero))


@triton.jit
def _bin_edge_slopes(d_y1, d_y2, d_x1, d_x2, plane, s_h, s_w, mask, g, scale,
                     y_base, y_bin, grid_h_f, y_first, y_stop, h64, ph, pooled_h, y_clamped,
                     x_base, x_bin, grid_w_f, x_first, x_stop, w64, pw, pooled_w, x_clamped):
    """The four edge derivatives' partial sums (a lane per channel) plus bin ``(ph, pw)``'s
    valid samples ``[y_first, y_stop) x [x_first, x_stop)`` of ``plane``, times the bin's
    gradient ``g``: roi_align's and ps_roi_align's box gradients."""
    F = d_y1.dtype
    zero = tl.full([], 0, F)
    for iy in range(y_first, y_stop):
        row_lo, row_hi, ly, hy, y_moves, y2_moves, y1_weight, y2_weight = _edge_sample(
            y_base, y_bin, grid_h_f, iy, h64, ph, pooled_h, scale, y_clamped)
        for ix in range(x_first, x_stop):
            col_lo, col_hi, lx, hx, x_moves, x2_moves, x1_weight, x2_weight = _edge_sample(
                x_base, x_bin, grid_w_f, ix, w64, pw, pooled_w, scale, x_clamped)
            v1 = tl.load(plane + row_lo * s_h + col_lo * s_w, mask=mask, other=0).to(F)
            v2 = tl.load(plane + row_lo * s_h + col_hi * s_w, mask=mask, other=0).to(F)
            v3 = tl.load(plane + row_hi * s_h + col_lo * s_w, mask=mask, other=0).to(F)
            v4 = tl.load(plane + row_hi * s_h + col_hi * s_w, mask=mask, other=0).to(F)
            # d value/dy and d value/dx of the bilinear sample, times g.
            slope_y = g * (hx * (v3 - v1) + lx * (v4 - v2))
            slope_x = g * (hy * (v2 - v1) + ly * (v4 - v3))
            # A sample that does not move adds nothing (the CPU skips it, so an inf pixel
            # there must not add NaN); nor the high edge of a clamped size.
            d_y1 = d_y1 + tl.where(y_moves, slope_y * y1_weight, zero)
            d_y2 = d_y2 + tl.where(y2_moves, slope_y * y2_weight, zero)
            d_x1 = d_x1 + tl.where(x_moves, slope_x * x1_weight, zero)
            d_x2 = d_x2 + tl.where(x2_moves, slope_x * x2_weight, zero)
    return d_y1, d_y2, d_x1, d_x2


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
    # One program per roi; lanes are channels; the valid samples of each bin come from
    # ``_plan_kernel``. Each lane keeps partial sums of the four edge derivatives, reduced once
    # at the end in a fixed tree: deterministic, no atomics.
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, y_clamped, x_clamped = (
        _roi_geometry(rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET,
        ADD_END, END_EXTRA, MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT))
    grid_h_f = grid_h.to(F)
    grid_w_f = grid_w.to(F)
    h64 = height.to(tl.int64)
    w64 = width.to(tl.int64)
    b = tl.load(index_ptr + k)
    zeros = tl.full([BLOCK_C], 0, F)
    d_y1 = zeros
    d_x1 = zeros
    d_y2 = zeros
    d_x2 = zeros
    for first_channel in range(0, channels, BLOCK_C):
        channel = first_channel + tl.arange(0, BLOCK_C).to(tl.int64)
        mask = channel < channels
        plane = input_ptr + b * s_n + channel * s_c
        for ph in range(pooled_h):
            y_base = _bin_bases(y_start, y_bin, i64(ph))
            y_first = tl.load(y_first_ptr + k * pooled_h + ph)
            y_stop = y_first + tl.load(y_count_ptr + k * pooled_h + ph)
            for pw in range(pooled_w):
                x_base = _bin_bases(x_start, x_bin, i64(pw))
                x_first = tl.load(x_first_ptr + k * pooled_w + pw)
                x_stop = x_first + tl.load(x_count_ptr + k * pooled_w + pw)
                g = tl.load(grads_ptr + k * g_k + channel * g_c + ph * g_h + pw * g_w,
                            mask=mask, other=0).to(F)
                d_y1, d_y2, d_x1, d_x2 = _bin_edge_slopes(
                    d_y1, d_y2, d_x1, d_x2, plane, s_h, s_w, mask, g, scale,
                    y_base, y_bin, grid_h_f, y_first, y_stop, h64, ph, pooled_h, y_clamped,
                    x_base, x_bin, grid_w_f, x_first, x_stop, w64, pw, pooled_w, x_clamped)
    _store_box_gradient(out_ptr, k, d_y1, d_y2, d_x1, d_x2, grid_h, grid_w, count)






def _common(rois, indices, F, device):
    rois_f = rois.to(device=device, dtype=F).contiguous()
    indices = indices.to(device=device, dtype=torch.int64).contiguous()
    return rois_f, indices


def _switches(options, F, kernel=None):
    """The convention's constexprs, and ``kernel``'s launch shape (``LAUNCH``) if given."""
    geometry = options.convention.geometry
    switches = dict(OFFSET=geometry.offset, ADD_END=geometry.add_end,
                    END_EXTRA=geometry.end_extra, MIN_SIZE=geometry.min_size,
                    GRID_FLOOR=geometry.grid_floor, COUNT_PRODUCT=geometry.count_product,
                    FLOAT64=F == torch.float64, enable_fp_fusion=False)
    if kernel is not None:
        switches.update(LAUNCH[kernel])
    return switches


def _bin_blocks(bins, lanes):
    """(channels per program, bins per program) for a lane budget: every bin of a roi in one
    program when they fit, the rest of the lanes over channels."""
    block_bins = min(triton.next_power_of_2(bins), lanes)
    return max(lanes // block_bins, 1), block_bins


def forward(input, rois, indices, options):
    """``[K, C, PH, PW]`` of ``input.dtype``; ``indices`` are the checked batch indices."""
    num_rois = rois.shape[0]
    _, channels, height, width = input.shape
    ph, pw = options.pooled_height, options.pooled_width
    # bfloat16 results are written in float32 and rounded by torch (round-to-nearest-even,
    # as the CPU op): the interpreter's own float32 -> bfloat16 cast truncates, so an
    # in-kernel cast could not be verified against the CPU without a GPU.
    store_dtype = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    out = torch.empty((num_rois, channels, ph, pw), dtype=store_dtype, device=input.device)
    if out.numel() == 0:
        return out.to(input.dtype)
    F = compute_dtype(input.dtype)
    rois_f, indices = _common(rois, indices, F, input.device)
    y_first, y_count, x_first, x_count, _ = _plan(rois_f, height, width, options, F)
    launch = dict(LAUNCH["forward"])
    block_c, block_bins = _bin_blocks(ph * pw, launch.pop("LANES"))
    grid = (num_rois, triton.cdiv(channels, block_c), triton.cdiv(ph * pw, block_bins))
    _forward_kernel[grid](input, rois_f, indices, out, float_bits(options.spatial_scale, F),
                          y_first, y_count, x_first, x_count,
                          channels, height, width, ph, pw, options.sampling_ratio,
                          *input.stride(), BLOCK_C=block_c, BLOCK_BINS=block_bins,
                          **launch, **_switches(options, F))
    return out.to(input.dtype)


# Records allocated from the fixed grid's bound without reading the exact count back from the
# device (a sync); larger bounds (or an adaptive grid) count exactly.
_RECORD_BOUND = 1 << 26


def _index_dtype(count):
    """int32 where every value fits (half the bytes to sort), else int64."""
    return torch.int32 if count < 2**31 else torch.int64


def _plan(rois_f, height, width, options, F):
    """``(y_first, y_count, x_first, x_count, divisor)``: the valid samples of every roi's rows
    of bins (``[K, PH]``) and columns of bins (``[K, PW]``), and each roi's divisor."""
    num_rois = rois_f.shape[0]
    ph, pw = options.pooled_height, options.pooled_width
    device = rois_f.device
    y_first = torch.empty((num_rois, ph), dtype=torch.int64, device=device)
    y_count = torch.empty_like(y_first)
    x_first = torch.empty((num_rois, pw), dtype=torch.int64, device=device)
    x_count = torch.empty_like(x_first)
    divisor = torch.empty(num_rois, dtype=F, device=device)
    _plan_kernel[(num_rois,)](rois_f, float_bits(options.spatial_scale, F), y_first, y_count,
                              x_first, x_count, divisor, height, width, ph, pw,
                              options.sampling_ratio,
                              BLOCK_P=triton.next_power_of_2(max(ph, pw)),
                              **_switches(options, F))
    return y_first, y_count, x_first, x_count, divisor


def _records(rois_f, indices, input_shape, options, F):
    """The input gradient's corner adds as records in the CPU's order (roi, bin, valid y
    sample, valid x sample, corner): ``(pixel, weight, bin, divisor)``; unused trailing
    records hold the pixel count (past every pixel)."""
    batch, _, height, width = input_shape
    num_rois = rois_f.shape[0]
    ph, pw = options.pooled_height, options.pooled_width
    device = rois_f.device
    y_first, y_count, x_first, x_count, divisor = _plan(rois_f, height, width, options, F)
    samples = (y_count[:, :, None] * x_count[:, None, :]).flatten()
    offsets = torch.cumsum(samples, 0) - samples
    bound = num_rois * ph * pw * max(options.sampling_ratio, 0) ** 2
    if 0 < bound <= _RECORD_BOUND:  # a fixed grid: no need to read the count back
        total = bound
    else:
        total = int(samples.sum())
    pixels = batch * height * width
    pixel = torch.full((4 * total,), pixels, dtype=_index_dtype(pixels + 1), device=device)
    weight = torch.empty(4 * total, dtype=F, device=device)
    flat_bin = torch.empty(4 * total, dtype=_index_dtype(num_rois * ph * pw), device=device)
    if total:
        block_bins = min(triton.next_power_of_2(ph * pw), 128)
        _records_kernel[(num_rois, triton.cdiv(ph * pw, block_bins))](
            rois_f, indices, float_bits(options.spatial_scale, F), y_first, y_count, x_first,
            x_count, offsets, pixel, weight, flat_bin, height, width, ph, pw,
            options.sampling_ratio, BLOCK_BINS=block_bins, **_switches(options, F))
    return pixel, weight, flat_bin, divisor


def grad_input(grads, rois, indices, input_shape, options):
    """``input_shape`` of ``grads.dtype``, channels-last (the CPU op's layout).

    Deterministic and bit-identical to the CPU without atomics: every corner add becomes a
    record (``_records``), a stable sort by pixel keeps each pixel's records in the CPU's
    order, and one program per (pixel, block of channels) sums them in registers."""
    batch, channels, height, width = input_shape
    F = compute_dtype(grads.dtype)
    total = torch.empty((batch, height, width, channels), dtype=F, device=grads.device)
    if not total.numel():
        return total.permute(0, 3, 1, 2).to(grads.dtype)
    if not grads.numel():
        return total.zero_().permute(0, 3, 1, 2).to(grads.dtype)
    rois_f, indices = _common(rois, indices, F, grads.device)
    pixel, weight, flat_bin, divisor = _records(rois_f, indices, input_shape, options, F)
    pixels = batch * height * width
    pixel, order = torch.sort(pixel, stable=True)
    starts = torch.searchsorted(pixel, torch.arange(pixels + 1, dtype=pixel.dtype,
                                                    device=pixel.device))
    # grads as [K * PH * PW, C]: a record's channels are contiguous.
    rows = grads.permute(0, 2, 3, 1).contiguous()
    launch = dict(LAUNCH["grad_input"])
    block_c = min(launch.pop("BLOCK_C"), triton.next_power_of_2(channels))
    _sum_records_kernel[(pixels, triton.cdiv(channels, block_c))](
        starts, weight[order], flat_bin[order], divisor, rows, total, channels,
        options.pooled_height * options.pooled_width, BLOCK_C=block_c, **launch,
        enable_fp_fusion=False)
    return total.permute(0, 3, 1, 2).to(grads.dtype)


def grad_boxes(grads, input, rois, indices, options):
    """``[K, 5]`` of ``input.dtype``, d/d(batch_index, x1, y1, x2, y2) (column 0 is zero),
    computed in F of the input dtype (grads rounded to F, as the CPU does)."""
    _, channels, height, width = input.shape
    F = compute_dtype(input.dtype)
    total = torch.zeros((rois.shape[0], 5), dtype=F, device=input.device)
    if grads.numel():
        rois_f, indices = _common(rois, indices, F, input.device)
        y_first, y_count, x_first, x_count, _ = _plan(rois_f, height, width, options, F)
        _grad_boxes_kernel[(rois.shape[0],)](grads, input, rois_f, indices, total,
                                             float_bits(options.spatial_scale, F), y_first,
                                             y_count, x_first, x_count, channels,
                                             height, width, options.pooled_height,
                                             options.pooled_width, options.sampling_ratio,
                                             *grads.stride(), *input.stride(),
                                             **_switches(options, F, "grad_boxes"))
    return total.to(input.dtype)
