"""Triton kernels of roi_align for CUDA tensors: forward and the deterministic gradients.

The forward and the input gradient reproduce the Numba CPU kernels (``roiops.roi_align.cpu``)
operation for operation, so float32 and float64 results are bit-identical to the CPU ones
(verified under the Triton interpreter, ``TRITON_INTERPRET=1``; see the limits below for real
GPUs). The box gradient sums in another fixed order: equal to the CPU within rounding.

Compute type ``F``: float32 for float16/bfloat16/float32 storage (loads widen exactly, the
result is rounded once on the store), float64 for float64. The rois are cast to ``F`` on the
host side (as the CPU path does) and ``spatial_scale`` travels as a one-element ``F`` tensor,
so every scalar of the geometry is in ``F`` and no literal promotes the arithmetic.
bfloat16 results are produced in float32 and rounded to nearest-even by torch (the CPU op
does the same; the interpreter's in-kernel float32 -> bfloat16 cast truncates, so an
in-kernel cast could not be checked against the CPU without a GPU).

Exactness rules (semantics.md §1):

- every launch passes ``enable_fp_fusion=False``: no multiply-add contraction;
- every float division is ``tl.div_rn`` (IEEE round-to-nearest; plain ``/`` on float32 is
  an approximate reciprocal on NVIDIA GPUs);
- the operation order is the CPU kernel's: ``(start + p*bin) + ((i + 0.5)*bin)/grid`` for a
  sample coordinate, ``((w1*v1 + w2*v2) + w3*v3) + w4*v4`` per sample, a running sum in
  (iy, ix) order, one division by the count; ``(g*w)/count`` per corner in the gradient.

Design:

- **Forward**: one program per (roi, ph, pw, block of channels); the lanes of a program are
  channels. The geometry of a bin is scalar per program, so the valid samples of each axis
  (coordinate in ``[-1, size]``) are found by a scalar bisection, as the CPU plan does:
  coordinates are monotonic in the sample index, so an adaptive grid of a huge box costs only
  the samples that land on the map (a grid can saturate at 2**31 - 1). Skipping an invalid
  sample is exact: it would add a signed zero to an accumulator that is never -0.
- **Input gradient** (deterministic, no atomics): one program per (image, tile of
  ``TILE_H x TILE_W`` pixels, block of channels) owns those elements of the result. It walks
  the image's rois in ascending order, then (ph, pw, iy, ix, corner 1..4), and applies only
  the corner updates whose pixel lies in its tile (read-modify-writes under a branch that is
  uniform per program): every element receives exactly the CPU kernel's adds in the CPU
  kernel's (= torchvision's sequential) order, whatever the launch geometry. Lanes are
  distinct channels, so no two lanes of one program touch the same address; the
  read-modify-write of a pinned sample's repeated corner is ordered by program order within
  the owning thread. Skipping is exact, not heuristic: a tile's window of coordinates (those
  whose taps can reach it, ``_window``) bounds the samples of each bin by the forward's
  bisection, and a roi whose first and last samples (which bound all of its computed
  coordinates, ``_misses``) lie outside the window is not walked. Only speed depends on the
  skips; a wrong skip would drop adds (the interpreter tests would see).
  The accumulator is an ``F`` buffer in channels-last memory (lanes are contiguous), rounded
  once to the gradient dtype at the end.
  *Cost*: ``N * ceil(H / TILE_H) * ceil(W / TILE_W) * ceil(C / BLOCK_C)`` programs (e.g.
  3952 for ``[2, 256, 100, 152]``), each scanning all ``K`` roi indices (geometry of the rois
  of its image) but doing only the work that lands in its tile; a sample near a tile border
  is visited by up to four programs, each doing the adds it owns. A faster
  non-deterministic variant (atomics) is not provided.
- **Box gradient** (deterministic, no atomics): one program per roi walks its blocks of
  channels, then (ph, pw, iy, ix) with the forward's geometry helpers; each lane (a channel)
  keeps partial sums of the four edge derivatives (semantics.md §5.3: per sample slope times
  ``d c/d edge``), reduced by one fixed-shape ``tl.reduce`` each and divided by the count.
  The CPU sums the slopes per sample row/column first and weights them after, so the two
  agree within F rounding, not bit for bit. Parallelism is ``K`` programs.

Verification without a GPU: the interpreter runs NumPy, which neither fuses nor
approximates, so it checks the operation order but not the device arithmetic; a compile-only
test (tests/torch_ops/test_triton.py) builds every kernel variant for sm_90 and checks that the
PTX has no ``fma`` and no approximate division. Running on a device, and speed, need a GPU.
"""
import torch
import triton
import triton.language as tl

