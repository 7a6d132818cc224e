"""Triton kernels of crop_and_resize for CUDA tensors: forward and both gradients.

The forward and the image gradient reproduce the Numba CPU kernels
(``roiops.crop_and_resize.cpu``) operation for operation (docs/tensorflow.md#forward,
docs/tensorflow.md#image-gradient, docs/mindspore.md#bilinear_v2), so float32 and float64
results are bit-identical to the CPU ones: checked on an H200 (benchmarks/check_cuda.py) and
under the Triton interpreter (``TRITON_INTERPRET=1``, in CI). The box gradient has the CPU's
per-sample arithmetic but sums in another (fixed) order: equal within rounding.

Compute type ``F``: float64 for float64 (images, or gradient results), float32 otherwise;
images of any dtype are widened to ``F`` on load (exact for float16/bfloat16 and integers up
to 2**24, as the CPU converts them). Boxes are cast to ``F`` on the host, as the CPU does.
bfloat16 results are produced in float32 and rounded to nearest-even by torch, as the CPU op
does (the interpreter's in-kernel float32 -> bfloat16 cast truncates). Float arguments
(``extrapolation_value``) travel as their bit pattern in ``F`` (``float_bits``).

Exactness rules (docs/arithmetic.md#one-rounding-per-operation): launches pass
``enable_fp_fusion=False`` (no contraction of TF's ``a + (b - a) * w`` lerps into FMAs);
float32 divisions are ``tl.div_rn``; the operation order is the CPU kernel's. The
crop-size-1 centre ``0.5 * (y1 + y2) * (H - 1)`` is formed in float64 exactly as the CPU
(and TF's C double literal) does and then rounded once to ``F``, so it is exact here too,
subnormals included. Round-half-away-from-zero for nearest is ``floor(c)`` plus one when
``c - floor(c) >= 0.5`` (the difference is exact), never ``floor(c + 0.5)``. A pixel index
formed from a float coordinate is clamped to ``size - 1`` in integer arithmetic (``_taps``).

Design:

- **Forward**: one program per (box, crop row, block of crop columns, block of channels);
  the lanes are a ``[columns, channels]`` tile, channels along the fast axis. The row's
  coordinate arithmetic is scalar, a column's is shared by its channels. Layouts are read
  and written through strides (NHWC or NCHW, any view).
- **Image gradient** (deterministic, no atomics, no read-modify-write of memory): one program
  per (image, tile of ``TILE_H x TILE_W`` pixels, block of channels), a lane per element of
  the tile, accumulating in registers. Each lane gathers the adds that land on its own pixel
  in the CPU's order: the boxes of its image ascending, then the crop rows whose samples
  touch its pixel row, then the crop columns whose samples touch its pixel column (both
  contiguous ranges, since the taps are monotone in the crop index; found by bisection,
  ``_touching``), then the corners in the CPU's corner order. A lane adds ``+0.0`` where a
  corner is not its pixel, which changes no sum (the accumulator is never ``-0.0``); where
  corners coincide each still adds (an inf gradient turns a zero weight into NaN). A box whose
  end samples both lie on one side of the tile is skipped (``_span_misses``); a NaN end
  sample never skips one. Small depths get larger tiles (``_tile``), so RGB keeps its lanes
  busy.
- **Box gradient** (deterministic, no atomics): one program per box, lanes over blocks of
  ``crop column x depth`` elements, crop rows scalar; TF's own coordinate recipe
  (docs/tensorflow.md#box-gradient: ratio first). Each lane keeps partial sums of the four
  derivatives in F; one fixed-shape ``tl.reduce`` per derivative at the end. The order
  differs from the CPU's sequential (y, x, channel) sum, so results agree within F rounding,
  not bit for bit. A crop size of 1 forms each addend in float64 and rounds it to F (the CPU
  rounds the running sum instead).

Speed (BENCHMARKS.md, "CUDA"): launch shapes in ``LAUNCH``, chosen by a sweep on an H200.
Without a GPU, a compile-only test builds every variant for sm_90 and checks that the PTX has
no ``fma`` and no approximate division.
"""
import torch
import triton
import triton.language as tl

from .._triton import add, bit_length, compute_dtype, div, float_arg, float_bits, i64, largest

# The kernels call only Triton builtins and roiops._triton's helpers (not the ``@jit`` helpers
# of triton's standard library such as ``tl.zeros``): the interpreter tests load this module
# and roiops._triton with TRITON_INTERPRET=1 after triton itself was imported without it, and
# a library ``@jit`` helper decorated then cannot run under the interpreter.

__all__ = ["forward", "grad_image", "grad_boxes"]

