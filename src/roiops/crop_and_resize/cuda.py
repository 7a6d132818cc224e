"""Triton kernels of crop_and_resize for CUDA tensors: forward and both gradients.

The forward and the image gradient reproduce the Numba CPU kernels
(``roiops.crop_and_resize.cpu``) operation for operation (semantics.md §2-§3,
semantics-tensorflow.md §1-§2), so float32 and float64 results are bit-identical to the CPU
ones (verified under the Triton interpreter, ``TRITON_INTERPRET=1``). The box gradient has
the CPU's per-sample arithmetic but sums in another (fixed) order: equal within rounding.

Compute type ``F``: float64 for float64 (images, or gradient results), float32 otherwise;
images of any dtype are widened to ``F`` on load (exact for float16/bfloat16 and integers up
to 2**24, as the CPU converts them). Boxes are cast to ``F`` on the host, as the CPU does.
bfloat16 results are produced in float32 and rounded to nearest-even by torch, as the CPU op
does (the interpreter's in-kernel float32 -> bfloat16 cast truncates).

Exactness rules (semantics.md §1): launches pass ``enable_fp_fusion=False`` (no contraction of
TF's ``a + (b - a) * w`` lerps into FMAs); float32 divisions are ``tl.div_rn``; the operation
order is the CPU kernel's. The crop-size-1 centre ``0.5 * (y1 + y2) * (H - 1)`` is formed in
float64 exactly as the CPU (and TF's C double literal) does and then rounded once to ``F``,
so it is exact here too, subnormals included (a float32-only evaluation would differ only
when the product underflows). Round-half-away-from-zero for nearest is ``floor(c)`` plus one
when ``c - floor(c) >= 0.5`` (the difference is exact), never ``floor(c + 0.5)``.

Design:

- **Forward**: one program per (box, crop row, block of ``crop column x depth`` elements);
  the row's coordinate arithmetic is scalar, the columns' is per lane. Layouts are read and
  written through strides (NHWC or NCHW, any view).
- **Image gradient** (deterministic, no atomics): one program per (image, spatial tile of
  ``TILE_H x TILE_W`` pixels, block of depth channels) owns those elements of the result, as
  the CPU's tiles do. It walks the boxes of its image in ascending order, then (crop row, crop
  column, corner) in the CPU's order, and applies only the corner updates whose pixel lies in
  its tile (an update's lane mask also requires owning its pixel), so every element receives
  exactly the sequential sequence of ``+=``, whatever the tiling. Lanes are distinct channels: no two lanes of a program touch
  one address, and a repeated corner (a zero-weight add, which must still happen: an inf
  gradient turns it into NaN) is a read-modify-write ordered by program order in its thread.
  Skips only save time, never decide ownership: a box whose end samples (samples are
  monotone in the crop index, flipped boxes decreasing) both lie on one side of the tile, a
  crop row with neither its top nor its bottom pixel row in the tile, a crop column with
  neither its left nor its right pixel column in it. A NaN end sample never skips a box
  (its samples are all outside and skipped one by one, as everywhere).
  *Cost*: ``B * ceil(H / TILE_H) * ceil(W / TILE_W) * ceil(D / BLOCK_D)`` programs (one
  tile size, 8 x 8, for every depth; ``BLOCK_D`` shrinks to the next power of two of small
  depths; one warp each), each scanning all box indices and, for boxes that reach its tile,
  their crop rows and (for rows that reach it) crop columns, doing only the work that lands
  in its tile.
- **Box gradient** (deterministic, no atomics): one program per box, lanes over blocks of
  ``crop column x depth`` elements, crop rows scalar; TF's own coordinate recipe (§3.2: ratio
  first). Each lane keeps partial sums of the four derivatives in F; one fixed-shape
  ``tl.reduce`` per derivative at the end. The order differs from the CPU's sequential
  (y, x, channel) sum, so results agree within F rounding, not bit for bit. A crop size of 1
  forms each addend in float64 and rounds it to F (the CPU rounds the running sum instead).

Verification without a GPU: the interpreter (NumPy: no fusion, exact division) checks the
operation order; a compile-only test builds every variant for sm_90 and checks that the PTX
has no ``fma`` and no approximate division. Running on a device, and speed, need a GPU.
"""
import torch
import triton
import triton.language as tl