# The kernels call only Triton builtins (``tl.full``, not the ``@jit`` helpers of triton's
# standard library such as ``tl.zeros``): the interpreter tests load these modules with
# TRITON_INTERPRET=1 after triton itself was imported without it, and a library ``@jit``
# helper decorated then cannot run under the interpreter.

__all__ = ["forward", "grad_input", "grad_boxes"]

# Launch shapes per kernel: channels per program (BLOCK_C), the input gradient's tile (each
# program owns TILE_H x TILE_W pixels of one image) and warps per program. Only speed depends
# on them (the tests vary them); benchmarks/bench_cuda.py --sweep times the alternatives.
LAUNCH = {
    "forward": {"BLOCK_C": 32, "num_warps": 4},
    "grad_input": {"BLOCK_C": 32, "TILE_H": 8, "TILE_W": 8, "num_warps": 4},
    "grad_boxes": {"BLOCK_C": 32, "num_warps": 4},
}


@triton.jit
def _axis(low, high, scale, pooled, MINDSPORE: tl.constexpr, ALIGNED: tl.constexpr,
          ROI_END_MODE: tl.constexpr, sampling_ratio):
    """Start, bin size, grid size (int64) and the clamped flag (the minimum size fired: the
    size is the constant 1) of one roi axis, in F.

    torchvision: start/end = edge*s - off (off 0.5 if aligned), size >= 1 unless aligned,
    grid ceil(bin). MindSpore: start = low*s, end = (high + mode)*s, size >= 1 for mode 0
    (``not size > 1``, so NaN becomes 1), grid floor(bin).
    """
    one = tl.full([], 1, low.dtype)
    clamped = tl.full([], 0, tl.int1)
    if MINDSPORE:
        start = low * scale
        end = (high + tl.full([], ROI_END_MODE, low.dtype)) * scale
        size = end - start
        if ROI_END_MODE == 0:
            clamped = ~(size > one)  # NaN too, as the CPU's ``not size > 1``
            size = tl.where(size > one, size, one)
    else:
        if ALIGNED:
            offset = tl.full([], 0.5, low.dtype)
        else:
            offset = tl.full([], 0, low.dtype)
        start = low * scale - offset
        end = high * scale - offset
        size = end - start
        if not ALIGNED:
            clamped = size < one
            size = tl.where(size < one, one, size)
    bin_size = _div(size, pooled.to(low.dtype))
    if MINDSPORE:
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
def _div(x, y):
    """IEEE division in the operands' type: ``div_rn`` for float32 (``/`` is approximate
    there); float64 ``/`` is already correctly rounded (``div.rn.f64``)."""
    if x.dtype == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def _i64(i):
    """A loop index as an int64 tensor (the interpreter hands out Python ints)."""
    return i + tl.full([], 0, tl.int64)


@triton.jit
def _coordinate(bin_base, bin_size, grid_f, i):
    """``bin_base + ((i + 0.5) * bin) / grid``; ``i + 0.5`` formed in float32 like the peers."""
    centre = (_i64(i).to(tl.float32) + 0.5).to(bin_base.dtype)
    return bin_base + _div(centre * bin_size, grid_f)


@triton.jit
def _first(bin_base, bin_size, grid_f, grid, bound, RELATION: tl.constexpr):
    """First sample index in ``[0, grid)`` whose coordinate stands in RELATION to ``bound``
    (0: >=, 1: >, 2: <=, 3: <), by bisection (coordinates are monotonic in the index)."""
    low = tl.full([], 0, tl.int64)
    high = tl.maximum(grid, 0)
    while low < high:
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
        if holds:
            high = middle
        else:
            low = middle + 1
    return low