BILINEAR, NEAREST, BILINEAR_V2 = 0, 1, 2
_METHODS = {"bilinear": BILINEAR, "nearest": NEAREST, "bilinear_v2": BILINEAR_V2}
# Launch shapes per kernel, powers of two: lanes per program (LANES, or BLOCK for the box
# gradient's crop column x depth elements), channels per program (BLOCK_D, at most: the next
# power of two of a smaller depth, e.g. 4 for RGB), the image gradient's tile of pixels per
# program (grown for small depths, ``_tile``) and warps per program. Only speed depends on
# them (the tests vary them); benchmarks/bench_cuda.py --sweep times the alternatives.
LAUNCH = {
    "forward": {"LANES": 512, "BLOCK_D": 128, "num_warps": 4},
    "grad_image": {"BLOCK_D": 32, "TILE_H": 4, "TILE_W": 4, "num_warps": 2},
    "grad_boxes": {"BLOCK": 128, "num_warps": 4},
}


@triton.jit
def _axis(low, high, size, crop):
    """(start, step) of the forward's samples: ``low*(size-1)`` and
    ``((high-low)*(size-1))/(crop-1)``; for a crop of 1 the centre, formed in float64."""
    F = low.dtype
    size_m1 = (size - 1).to(F)
    if crop > 1:
        start = low * size_m1
        step = div((high - low) * size_m1, (crop - 1).to(F))
    else:
        centre = 0.5 * (low + high).to(tl.float64) * (size - 1).to(tl.float64)
        start = centre.to(F)
        step = tl.full([], 0, F)
    return start, step


@triton.jit
def _sample(start, step, index, crop):
    """The forward's sample coordinate ``start + index*step`` for the crop indices ``index``
    (any shape); the centre itself for a crop of 1 (adding ``0 * step`` could flip the sign
    of a zero)."""
    coordinate = tl.broadcast_to(start, index.shape)
    if crop > 1:
        coordinate = start + index.to(start.dtype) * step
    return coordinate


@triton.jit
def _round_half_away(c):
    """C ``roundf`` for ``c >= 0``: ``c - floor(c)`` is exact, unlike ``c + 0.5``."""
    low = tl.floor(c)
    return tl.where(c - low >= 0.5, low + 1, low).to(tl.int64)


@triton.jit
def _window_edge(value, F: tl.constexpr):
    """bilinear_v2's truncated window edge, total: NaN -> 0, clamped to +-2**61 (as the CPU:
    the conversion stays defined and a window length stays inside int64)."""
    limit = tl.full([], 2305843009213693952.0, F)
    clamped = tl.minimum(tl.maximum(value, -limit), limit)
    clamped = tl.where(value == value, clamped, tl.full([], 0, F))
    return clamped.to(tl.int64)  # C truncation toward zero


@triton.jit
def _v2_window(low, high, size):
    F = low.dtype
    first = _window_edge(low * size.to(F), F)
    last = _window_edge(high * size.to(F), F)
    return first, tl.maximum(last - first + 1, 1)


@triton.jit
def _v2_axis(first, length, size, index, crop, F: tl.constexpr):
    ratio = div(length.to(F), crop.to(F))
    position = (index.to(F) + 0.5) * ratio - 0.5
    low = tl.minimum(tl.maximum(tl.floor(position).to(tl.int64), 0), length - 1)
    high = tl.minimum(tl.maximum(tl.ceil(position).to(tl.int64), 0), length - 1)
    weight = position - low.to(F)
    low = tl.minimum(tl.maximum(first + low, 0), size - 1)
    high = tl.minimum(tl.maximum(first + high, 0), size - 1)
    return low, high, weight


@triton.jit(do_not_specialize=["extrapolation_bits", "num_boxes", "height", "width", "depth",
                               "crop_h", "crop_w", "i_b", "i_h", "i_w", "i_d",
                               "o_n", "o_h", "o_w", "o_d"])