# The kernels call only Triton builtins (``tl.full``, not the ``@jit`` helpers of triton's
# standard library such as ``tl.zeros``): the interpreter tests load these modules with
# TRITON_INTERPRET=1 after triton itself was imported without it, and a library ``@jit``
# helper decorated then cannot run under the interpreter.

__all__ = ["forward", "grad_image", "grad_boxes"]

BILINEAR, NEAREST, BILINEAR_V2 = 0, 1, 2
_METHODS = {"bilinear": BILINEAR, "nearest": NEAREST, "bilinear_v2": BILINEAR_V2}
# Launch shapes per kernel: lanes per program (BLOCK: crop column x depth elements; BLOCK_D:
# channels, at most: a power of two covering the depth when that is smaller, e.g. 4 for
# RGB), the image gradient's tile (each program owns TILE_H x TILE_W pixels of one image) and
# warps per program. Only speed depends on them (the tests vary them);
# benchmarks/bench_cuda.py --sweep times the alternatives.
LAUNCH = {
    "forward": {"BLOCK": 128, "num_warps": 4},
    "grad_image": {"BLOCK_D": 32, "TILE_H": 8, "TILE_W": 8, "num_warps": 1},
    "grad_boxes": {"BLOCK": 128, "num_warps": 4},
}


@triton.jit
def _div(x, y):
    """IEEE division in the operands' type (``div_rn`` for float32; float64 ``/`` is exact)."""
    if x.dtype == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def _i64(i):
    """A loop index or int argument as an int64 tensor (the interpreter hands out ints)."""
    return i + tl.full([], 0, tl.int64)


@triton.jit
def _axis(low, high, size, crop):
    """(start, step) of the forward's samples: ``low*(size-1)`` and
    ``((high-low)*(size-1))/(crop-1)``; for a crop of 1 the centre, formed in float64."""
    F = low.dtype
    size_m1 = (size - 1).to(F)
    if crop > 1:
        start = low * size_m1
        step = _div((high - low) * size_m1, (crop - 1).to(F))
    else:
        centre = 0.5 * (low + high).to(tl.float64) * (size - 1).to(tl.float64)
        start = centre.to(F)
        step = tl.full([], 0, F)
    return start, step


@triton.jit
def _sample(start, step, index, crop):
    """The forward's sample coordinate ``start + index*step``; the centre itself for a crop
    of 1 (adding ``0 * step`` could flip the sign of a zero)."""
    coordinate = start
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
    ratio = _div(length.to(F), crop.to(F))
    position = (index.to(F) + 0.5) * ratio - 0.5
    low = tl.minimum(tl.maximum(tl.floor(position).to(tl.int64), 0), length - 1)
    high = tl.minimum(tl.maximum(tl.ceil(position).to(tl.int64), 0), length - 1)
    weight = position - low.to(F)
    low = tl.minimum(tl.maximum(first + low, 0), size - 1)
    high = tl.minimum(tl.maximum(first + high, 0), size - 1)
    return low, high, weight


@triton.jit(do_not_specialize=["num_boxes", "height", "width", "depth", "crop_h", "crop_w",
                               "i_b", "i_h", "i_w", "i_d", "o_n", "o_h", "o_w", "o_d"])