@triton.jit
def _sample_range(bin_base, bin_size, grid_f, grid, lower, upper):
    """``[first, stop)`` of the samples whose coordinate lies in ``[lower, upper]``."""
    if bin_size >= 0:
        first = _first(bin_base, bin_size, grid_f, grid, lower, 0)
        stop = _first(bin_base, bin_size, grid_f, grid, upper, 1)
    else:
        first = _first(bin_base, bin_size, grid_f, grid, upper, 2)
        stop = _first(bin_base, bin_size, grid_f, grid, lower, 3)
    return first, tl.maximum(first, stop)


@triton.jit
def _valid_range(bin_base, bin_size, grid_f, grid, size_f):
    """``[first, stop)`` of the samples whose coordinate lies in ``[-1, size]``."""
    return _sample_range(bin_base, bin_size, grid_f, grid, -tl.full([], 1, bin_base.dtype),
                         size_f)


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
                  MINDSPORE: tl.constexpr, ALIGNED: tl.constexpr, ROI_END_MODE: tl.constexpr):
    base = rois_ptr + k * 5
    x1 = tl.load(base + 1)
    y1 = tl.load(base + 2)
    x2 = tl.load(base + 3)
    y2 = tl.load(base + 4)
    x_start, x_bin, grid_w, x_clamped = _axis(x1, x2, scale, pooled_w, MINDSPORE, ALIGNED,
                                              ROI_END_MODE, sampling_ratio)
    y_start, y_bin, grid_h, y_clamped = _axis(y1, y2, scale, pooled_h, MINDSPORE, ALIGNED,
                                              ROI_END_MODE, sampling_ratio)
    if MINDSPORE:
        count = grid_h.to(x1.dtype) * grid_w.to(x1.dtype)
    else:
        count = tl.maximum(grid_h * grid_w, 1).to(x1.dtype)
    return y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, y_clamped, x_clamped