def _forward_kernel(image_ptr, boxes_ptr, index_ptr, out_ptr, extrapolation_bits,
                    num_boxes, height, width, depth, crop_h, crop_w,
                    i_b, i_h, i_w, i_d, o_n, o_h, o_w, o_d,
                    METHOD: tl.constexpr, FLOAT64: tl.constexpr, BLOCK_X: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    # One program per (box, crop row, block of crop columns, block of channels); the lanes
    # are a [BLOCK_X, BLOCK_D] tile of the crop row, channels along the fast axis. The row's
    # arithmetic is scalar, a column's is shared by its channels.
    row_id = tl.program_id(0).to(tl.int64)
    crop_h = i64(crop_h)
    crop_w = i64(crop_w)
    height = i64(height)
    width = i64(width)
    depth = i64(depth)
    box = row_id // crop_h
    crop_y = row_id % crop_h
    crop_x = (tl.program_id(1).to(tl.int64) * BLOCK_X
              + tl.arange(0, BLOCK_X).to(tl.int64))[:, None]
    channel = (tl.program_id(2).to(tl.int64) * BLOCK_D
               + tl.arange(0, BLOCK_D).to(tl.int64))[None, :]
    mask = (crop_x < crop_w) & (channel < depth)
    extrapolation = float_arg(extrapolation_bits, FLOAT64)
    F = extrapolation.dtype
    y1 = tl.load(boxes_ptr + box * 4)
    x1 = tl.load(boxes_ptr + box * 4 + 1)
    y2 = tl.load(boxes_ptr + box * 4 + 2)
    x2 = tl.load(boxes_ptr + box * 4 + 3)
    base = image_ptr + tl.load(index_ptr + box) * i_b + channel * i_d
    if METHOD == 2:
        first_row, window_h = _v2_window(y1, y2, height)
        first_col, window_w = _v2_window(x1, x2, width)
        top, bottom, y_weight = _v2_axis(first_row, window_h, height, crop_y, crop_h, F)
        left, right, x_weight = _v2_axis(first_col, window_w, width, crop_x, crop_w, F)
        y_comp = 1 - y_weight
        x_comp = 1 - x_weight
        top_left = tl.load(base + top * i_h + left * i_w, mask=mask, other=0).to(F)
        bottom_right = tl.load(base + bottom * i_h + right * i_w, mask=mask, other=0).to(F)
        top_right = tl.load(base + top * i_h + right * i_w, mask=mask, other=0).to(F)
        bottom_left = tl.load(base + bottom * i_h + left * i_w, mask=mask, other=0).to(F)
        # MindSpore's fixed term order: top-left, bottom-right, top-right, bottom-left.
        a = (top_left * y_comp) * x_comp
        bb = (bottom_right * y_weight) * x_weight
        c = (top_right * y_comp) * x_weight
        d = (bottom_left * y_weight) * x_comp
        value = ((a + bb) + c) + d
    else:
        y_start, y_step = _axis(y1, y2, height, crop_h)
        x_start, x_step = _axis(x1, x2, width, crop_w)
        inside_y, top, bottom, y_lerp = _taps(_sample(y_start, y_step, crop_y, crop_h), height,
                                              METHOD)
        inside_x, left, right, x_lerp = _taps(_sample(x_start, x_step, crop_x, crop_w), width,
                                              METHOD)
        # ``where``, not ``&``: the interpreter splats a scalar bool to int64.
        inside = tl.where(inside_y, inside_x, False)
        load_mask = mask & inside
        if METHOD == 1:
            value = tl.load(base + top * i_h + left * i_w, mask=load_mask, other=0).to(F)
        else:
            top_left = tl.load(base + top * i_h + left * i_w, mask=load_mask, other=0).to(F)
            top_right = tl.load(base + top * i_h + right * i_w, mask=load_mask, other=0).to(F)
            bottom_left = tl.load(base + bottom * i_h + left * i_w, mask=load_mask,
                                  other=0).to(F)
            bottom_right = tl.load(base + bottom * i_h + right * i_w, mask=load_mask,
                                   other=0).to(F)
            # TF's two-step lerp a + (b - a) * w, not a four-weight sum.
            top_value = top_left + (top_right - top_left) * x_lerp
            bottom_value = bottom_left + (bottom_right - bottom_left) * x_lerp
            value = top_value + (bottom_value - top_value) * y_lerp
        value = tl.where(inside, value, extrapolation)
    out = out_ptr + box * o_n + crop_y * o_h + crop_x * o_w + channel * o_d
    tl.store(out, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _taps(c, size, METHOD: tl.constexpr):
    """(inside, low pixel, high pixel, weight of the high pixel) of a bilinear or nearest
    sample coordinate: floor and ceil, or nearest's rounded pixel twice (its weight is unused:
    nearest adds g as is). A conjunction, so that NaN is outside and -0.0 inside; no index is
    formed from an outside coordinate (pixel 0 stands in).

    The pixels are clamped to ``size - 1`` in integer arithmetic: from ``size = 2**24 + 3`` on,
    ``float32(size - 1)`` can round up to ``size``, so the float test lets a coordinate through
    whose floor, ceil or rounding is ``size`` (one past the edge). It reads the last pixel
    instead; below 2**24 the clamp never fires."""
    F = c.dtype
    last = size - 1
    inside = (c >= 0) & (c <= last.to(F))
    safe = tl.where(inside, c, tl.full([], 0, F))
    if METHOD == 1:
        low = tl.minimum(_round_half_away(safe), last)
        high = low
        weight = tl.full(c.shape, 0, F)
    else:
        low_f = tl.floor(safe)
        low = tl.minimum(low_f.to(tl.int64), last)
        high = tl.minimum(tl.ceil(safe).to(tl.int64), last)
        weight = safe - low_f
    return inside, low, high, weight


@triton.jit
def _span_misses(first, last, low, high):
    """True when no sample between ``first`` and ``last`` (the end samples of a monotone axis,
    either order) can touch a pixel in ``[low, high]``: both end samples lie below ``low``
    (their ceil pixels do), or both above ``high``. Conservative: a NaN compares false, so
    such a box is never skipped here (its samples are outside anyway and skipped one by
    one). ``low``/``high`` round monotonically to F, so ``ceil < F(low)`` implies
    ``ceil < low``."""
    F = first.dtype
    low_f = low.to(F)
    high_f = high.to(F)
    below = (tl.ceil(first) < low_f) & (tl.ceil(last) < low_f)
    above = (tl.floor(first) > high_f) & (tl.floor(last) > high_f)
    return below | above


@triton.jit
def _v2_span(first, length, size, crop, F: tl.constexpr):
    """The lowest and the highest pixel that bilinear_v2 samples of one axis touch (both
    pixels of a sample are non-decreasing in the crop index)."""
    lowest, _, _ = _v2_axis(first, length, size, i64(0), crop, F)
    _, highest, _ = _v2_axis(first, length, size, crop - 1, crop, F)
    return lowest, highest


@triton.jit
def _holds(key, bound, RELATION: tl.constexpr):
    """``key`` stands in RELATION to ``bound`` (0: >, 1: >=, 2: <, 3: <=)."""
    if RELATION == 0:
        holds = key > bound
    elif RELATION == 1:
        holds = key >= bound
    elif RELATION == 2:
        holds = key < bound
    else:
        holds = key <= bound
    return holds


@triton.jit
def _sample_key(start, step, index, crop, first_w, length_w, size, METHOD: tl.constexpr,
                HIGH: tl.constexpr):
    """What ``_first_index`` bisects on, monotone in the crop index: bilinear and nearest, the
    sample coordinate in float64 (exact); bilinear_v2, its high (``HIGH``) or low pixel."""
    if METHOD == 2:
        low, high, _ = _v2_axis(first_w, length_w, size, index, crop, start.dtype)
        if HIGH:
            key = high
        else:
            key = low
    else:
        key = _sample(start, step, index, crop).to(tl.float64)
    return key


@triton.jit
def _first_index(start, step, crop, first_w, length_w, size, bound, METHOD: tl.constexpr,
                 HIGH: tl.constexpr, RELATION: tl.constexpr):
    """Per lane of ``bound``: the first crop index in ``[0, crop)`` whose key (``_sample_key``)
    stands in RELATION to the lane's bound; ``crop`` if none. Bisection, valid because the key
    is monotone in the index and RELATION false then true along it."""
    low = tl.full(bound.shape, 0, tl.int64)
    high = low + crop
    for _ in range(bit_length(crop)):
        active = low < high
        middle = (low + high) // 2
        key = _sample_key(start, step, middle, crop, first_w, length_w, size, METHOD, HIGH)
        holds = _holds(key, bound, RELATION)
        high = tl.where(active & holds, middle, high)
        low = tl.where(active & ~holds, middle + 1, low)
    return low


@triton.jit
def _touching(start, step, crop, first_w, length_w, size, pixel, METHOD: tl.constexpr):
    """``(first, count)`` per pixel of ``pixel`` (a row or column index per lane): the crop
    indices whose samples may touch the pixel, a contiguous range (the taps are monotone in
    the index). Exact for bilinear_v2; for bilinear and nearest the samples whose coordinate
    lies in ``(pixel - 1, pixel + 1)`` (above ``pixel - 1`` for the last pixel, which the
    clamp of ``_taps`` also reaches), a superset that the caller's tap test narrows."""
    if METHOD == 2:
        first = _first_index(start, step, crop, first_w, length_w, size, pixel, 2, True, 1)
        stop = _first_index(start, step, crop, first_w, length_w, size, pixel, 2, False, 0)
    else:
        lower = (pixel - 1).to(tl.float64)
        upper = tl.where(pixel >= size - 1, tl.full([], float("inf"), tl.float64),
                         (pixel + 1).to(tl.float64))
        if step >= 0:  # coordinates non-decreasing in the crop index
            first = _first_index(start, step, crop, first_w, length_w, size, lower, METHOD,
                                 False, 0)
            stop = _first_index(start, step, crop, first_w, length_w, size, upper, METHOD,
                                False, 1)
        else:
            first = _first_index(start, step, crop, first_w, length_w, size, upper, METHOD,
                                 False, 2)
            stop = _first_index(start, step, crop, first_w, length_w, size, lower, METHOD,
                                False, 3)
    return first, tl.maximum(stop - first, 0)


@triton.jit
def _lane_taps(start, step, crop, first_w, length_w, size, index, ok, METHOD: tl.constexpr):
    """``(inside, low pixel, high pixel, weight)`` of crop indices ``index`` (any method);
    lanes without ``ok`` are outside."""
    F = start.dtype
    if METHOD == 2:
        low, high, weight = _v2_axis(first_w, length_w, size, index, crop, F)
        inside = ok
    else:
        inside, low, high, weight = _taps(_sample(start, step, index, crop), size, METHOD)
        inside = inside & ok
    return inside, low, high, weight


@triton.jit(do_not_specialize=["num_boxes", "height", "width", "depth", "crop_h", "crop_w",
                               "g_n", "g_h", "g_w", "g_d"])
def _grad_image_kernel(grads_ptr, boxes_ptr, index_ptr, out_ptr,
                       num_boxes, height, width, depth, crop_h, crop_w,
                       g_n, g_h, g_w, g_d,
                       METHOD: tl.constexpr, BLOCK_D: tl.constexpr,
                       TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    # One program per (image, tile of TILE_H x TILE_W pixels, block of channels); a lane per
    # element of the tile, accumulating in registers. Each lane gathers the adds that land on
    # its pixel, in the CPU's order: boxes ascending, then the crop rows, then the crop
    # columns whose samples touch its row and column (contiguous ranges, found by bisection),
    # then the corners. No atomics, no read-modify-write of memory.
    crop_h = i64(crop_h)
    crop_w = i64(crop_w)
    height = i64(height)
    width = i64(width)
    depth = i64(depth)
    tiles_h = (height + TILE_H - 1) // TILE_H
    tiles_w = (width + TILE_W - 1) // TILE_W
    tile = tl.program_id(0).to(tl.int64)
    b = tile // (tiles_h * tiles_w)
    tile = tile % (tiles_h * tiles_w)
    row0 = (tile // tiles_w) * TILE_H
    col0 = (tile % tiles_w) * TILE_W
    row1 = tl.minimum(row0 + TILE_H, height) - 1
    col1 = tl.minimum(col0 + TILE_W, width) - 1
    row = row0 + tl.arange(0, TILE_H).to(tl.int64)  # [TILE_H]
    col = col0 + tl.arange(0, TILE_W).to(tl.int64)  # [TILE_W]
    channel = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    F = out_ptr.dtype.element_ty
    zero = tl.full([], 0, F)
    acc = tl.full([TILE_H, TILE_W, BLOCK_D], 0, F)
    channel_3d = channel[None, None, :]
    for box_i in range(num_boxes):
        box = i64(box_i)
        if tl.load(index_ptr + box) == b:
            y1 = tl.load(boxes_ptr + box * 4)
            x1 = tl.load(boxes_ptr + box * 4 + 1)
            y2 = tl.load(boxes_ptr + box * 4 + 2)
            x2 = tl.load(boxes_ptr + box * 4 + 3)
            # A cheap test on the box's end samples skips boxes that cannot reach the tile:
            # along each axis the samples are monotone in the crop index.
            if METHOD == 2:
                first_row, window_h = _v2_window(y1, y2, height)
                first_col, window_w = _v2_window(x1, x2, width)
                y_start = y1  # unused by bilinear_v2, but for its type
                y_step = y1
                x_start = x1
                x_step = x1
                top_most, bottom_most = _v2_span(first_row, window_h, height, crop_h, F)
                left_most, right_most = _v2_span(first_col, window_w, width, crop_w, F)
                misses = ((bottom_most < row0) | (top_most > row1)
                          | (right_most < col0) | (left_most > col1))
            else:
                first_row = i64(0)  # bilinear_v2's windows, unused here
                window_h = i64(0)
                first_col = i64(0)
                window_w = i64(0)
                y_start, y_step = _axis(y1, y2, height, crop_h)
                x_start, x_step = _axis(x1, x2, width, crop_w)
                misses = (_span_misses(_sample(y_start, y_step, i64(0), crop_h),
                                       _sample(y_start, y_step, crop_h - 1, crop_h), row0, row1)
                          | _span_misses(_sample(x_start, x_step, i64(0), crop_w),
                                         _sample(x_start, x_step, crop_w - 1, crop_w),
                                         col0, col1))
            if not misses:
                y_first, y_count = _touching(y_start, y_step, crop_h, first_row, window_h,
                                             height, row, METHOD)
                x_first, x_count = _touching(x_start, x_step, crop_w, first_col, window_w,
                                             width, col, METHOD)
                y_count = tl.where(row < height, y_count, 0)  # a partial tile's spare lanes
                x_count = tl.where(col < width, x_count, 0)
                for ty in range(largest(y_count)):
                    crop_y = y_first + ty
                    y_in, top, bottom, y_weight = _lane_taps(y_start, y_step, crop_h, first_row,
                                                             window_h, height, crop_y,
                                                             ty < y_count, METHOD)
                    hit_top = (y_in & (top == row))[:, None, None]
                    hit_bottom = (y_in & (bottom == row))[:, None, None]
                    y_weight = y_weight[:, None, None]
                    for tx in range(largest(x_count)):
                        crop_x = x_first + tx
                        x_in, left, right, x_weight = _lane_taps(x_start, x_step, crop_w,
                                                                 first_col, window_w, width,
                                                                 crop_x, tx < x_count, METHOD)
                        hit_left = (x_in & (left == col))[None, :, None]
                        hit_right = (x_in & (right == col))[None, :, None]
                        x_weight = x_weight[None, :, None]
                        touched = (hit_top | hit_bottom) & (hit_left | hit_right)
                        g = tl.load(grads_ptr + box * g_n + crop_y[:, None, None] * g_h
                                    + crop_x[None, :, None] * g_w + channel_3d * g_d,
                                    mask=touched & (channel_3d < depth), other=0).to(F)
                        # The CPU's corner order; a corner adds only on its own pixel, where
                        # corners coincide each still adds (an inf gradient makes NaN).
                        if METHOD == 1:
                            acc = acc + tl.where(hit_top & hit_left, g, zero)
                        elif METHOD == 2:
                            y_comp = 1 - y_weight
                            x_comp = 1 - x_weight
                            acc = acc + tl.where(hit_top & hit_left, (g * y_comp) * x_comp, zero)
                            acc = acc + tl.where(hit_bottom & hit_right,
                                                 (g * y_weight) * x_weight, zero)
                            acc = acc + tl.where(hit_top & hit_right, (g * y_comp) * x_weight,
                                                 zero)
                            acc = acc + tl.where(hit_bottom & hit_left, (g * y_weight) * x_comp,
                                                 zero)
                        else:
                            top_grad = g * (1 - y_weight)
                            bottom_grad = g * y_weight
                            x_comp = 1 - x_weight
                            acc = acc + tl.where(hit_top & hit_left, top_grad * x_comp, zero)
                            acc = acc + tl.where(hit_top & hit_right, top_grad * x_weight, zero)
                            acc = acc + tl.where(hit_bottom & hit_left, bottom_grad * x_comp,
                                                 zero)
                            acc = acc + tl.where(hit_bottom & hit_right, bottom_grad * x_weight,
                                                 zero)
    # out is [B, H, W, D] contiguous in F; every element of the tile is written once.
    out = (out_ptr + ((b * height + row[:, None, None]) * width + col[None, :, None]) * depth
           + channel_3d)
    inside = (row[:, None, None] < height) & (col[None, :, None] < width) & (channel_3d < depth)
    tl.store(out, acc, mask=inside)


@triton.jit
def _grad_boxes_axis(low, high, size, crop):
    """(start, step, ratio) of the box gradient's samples (docs/tensorflow.md#box-gradient):
    ``ratio = (size-1)/(crop-1)`` first, then ``step = (high-low)*ratio``, not the forward's
    order; the start and the crop-size-1 centre are the forward's."""
    F = low.dtype
    start, step = _axis(low, high, size, crop)
    ratio = tl.full([], 0, F)
    if crop > 1:
        ratio = div((size - 1).to(F), (crop - 1).to(F))
        step = (high - low) * ratio
    return start, step, ratio


@triton.jit
def _crop1_term(term, size):
    """A crop-size-1 addend ``(term * 0.5) * (size - 1)``, formed in float64 as TF does (exact
    there) and rounded once to F."""
    wide = (term.to(tl.float64) * 0.5) * (size - 1).to(tl.float64)
    return wide.to(term.dtype)


@triton.jit(do_not_specialize=["height", "width", "depth", "crop_h", "crop_w",
                               "g_n", "g_h", "g_w", "g_d", "i_b", "i_h", "i_w", "i_d"])
def _grad_boxes_kernel(grads_ptr, image_ptr, boxes_ptr, index_ptr, out_ptr,
                       height, width, depth, crop_h, crop_w,
                       g_n, g_h, g_w, g_d, i_b, i_h, i_w, i_d, BLOCK: tl.constexpr):
    # One program per box: its four sums are per-lane partial sums over (crop row, block of
    # crop column x depth), reduced once at the end in a fixed tree: deterministic.
    box = tl.program_id(0).to(tl.int64)
    crop_h = i64(crop_h)
    crop_w = i64(crop_w)
    height = i64(height)
    width = i64(width)
    depth = i64(depth)
    F = out_ptr.dtype.element_ty
    y1 = tl.load(boxes_ptr + box * 4)
    x1 = tl.load(boxes_ptr + box * 4 + 1)
    y2 = tl.load(boxes_ptr + box * 4 + 2)
    x2 = tl.load(boxes_ptr + box * 4 + 3)
    b = tl.load(index_ptr + box)
    y_start, y_step, height_ratio = _grad_boxes_axis(y1, y2, height, crop_h)
    x_start, x_step, width_ratio = _grad_boxes_axis(x1, x2, width, crop_w)
    zeros = tl.full([BLOCK], 0, F)
    d_y1 = zeros
    d_x1 = zeros
    d_y2 = zeros
    d_x2 = zeros
    lanes = tl.arange(0, BLOCK).to(tl.int64)
    for crop_y_i in range(crop_h):
        crop_y = i64(crop_y_i)
        y_ok, top, bottom, y_lerp = _taps(_sample(y_start, y_step, crop_y, crop_h), height, 0)
        if y_ok:
            y_comp = 1 - y_lerp
            # d in_y / d y2 and d in_y / d y1, the latter as (H-1) - y*r (TF's form).
            y2_weight = crop_y.to(F) * height_ratio
            y1_weight = (height - 1).to(F) - y2_weight
            for first in range(0, crop_w * depth, BLOCK):
                element = first + lanes
                mask = element < crop_w * depth
                crop_x = element // depth
                channel = element % depth
                if crop_w > 1:
                    in_x = x_start + crop_x.to(F) * x_step
                else:
                    in_x = tl.broadcast_to(x_start, [BLOCK])
                # Outside (or NaN) samples are skipped: they read pixel 0 under a false mask.
                inside_x, left, right, x_lerp = _taps(in_x, width, 0)
                inside = mask & inside_x
                x_comp = 1 - x_lerp
                x2_weight = crop_x.to(F) * width_ratio
                x1_weight = (width - 1).to(F) - x2_weight
                base = image_ptr + b * i_b + channel * i_d
                top_left = tl.load(base + top * i_h + left * i_w, mask=inside, other=0).to(F)
                top_right = tl.load(base + top * i_h + right * i_w, mask=inside, other=0).to(F)
                bottom_left = tl.load(base + bottom * i_h + left * i_w, mask=inside,
                                      other=0).to(F)
                bottom_right = tl.load(base + bottom * i_h + right * i_w, mask=inside,
                                       other=0).to(F)
                g = tl.load(grads_ptr + box * g_n + crop_y * g_h + crop_x * g_w + channel * g_d,
                            mask=inside, other=0).to(F)
                grad_in_y = (x_comp * (bottom_left - top_left)
                             + x_lerp * (bottom_right - top_right)) * g
                grad_in_x = (y_comp * (top_right - top_left)
                             + y_lerp * (bottom_right - bottom_left)) * g
                if crop_h > 1:
                    t_y1 = grad_in_y * y1_weight
                    t_y2 = grad_in_y * y2_weight
                else:
                    t_y1 = _crop1_term(grad_in_y, height)
                    t_y2 = t_y1
                if crop_w > 1:
                    t_x1 = grad_in_x * x1_weight
                    t_x2 = grad_in_x * x2_weight
                else:
                    t_x1 = _crop1_term(grad_in_x, width)
                    t_x2 = t_x1
                # A skipped sample adds nothing, whatever its weights (the CPU skips it).
                d_y1 = d_y1 + tl.where(inside, t_y1, zeros)
                d_y2 = d_y2 + tl.where(inside, t_y2, zeros)
                d_x1 = d_x1 + tl.where(inside, t_x1, zeros)
                d_x2 = d_x2 + tl.where(inside, t_x2, zeros)
    out = out_ptr + box * 4
    tl.store(out, tl.reduce(d_y1, 0, add))
    tl.store(out + 1, tl.reduce(d_x1, 0, add))
    tl.store(out + 2, tl.reduce(d_y2, 0, add))
    tl.store(out + 3, tl.reduce(d_x2, 0, add))






def _nhwc(tensor, data_format):
    """``tensor`` seen as ``[N, H, W, D]`` (a view: strides do the rest)."""
    return tensor if data_format == "NHWC" else tensor.permute(0, 2, 3, 1)


def _channel_block(depth, block):
    """Channels per program: ``block``, or the next power of two covering a smaller depth."""
    return min(block, triton.next_power_of_2(depth))


def forward(image, boxes, box_indices, crop_size, method, extrapolation_value, data_format,
            out_dtype):
    """Crops of ``out_dtype`` (float32 for integer images), laid out as ``data_format``."""
    view = _nhwc(image, data_format)
    _, height, width, depth = view.shape
    crop_h, crop_w = crop_size
    num_boxes = boxes.shape[0]
    shape = ((num_boxes, crop_h, crop_w, depth) if data_format == "NHWC"
             else (num_boxes, depth, crop_h, crop_w))
    # bfloat16: written in float32 and rounded by torch (nearest-even, as the CPU op).
    store = torch.float32 if out_dtype == torch.bfloat16 else out_dtype
    out = torch.empty(shape, dtype=store, device=image.device)
    if out.numel():
        F = compute_dtype(image.dtype)
        boxes_f = boxes.to(device=image.device, dtype=F).contiguous()
        indices = box_indices.to(device=image.device, dtype=torch.int64).contiguous()
        out_view = _nhwc(out, data_format)
        launch = dict(LAUNCH["forward"])
        block_d = _channel_block(depth, launch.pop("BLOCK_D"))
        block_x = max(launch.pop("LANES") // block_d, 1)
        grid = (num_boxes * crop_h, triton.cdiv(crop_w, block_x), triton.cdiv(depth, block_d))
        _forward_kernel[grid](view, boxes_f, indices, out, float_bits(extrapolation_value, F),
                              num_boxes, height, width, depth, crop_h, crop_w, *view.stride(),
                              *out_view.stride(), METHOD=_METHODS[method],
                              FLOAT64=F == torch.float64, BLOCK_X=block_x, BLOCK_D=block_d,
                              enable_fp_fusion=False, **launch)
    return out.to(out_dtype)


def _tile(depth_block, launch):
    """The image gradient's tile for a channel block: ``TILE_H x TILE_W`` of ``launch``, grown
    (width first) while the block is narrower than ``launch["BLOCK_D"]``, so that a program
    keeps about as many lanes for small depths (RGB) as for deep feature maps."""
    tile_h, tile_w = launch["TILE_H"], launch["TILE_W"]
    spare = launch["BLOCK_D"] // depth_block
    while spare > 1:
        if tile_w <= tile_h:
            tile_w *= 2
        else:
            tile_h *= 2
        spare //= 2
    return tile_h, tile_w


def grad_image(grads, boxes, box_indices, image_shape, method, data_format, dtype):
    """The image gradient, ``image_shape`` (``data_format`` order) of ``dtype``, contiguous."""
    view = _nhwc(grads, data_format)
    num_boxes, crop_h, crop_w, depth = view.shape
    shape = tuple(image_shape)
    batch, height, width = (shape[0], shape[1], shape[2]) if data_format == "NHWC" else (
        shape[0], shape[2], shape[3])
    F = compute_dtype(dtype)
    total = torch.empty((batch, height, width, depth), dtype=F, device=grads.device)
    if not num_boxes:
        total.zero_()
    elif total.numel():
        boxes_f = boxes.to(device=grads.device, dtype=F).contiguous()
        indices = box_indices.to(device=grads.device, dtype=torch.int64).contiguous()
        launch = dict(LAUNCH["grad_image"])
        block_d = _channel_block(depth, launch["BLOCK_D"])
        tile_h, tile_w = _tile(block_d, launch)
        tiles = batch * triton.cdiv(height, tile_h) * triton.cdiv(width, tile_w)
        _grad_image_kernel[(tiles, triton.cdiv(depth, block_d))](
            view, boxes_f, indices, total, num_boxes, height, width, depth, crop_h, crop_w,
            *view.stride(), METHOD=_METHODS[method], BLOCK_D=block_d, TILE_H=tile_h,
            TILE_W=tile_w, num_warps=launch["num_warps"], enable_fp_fusion=False)
    if data_format == "NCHW":
        total = total.permute(0, 3, 1, 2)
    return total.to(dtype).contiguous()


def grad_boxes(grads, image, boxes, box_indices, data_format, out_dtype):
    """``[N, 4]`` d/d[y1, x1, y2, x2] of ``out_dtype``: TF's bilinear box gradient for every
    method, computed in F of the image dtype (grads rounded to F, as the CPU does)."""
    grads_view = _nhwc(grads, data_format)
    view = _nhwc(image, data_format)
    num_boxes, crop_h, crop_w, depth = grads_view.shape
    F = compute_dtype(image.dtype)
    total = torch.zeros((num_boxes, 4), dtype=F, device=image.device)
    if num_boxes and depth:
        boxes_f = boxes.to(device=image.device, dtype=F).contiguous()
        indices = box_indices.to(device=image.device, dtype=torch.int64).contiguous()
        _grad_boxes_kernel[(num_boxes,)](grads_view, view, boxes_f, indices, total,
                                         view.shape[1], view.shape[2], depth, crop_h, crop_w,
                                         *grads_view.stride(), *view.stride(),
                                         enable_fp_fusion=False, **LAUNCH["grad_boxes"])
    return total.to(out_dtype)