def _forward_kernel(image_ptr, boxes_ptr, index_ptr, extrapolation_ptr, out_ptr,
                    num_boxes, height, width, depth, crop_h, crop_w,
                    i_b, i_h, i_w, i_d, o_n, o_h, o_w, o_d,
                    METHOD: tl.constexpr, BLOCK: tl.constexpr):
    row_id = tl.program_id(0).to(tl.int64)
    crop_h = _i64(crop_h)
    crop_w = _i64(crop_w)
    height = _i64(height)
    width = _i64(width)
    depth = _i64(depth)
    box = row_id // crop_h
    crop_y = row_id % crop_h
    element = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = element < crop_w * depth
    crop_x = element // depth
    channel = element % depth
    extrapolation = tl.load(extrapolation_ptr)
    F = extrapolation.dtype
    y1 = tl.load(boxes_ptr + box * 4)
    x1 = tl.load(boxes_ptr + box * 4 + 1)
    y2 = tl.load(boxes_ptr + box * 4 + 2)
    x2 = tl.load(boxes_ptr + box * 4 + 3)
    b = tl.load(index_ptr + box)
    base = image_ptr + b * i_b + channel * i_d
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
        in_y = _sample(y_start, y_step, crop_y, crop_h)
        if crop_w > 1:
            in_x = x_start + crop_x.to(F) * x_step
        else:
            in_x = tl.broadcast_to(x_start, [BLOCK])
        # Scalars broadcast to the lanes (not "+ zeros": that would turn -0.0 into +0.0).
        inside_y, top, bottom, y_lerp = _taps(tl.broadcast_to(in_y, [BLOCK]), height, METHOD)
        inside_x, left, right, x_lerp = _taps(in_x, width, METHOD)
        inside = inside_y & inside_x
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
        value = tl.where(inside, value, tl.broadcast_to(extrapolation, [BLOCK]))
    out = out_ptr + box * o_n + crop_y * o_h + crop_x * o_w + channel * o_d
    tl.store(out, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _add(p, value, mask):
    tl.store(p, tl.load(p, mask=mask) + value, mask=mask)


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
        weight = tl.full([], 0, F)
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
    lowest, _, _ = _v2_axis(first, length, size, _i64(0), crop, F)
    _, highest, _ = _v2_axis(first, length, size, crop - 1, crop, F)
    return lowest, highest


@triton.jit
def _owns(index, low, high):
    return (index >= low) & (index <= high)


@triton.jit
def _scatter_sample(image, width, depth, mask, g, top, bottom, left, right, y_weight,
                    x_weight, owns_top, owns_bottom, owns_left, owns_right,
                    METHOD: tl.constexpr):
    """One sample's corner updates, in the CPU's corner order, each only where this program
    owns the pixel. All four happen also where corners coincide (a zero-weight add: an inf
    gradient turns it into NaN); lanes are distinct channels, so a repeated corner is a
    read-modify-write ordered by program order in its thread."""
    # ``where``, not ``mask & owned``: the interpreter splats a bool scalar to int64 lanes,
    # which it then refuses as a mask.
    top_left = tl.where(owns_top & owns_left, mask, False)
    if METHOD == 1:
        # (g * 1) * 1 == g exactly.
        _add(image + (top * width + left) * depth, g, top_left)
    else:
        top_right = tl.where(owns_top & owns_right, mask, False)
        bottom_left = tl.where(owns_bottom & owns_left, mask, False)
        bottom_right = tl.where(owns_bottom & owns_right, mask, False)
        if METHOD == 2:
            y_comp = 1 - y_weight
            x_comp = 1 - x_weight
            # The forward's term order: TL, BR, TR, BL.
            _add(image + (top * width + left) * depth, (g * y_comp) * x_comp, top_left)
            _add(image + (bottom * width + right) * depth, (g * y_weight) * x_weight,
                 bottom_right)
            _add(image + (top * width + right) * depth, (g * y_comp) * x_weight, top_right)
            _add(image + (bottom * width + left) * depth, (g * y_weight) * x_comp,
                 bottom_left)
        else:
            x_comp = 1 - x_weight
            y_comp = 1 - y_weight
            top_grad = g * y_comp
            bottom_grad = g * y_weight
            _add(image + (top * width + left) * depth, top_grad * x_comp, top_left)
            _add(image + (top * width + right) * depth, top_grad * x_weight, top_right)
            _add(image + (bottom * width + left) * depth, bottom_grad * x_comp, bottom_left)
            _add(image + (bottom * width + right) * depth, bottom_grad * x_weight,
                 bottom_right)


@triton.jit(do_not_specialize=["num_boxes", "height", "width", "depth", "crop_h", "crop_w",
                               "g_n", "g_h", "g_w", "g_d"])
def _grad_image_kernel(grads_ptr, boxes_ptr, index_ptr, out_ptr,
                       num_boxes, height, width, depth, crop_h, crop_w,
                       g_n, g_h, g_w, g_d,
                       METHOD: tl.constexpr, BLOCK_D: tl.constexpr,
                       TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    # One program owns one tile of image b (rows [row0, row1], columns [col0, col1]) for one
    # block of channels: it alone writes those elements. It walks the boxes, crop rows, crop
    # columns and corners in the CPU's order and applies only the updates it owns, so each
    # element receives the sequential sequence of += (whatever the tiling).
    crop_h = _i64(crop_h)
    crop_w = _i64(crop_w)
    height = _i64(height)
    width = _i64(width)
    depth = _i64(depth)
    tiles_h = (height + TILE_H - 1) // TILE_H
    tiles_w = (width + TILE_W - 1) // TILE_W
    tile = tl.program_id(0).to(tl.int64)
    b = tile // (tiles_h * tiles_w)
    tile = tile % (tiles_h * tiles_w)
    row0 = (tile // tiles_w) * TILE_H
    col0 = (tile % tiles_w) * TILE_W
    row1 = tl.minimum(row0 + TILE_H, height) - 1
    col1 = tl.minimum(col0 + TILE_W, width) - 1
    channel = tl.program_id(1).to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D).to(tl.int64)
    mask = channel < depth
    F = out_ptr.dtype.element_ty
    zero = _i64(0)
    # out is [B, H, W, D] contiguous in F.
    image = out_ptr + b * height * width * depth + channel
    for box_i in range(num_boxes):
        box = _i64(box_i)
        if tl.load(index_ptr + box) == b:
            y1 = tl.load(boxes_ptr + box * 4)
            x1 = tl.load(boxes_ptr + box * 4 + 1)
            y2 = tl.load(boxes_ptr + box * 4 + 2)
            x2 = tl.load(boxes_ptr + box * 4 + 3)
            # A cheap test on the box's end samples skips boxes that cannot reach the tile:
            # along each axis the samples are monotone in the crop index (non-decreasing, or
            # non-increasing for a flipped box), so they lie between the first and the last.
            if METHOD == 2:
                first_row, window_h = _v2_window(y1, y2, height)
                first_col, window_w = _v2_window(x1, x2, width)
                top_most, bottom_most = _v2_span(first_row, window_h, height, crop_h, F)
                left_most, right_most = _v2_span(first_col, window_w, width, crop_w, F)
                misses = ((bottom_most < row0) | (top_most > row1)
                          | (right_most < col0) | (left_most > col1))
            else:
                y_start, y_step = _axis(y1, y2, height, crop_h)
                x_start, x_step = _axis(x1, x2, width, crop_w)
                misses = (_span_misses(_sample(y_start, y_step, zero, crop_h),
                                       _sample(y_start, y_step, crop_h - 1, crop_h), row0, row1)
                          | _span_misses(_sample(x_start, x_step, zero, crop_w),
                                         _sample(x_start, x_step, crop_w - 1, crop_w),
                                         col0, col1))
            if not misses:
                for crop_y_i in range(crop_h):
                    crop_y = _i64(crop_y_i)
                    if METHOD == 2:
                        top, bottom, y_weight = _v2_axis(first_row, window_h, height, crop_y,
                                                         crop_h, F)
                        y_ok = True
                    else:
                        y_ok, top, bottom, y_weight = _taps(
                            _sample(y_start, y_step, crop_y, crop_h), height, METHOD)
                    if y_ok:
                        owns_top = _owns(top, row0, row1)
                        owns_bottom = _owns(bottom, row0, row1)
                        if owns_top | owns_bottom:
                            for crop_x_i in range(crop_w):
                                crop_x = _i64(crop_x_i)
                                if METHOD == 2:
                                    left, right, x_weight = _v2_axis(first_col, window_w, width,
                                                                     crop_x, crop_w, F)
                                    x_ok = True
                                else:
                                    x_ok, left, right, x_weight = _taps(
                                        _sample(x_start, x_step, crop_x, crop_w), width, METHOD)
                                if x_ok:
                                    owns_left = _owns(left, col0, col1)
                                    owns_right = _owns(right, col0, col1)
                                    if owns_left | owns_right:
                                        g = tl.load(grads_ptr + box * g_n + crop_y * g_h
                                                    + crop_x * g_w + channel * g_d, mask=mask,
                                                    other=0).to(F)
                                        _scatter_sample(image, width, depth, mask, g, top,
                                                        bottom, left, right, y_weight, x_weight,
                                                        owns_top, owns_bottom, owns_left,
                                                        owns_right, METHOD)


@triton.jit
def _add_pair(a, b):
    return a + b


@triton.jit
def _grad_boxes_axis(low, high, size, crop):
    """(start, step, ratio) of the box gradient's samples (semantics.md §3.2): ``ratio =
    (size-1)/(crop-1)`` first, then ``step = (high-low)*ratio``, not the forward's order; the
    start and the crop-size-1 centre are the forward's."""
    F = low.dtype
    start, step = _axis(low, high, size, crop)
    ratio = tl.full([], 0, F)
    if crop > 1:
        ratio = _div((size - 1).to(F), (crop - 1).to(F))
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
    crop_h = _i64(crop_h)
    crop_w = _i64(crop_w)
    height = _i64(height)
    width = _i64(width)
    depth = _i64(depth)
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
        crop_y = _i64(crop_y_i)
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
    tl.store(out, tl.reduce(d_y1, 0, _add_pair))
    tl.store(out + 1, tl.reduce(d_x1, 0, _add_pair))
    tl.store(out + 2, tl.reduce(d_y2, 0, _add_pair))
    tl.store(out + 3, tl.reduce(d_x2, 0, _add_pair))


def compute_dtype(dtype):
    """F: float64 for float64, float32 otherwise (API.md §2)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _nhwc(tensor, data_format):
    """``tensor`` seen as ``[N, H, W, D]`` (a view: strides do the rest)."""
    return tensor if data_format == "NHWC" else tensor.permute(0, 2, 3, 1)


def forward(image, boxes, box_indices, crop_size, method, extrapolation_value, data_format,
            out_dtype):
    """Crops of ``out_dtype`` (float32 for integer images), laid out as ``data_format``."""
    view = _nhwc(image, data_format)
    batch, height, width, depth = view.shape
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
        extrapolation = torch.tensor([extrapolation_value], dtype=F, device=image.device)
        out_view = _nhwc(out, data_format)
        launch = LAUNCH["forward"]
        grid = (num_boxes * crop_h, triton.cdiv(crop_w * depth, launch["BLOCK"]))
        _forward_kernel[grid](view, boxes_f, indices, extrapolation, out, num_boxes, height,
                              width, depth, crop_h, crop_w, *view.stride(), *out_view.stride(),
                              METHOD=_METHODS[method], enable_fp_fusion=False, **launch)
    return out.to(out_dtype)


def grad_image(grads, boxes, box_indices, image_shape, method, data_format, dtype):
    """The image gradient, ``image_shape`` (``data_format`` order) of ``dtype``, contiguous."""
    view = _nhwc(grads, data_format)
    num_boxes, crop_h, crop_w, depth = view.shape
    shape = tuple(image_shape)
    batch, height, width = (shape[0], shape[1], shape[2]) if data_format == "NHWC" else (
        shape[0], shape[2], shape[3])
    F = compute_dtype(dtype)
    total = torch.zeros((batch, height, width, depth), dtype=F, device=grads.device)
    if num_boxes and total.numel():
        boxes_f = boxes.to(device=grads.device, dtype=F).contiguous()
        indices = box_indices.to(device=grads.device, dtype=torch.int64).contiguous()
        launch = dict(LAUNCH["grad_image"])
        launch["BLOCK_D"] = min(launch["BLOCK_D"], triton.next_power_of_2(depth))
        # Tiles of each image, image-major: neighbouring programs share the same boxes' grads.
        tiles = batch * triton.cdiv(height, launch["TILE_H"]) * triton.cdiv(width,
                                                                            launch["TILE_W"])
        grid = (tiles, triton.cdiv(depth, launch["BLOCK_D"]))
        _grad_image_kernel[grid](view, boxes_f, indices, total, num_boxes, height, width,
                                 depth, crop_h, crop_w, *view.stride(),
                                 METHOD=_METHODS[method], enable_fp_fusion=False, **launch)
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