@triton.jit(do_not_specialize=["channels", "height", "width", "pooled_h", "pooled_w",
                              "sampling_ratio", "s_n", "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, rois_ptr, index_ptr, scale_ptr, out_ptr,
                    channels, height, width, pooled_h, pooled_w, sampling_ratio,
                    s_n, s_c, s_h, s_w,
                    MINDSPORE: tl.constexpr, ALIGNED: tl.constexpr,
                    ROI_END_MODE: tl.constexpr, BLOCK_C: tl.constexpr):
    # Program ids in int64: every offset below is 64-bit.
    bin_id = tl.program_id(0).to(tl.int64)
    c_block = tl.program_id(1).to(tl.int64)
    pw = bin_id % pooled_w
    ph = (bin_id // pooled_w) % pooled_h
    k = bin_id // (pooled_w * pooled_h)
    scale = tl.load(scale_ptr)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, MINDSPORE, ALIGNED,
        ROI_END_MODE)
    channel = c_block * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    mask = channel < channels
    b = tl.load(index_ptr + k)
    plane = input_ptr + b * s_n + channel * s_c
    grid_h_f = grid_h.to(F)
    grid_w_f = grid_w.to(F)
    y_base = y_start + ph.to(F) * y_bin
    x_base = x_start + pw.to(F) * x_bin
    h64 = height.to(tl.int64)
    w64 = width.to(tl.int64)
    y_first, y_stop = _valid_range(y_base, y_bin, grid_h_f, grid_h, h64.to(F))
    x_first, x_stop = _valid_range(x_base, x_bin, grid_w_f, grid_w, w64.to(F))
    acc = tl.full([BLOCK_C], 0, F)
    for iy in range(y_first, y_stop):
        y = _coordinate(y_base, y_bin, grid_h_f, iy)
        row_lo, row_hi, ly, hy = _tap(y, h64)
        for ix in range(x_first, x_stop):
            x = _coordinate(x_base, x_bin, grid_w_f, ix)
            col_lo, col_hi, lx, hx = _tap(x, w64)
            w1 = hy * hx
            w2 = hy * lx
            w3 = ly * hx
            w4 = ly * lx
            v1 = tl.load(plane + row_lo * s_h + col_lo * s_w, mask=mask, other=0).to(F)
            v2 = tl.load(plane + row_lo * s_h + col_hi * s_w, mask=mask, other=0).to(F)
            v3 = tl.load(plane + row_hi * s_h + col_lo * s_w, mask=mask, other=0).to(F)
            v4 = tl.load(plane + row_hi * s_h + col_hi * s_w, mask=mask, other=0).to(F)
            term = w1 * v1 + w2 * v2
            term = term + w3 * v3
            term = term + w4 * v4
            acc = acc + term
    value = _div(acc, tl.broadcast_to(count, [BLOCK_C]))
    out = out_ptr + ((k * channels + channel) * pooled_h + ph) * pooled_w + pw
    tl.store(out, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _window(first_row, tile, size, F):
    """``[lower, upper]`` in F: the valid coordinates (``[-1, size]``) whose taps may reach
    rows ``[first_row, first_row + tile)`` (or columns). ``_tap`` reads rows ``floor(c)`` and
    ``floor(c) + 1``, except that ``[-1, 0]`` reads rows 0 and 1 and ``c >= size - 1`` only
    ``size - 1``: so a reaching coordinate lies in ``[first_row - 1, last_row + 1]``, or in
    ``[-1, ...]`` for a first row of 0 or 1. A superset is enough (ownership decides)."""
    last_row = tl.minimum(first_row + tile, size) - 1
    lower = tl.where(first_row <= 1, -1, first_row - 1).to(F)
    upper = (last_row + 1).to(F)  # at most size
    return lower, upper


@triton.jit
def _misses(start, bin_size, grid_f, grid, pooled, lower, upper):
    """Whether no sample of a roi axis (all its bins) lies in ``[lower, upper]``.

    A sample's coordinate ``fl(fl(start + fl(p*bin)) + fl(fl(c_i*bin)/grid))`` is monotonic in
    the bin ``p`` and in the sample ``i`` together (every rounded operation is monotonic, and
    both grow in the direction of ``bin``), so the first sample of the first bin and the last
    sample of the last bin, computed by the same expressions as the sample loop, bound every
    sample bit for bit (an empty grid has no sample to skip). NaN geometry never skips: its
    comparisons are false."""
    F = start.dtype
    first = _coordinate(start + _i64(0).to(F) * bin_size, bin_size, grid_f, 0)
    last = _coordinate(start + _i64(pooled - 1).to(F) * bin_size, bin_size, grid_f, grid - 1)
    return ((first < lower) & (last < lower)) | ((first > upper) & (last > upper))


@triton.jit(do_not_specialize=["num_rois", "channels", "height", "width", "pooled_h",
                              "pooled_w", "sampling_ratio", "g_k", "g_c", "g_h", "g_w"])
def _grad_input_kernel(grads_ptr, rois_ptr, index_ptr, scale_ptr, out_ptr,
                       num_rois, channels, height, width, pooled_h, pooled_w, sampling_ratio,
                       g_k, g_c, g_h, g_w,
                       MINDSPORE: tl.constexpr, ALIGNED: tl.constexpr,
                       ROI_END_MODE: tl.constexpr, BLOCK_C: tl.constexpr,
                       TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    # One program owns a tile of TILE_H x TILE_W pixels of image b, channels of one block: it
    # alone writes those elements, so it needs no atomics. It walks the image's rois, bins and
    # samples in the CPU's order and applies only the corner adds that land in its tile: each
    # element receives exactly the CPU's adds in the CPU's order. The tile's coordinate
    # windows only skip samples, bins and rois that cannot reach the tile.
    h64 = height.to(tl.int64)
    w64 = width.to(tl.int64)
    tiles_x = (w64 + TILE_W - 1) // TILE_W
    tiles_y = (h64 + TILE_H - 1) // TILE_H
    tile = tl.program_id(0).to(tl.int64)
    b = tile // (tiles_y * tiles_x)
    row0 = (tile // tiles_x) % tiles_y * TILE_H
    col0 = tile % tiles_x * TILE_W
    c_block = tl.program_id(1).to(tl.int64)
    scale = tl.load(scale_ptr)
    F = scale.dtype
    channel = c_block * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    mask = channel < channels
    y_lower, y_upper = _window(row0, TILE_H, h64, F)
    x_lower, x_upper = _window(col0, TILE_W, w64, F)
    # out is [N, H, W, C] in F: the lanes (channels) are contiguous.
    image = out_ptr + b * h64 * w64 * channels + channel
    for k in range(num_rois):
        k64 = _i64(k)
        if tl.load(index_ptr + k64) == b:
            y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
                rois_ptr, k64, scale, pooled_h, pooled_w, sampling_ratio, MINDSPORE, ALIGNED,
                ROI_END_MODE)
            grid_h_f = grid_h.to(F)
            grid_w_f = grid_w.to(F)
            misses = _misses(y_start, y_bin, grid_h_f, grid_h, pooled_h, y_lower, y_upper)
            misses = misses | _misses(x_start, x_bin, grid_w_f, grid_w, pooled_w, x_lower,
                                      x_upper)
            if not misses:
                counts = tl.broadcast_to(count, [BLOCK_C])
                for ph in range(pooled_h):
                    y_base = y_start + _i64(ph).to(F) * y_bin
                    # The samples of the bin that may reach the tile: a contiguous part of
                    # the valid ones (the window lies in [-1, size]), in the same order.
                    y_first, y_stop = _sample_range(y_base, y_bin, grid_h_f, grid_h, y_lower,
                                                    y_upper)
                    if y_first < y_stop:
                        for pw in range(pooled_w):
                            x_base = x_start + _i64(pw).to(F) * x_bin
                            x_first, x_stop = _sample_range(x_base, x_bin, grid_w_f, grid_w,
                                                            x_lower, x_upper)
                            if x_first < x_stop:
                                g = tl.load(grads_ptr + k64 * g_k + channel * g_c + ph * g_h
                                            + pw * g_w, mask=mask, other=0).to(F)
                                _scatter_bin(image, g, counts, mask, y_base, y_bin, grid_h_f,
                                             y_first, y_stop, x_base, x_bin, grid_w_f,
                                             x_first, x_stop, h64, w64, channels, row0, col0,
                                             TILE_H, TILE_W)


@triton.jit
def _scatter_bin(image, g, counts, mask, y_base, y_bin, grid_h_f, y_first, y_stop,
                 x_base, x_bin, grid_w_f, x_first, x_stop, h64, w64, channels, row0, col0,
                 TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """The corner adds of samples ``[y_first, y_stop) x [x_first, x_stop)`` of one bin that
    land in the tile at ``(row0, col0)``."""
    for iy in range(y_first, y_stop):
        y = _coordinate(y_base, y_bin, grid_h_f, iy)
        row_lo, row_hi, ly, hy = _tap(y, h64)
        lo_row_owned = (row_lo >= row0) & (row_lo < row0 + TILE_H)
        hi_row_owned = (row_hi >= row0) & (row_hi < row0 + TILE_H)
        for ix in range(x_first, x_stop):
            x = _coordinate(x_base, x_bin, grid_w_f, ix)
            col_lo, col_hi, lx, hx = _tap(x, w64)
            lo_col_owned = (col_lo >= col0) & (col_lo < col0 + TILE_W)
            hi_col_owned = (col_hi >= col0) & (col_hi < col0 + TILE_W)
            # Corner by corner, each a read-modify-write, of the corners in the tile only
            # (a uniform branch: the ownership is scalar per program). A pinned sample's
            # corners are one pixel, and its adds land in order.
            if lo_row_owned & lo_col_owned:
                _add(image + (row_lo * w64 + col_lo) * channels, _div(g * (hy * hx), counts),
                     mask)
            if lo_row_owned & hi_col_owned:
                _add(image + (row_lo * w64 + col_hi) * channels, _div(g * (hy * lx), counts),
                     mask)
            if hi_row_owned & lo_col_owned:
                _add(image + (row_hi * w64 + col_lo) * channels, _div(g * (ly * hx), counts),
                     mask)
            if hi_row_owned & hi_col_owned:
                _add(image + (row_hi * w64 + col_hi) * channels, _div(g * (ly * lx), counts),
                     mask)


@triton.jit
def _add(p, value, mask):
    """``*p += value`` on the lanes of ``mask`` (a read-modify-write, in program order)."""
    tl.store(p, tl.load(p, mask=mask) + value, mask=mask)


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
    a = _div(_i64(p).to(F) + _div(_i64(i).to(F) + 0.5, grid_f), _i64(pooled).to(F))
    zero = tl.full([], 0, F)
    return tl.where(clamped, scale, scale * (1 - a)), tl.where(clamped, zero, scale * a)


@triton.jit
def _edge_sample(bin_base, bin_size, grid_f, i, size, p, pooled, scale, clamped):
    """Sample ``i`` of bin ``p`` along one axis, for the box gradient: its taps (``_tap``),
    whether it moves with the box (the low edge; the high edge also needs an unclamped size)
    and its ``(d c/d low, d c/d high)`` (``_edge_weights``)."""
    c = _coordinate(bin_base, bin_size, grid_f, i)
    low, high, l, h = _tap(c, size)
    moves = _moves(c, size)
    low_weight, high_weight = _edge_weights(p, i, grid_f, pooled, scale, clamped)
    return low, high, l, h, moves, moves & ~clamped, low_weight, high_weight


@triton.jit
def _add_pair(a, b):
    return a + b


@triton.jit(do_not_specialize=["channels", "height", "width", "pooled_h", "pooled_w",
                              "sampling_ratio", "g_k", "g_c", "g_h", "g_w",
                              "s_n", "s_c", "s_h", "s_w"])
def _grad_boxes_kernel(grads_ptr, input_ptr, rois_ptr, index_ptr, scale_ptr, out_ptr,
                       channels, height, width, pooled_h, pooled_w, sampling_ratio,
                       g_k, g_c, g_h, g_w, s_n, s_c, s_h, s_w,
                       MINDSPORE: tl.constexpr, ALIGNED: tl.constexpr,
                       ROI_END_MODE: tl.constexpr, BLOCK_C: tl.constexpr):
    # One program per roi; lanes are channels. Each lane keeps partial sums of the four edge
    # derivatives, reduced once at the end in a fixed tree: deterministic, no atomics.
    k = tl.program_id(0).to(tl.int64)
    scale = tl.load(scale_ptr)
    F = scale.dtype
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, y_clamped, x_clamped = (
        _roi_geometry(rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, MINDSPORE,
                      ALIGNED, ROI_END_MODE))
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
            y_base = y_start + _i64(ph).to(F) * y_bin
            y_first, y_stop = _valid_range(y_base, y_bin, grid_h_f, grid_h, h64.to(F))
            for pw in range(pooled_w):
                x_base = x_start + _i64(pw).to(F) * x_bin
                x_first, x_stop = _valid_range(x_base, x_bin, grid_w_f, grid_w, w64.to(F))
                g = tl.load(grads_ptr + k * g_k + channel * g_c + ph * g_h + pw * g_w,
                            mask=mask, other=0).to(F)
                for iy in range(y_first, y_stop):
                    row_lo, row_hi, ly, hy, y_moves, y2_moves, y1_weight, y2_weight = (
                        _edge_sample(y_base, y_bin, grid_h_f, iy, h64, ph, pooled_h, scale,
                                     y_clamped))
                    for ix in range(x_first, x_stop):
                        col_lo, col_hi, lx, hx, x_moves, x2_moves, x1_weight, x2_weight = (
                            _edge_sample(x_base, x_bin, grid_w_f, ix, w64, pw, pooled_w,
                                         scale, x_clamped))
                        v1 = tl.load(plane + row_lo * s_h + col_lo * s_w, mask=mask,
                                     other=0).to(F)
                        v2 = tl.load(plane + row_lo * s_h + col_hi * s_w, mask=mask,
                                     other=0).to(F)
                        v3 = tl.load(plane + row_hi * s_h + col_lo * s_w, mask=mask,
                                     other=0).to(F)
                        v4 = tl.load(plane + row_hi * s_h + col_hi * s_w, mask=mask,
                                     other=0).to(F)
                        # d value/dy and d value/dx of the bilinear sample, times g.
                        slope_y = g * (hx * (v3 - v1) + lx * (v4 - v2))
                        slope_x = g * (hy * (v2 - v1) + ly * (v4 - v3))
                        # A sample that does not move adds nothing (the CPU skips it, so an
                        # inf pixel there must not add NaN); nor the high edge of a clamped
                        # size.
                        d_y1 = d_y1 + tl.where(y_moves, slope_y * y1_weight, zeros)
                        d_y2 = d_y2 + tl.where(y2_moves, slope_y * y2_weight, zeros)
                        d_x1 = d_x1 + tl.where(x_moves, slope_x * x1_weight, zeros)
                        d_x2 = d_x2 + tl.where(x2_moves, slope_x * x2_weight, zeros)
    # An empty grid has no gradient (also MindSpore's 0/0 bins).
    has_samples = (grid_h > 0) & (grid_w > 0)
    zero = tl.full([], 0, F)
    out = out_ptr + k * 5
    tl.store(out + 1, tl.where(has_samples, _div(tl.reduce(d_x1, 0, _add_pair), count), zero))
    tl.store(out + 2, tl.where(has_samples, _div(tl.reduce(d_y1, 0, _add_pair), count), zero))
    tl.store(out + 3, tl.where(has_samples, _div(tl.reduce(d_x2, 0, _add_pair), count), zero))
    tl.store(out + 4, tl.where(has_samples, _div(tl.reduce(d_y2, 0, _add_pair), count), zero))


def compute_dtype(dtype):
    """F: float64 for float64 storage, float32 otherwise (API.md §2)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _common(rois, indices, spatial_scale, F, device):
    rois_f = rois.to(device=device, dtype=F).contiguous()
    indices = indices.to(device=device, dtype=torch.int64).contiguous()
    scale = torch.tensor([spatial_scale], dtype=F, device=device)
    return rois_f, indices, scale


def _switches(options, kernel):
    """The convention's constexprs and ``kernel``'s launch shape (``LAUNCH``)."""
    return dict(MINDSPORE=options.mindspore, ALIGNED=options.aligned,
                ROI_END_MODE=options.roi_end_mode, enable_fp_fusion=False, **LAUNCH[kernel])


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
    rois_f, indices, scale = _common(rois, indices, options.spatial_scale, F, input.device)
    grid = (num_rois * ph * pw, triton.cdiv(channels, LAUNCH["forward"]["BLOCK_C"]))
    _forward_kernel[grid](input, rois_f, indices, scale, out, channels, height, width, ph, pw,
                          options.sampling_ratio, *input.stride(),
                          **_switches(options, "forward"))
    return out.to(input.dtype)


def grad_input(grads, rois, indices, input_shape, options):
    """``input_shape`` of ``grads.dtype``, channels-last (the CPU op's layout)."""
    batch, channels, height, width = input_shape
    F = compute_dtype(grads.dtype)
    total = torch.zeros((batch, height, width, channels), dtype=F, device=grads.device)
    if grads.numel() and total.numel():
        rois_f, indices, scale = _common(rois, indices, options.spatial_scale, F, grads.device)
        launch = LAUNCH["grad_input"]
        tiles = triton.cdiv(height, launch["TILE_H"]) * triton.cdiv(width, launch["TILE_W"])
        grid = (batch * tiles, triton.cdiv(channels, launch["BLOCK_C"]))
        _grad_input_kernel[grid](grads, rois_f, indices, scale, total, rois.shape[0], channels,
                                 height, width, options.pooled_height, options.pooled_width,
                                 options.sampling_ratio, *grads.stride(),
                                 **_switches(options, "grad_input"))
    return total.permute(0, 3, 1, 2).to(grads.dtype)


def grad_boxes(grads, input, rois, indices, options):
    """``[K, 5]`` of ``input.dtype``, d/d(batch_index, x1, y1, x2, y2) (column 0 is zero),
    computed in F of the input dtype (grads rounded to F, as the CPU does)."""
    _, channels, height, width = input.shape
    F = compute_dtype(input.dtype)
    total = torch.zeros((rois.shape[0], 5), dtype=F, device=input.device)
    if grads.numel():
        rois_f, indices, scale = _common(rois, indices, options.spatial_scale, F, input.device)
        _grad_boxes_kernel[(rois.shape[0],)](grads, input, rois_f, indices, scale, total,
                                             channels, height, width, options.pooled_height,
                                             options.pooled_width, options.sampling_ratio,
                                             *grads.stride(), *input.stride(),
                                             **_switches(options, "grad_boxes"))
    return total.to(input.dtype)
