"""Numba CPU kernels of crop_and_resize: the forward and the two gradients.

The arithmetic follows docs/tensorflow.md and docs/mindspore.md operation by
operation: every value is rounded in the compute type ``F`` (``np.float32`` or ``np.float64``,
passed in as an argument), every integer and literal is wrapped in ``F(...)`` because Numba
promotes float32 combined with an int64 to float64, and nothing is compiled with ``fastmath`` so
LLVM can neither reassociate nor contract into FMAs. With ``F = np.float32`` the results are
bit-identical to TensorFlow 2.21 and MindSpore 2.10 (except on subnormals, which TensorFlow
flushes and roiops keeps, docs/decisions.md#flush-to-zero).

Layout and parallelism:

* Every array is indexed as a 4-D (or 2-D/1-D) array through its own strides, so transposed,
  Fortran-ordered and negative-stride views work unchanged; Numba compiles a separate
  specialization for contiguous inputs, where the innermost channel loop vectorizes.
* All crop rows of a box share their column samples, so ``_column_tables`` tabulates them
  once per box (pixel indices and weights, ``[N, crop_width]``) for every task and tile,
  instead of once per row: for a depth of 3 the coordinate arithmetic otherwise costs more
  than the interpolation.
* ``forward`` parallelizes over (box, band of crop rows): each task writes its own rows. For
  bilinear with small depths (``_MAX_BAND_DEPTH``) a task keeps the x-interpolated values of
  the last two pixel rows it used (TF's top/bottom values, which do not depend on whether a
  pixel row serves as top or bottom) and reuses them on the next crop row, so an upsampling
  crop interpolates each pixel row once and each output element costs one y-lerp; the
  operations per element are TF's, in TF's order.
* A bilinear forward into a large output (``_STREAM_MIN_BYTES``) with whole, aligned 16-byte
  chunks per pixel (depths past ``_MAX_BAND_DEPTH``) builds each pixel in a small buffer and
  writes it with streaming stores (``roiops._streaming``): the output lines are never read
  into cache first, which otherwise doubles the memory traffic of a write-bound forward.
* ``grad_image``'s common tile case has a depth-3 variant with the channel loop unrolled on
  row views (the same updates in the same order per element).
* ``grad_boxes`` parallelizes over boxes: each box owns its output row and its four
  accumulators, summed sequentially in (y, x, channel) order as the peers do.
* ``grad_image`` scatters, so several samples land on one pixel and the order of their ``+=``
  is observable in the rounding. The peers define it as the sequential order (box, crop row,
  crop column, corner). Threads here own disjoint tiles of the output (one batch image, a band
  of rows, a band of columns, all channels); each tile walks all boxes in that sequential order
  and applies only the updates that land inside it. Every pixel therefore sees exactly the
  sequential sequence of updates, whatever the number of threads or the tiling.

Sample coordinates that are NaN (finite boxes whose arithmetic overflows, e.g. ``y2 = 3e38``)
count as out of range: extrapolated in the forward, skipped in the gradients, never used as an
index. bilinear_v2 never extrapolates, so there a NaN window edge truncates to index 0.

Every pixel index that comes from a float coordinate is clamped to ``[0, size - 1]`` in integer
arithmetic (``_pixel``), once per row or per column table entry, never trusted from the float
inside test: in float32, ``size - 1`` rounds up to ``size`` or beyond for some sizes from
2**24 on, so an accepted coordinate can floor to a pixel past the edge.
"""
import numpy as np
from numba import njit

from roiops._numerics import float_to_half_bits, round_half_away, round_to_half
from roiops._streaming import STREAM_BYTES, store_fence, stream_chunk
from roiops._threads import run_tasks

BILINEAR = 0
NEAREST = 1
BILINEAR_V2 = 2

# bilinear_v2 truncates box edges times the image size to integers. Clamping to +-2**61 keeps
# the float-to-int conversion defined and the window size (a difference plus one) inside int64.
_WINDOW_EDGE_LIMIT = 2.0 ** 61

# grad_image tiles: at least this many in all (one image each, then split into bands of at
# least _MIN_BAND rows, then columns). Few tiles are faster: grads stream through memory in
# order and fewer samples straddle two tiles (those take the slower per-corner path in both).
# 2 keeps 2 threads busy even on one image; with more threads than max(images, 2) some idle
# (a measured trade-off: on a [2,64,64,256] case 4 tiles were 7% and 16 tiles 70% slower).
_TARGET_TILES = 2
_MIN_BAND = 8
# forward: depths up to this take the path that reuses x-interpolated pixel rows across crop
# rows (per-sample overhead dominates there); deeper images vectorize over the channels.
_MAX_BAND_DEPTH = 16
# forward: split crops into bands of rows until there are about this many tasks.
_TARGET_TASKS = 64
# forward: outputs of at least this many bytes are written with streaming stores. Beyond the
# cache the lines are evicted anyway, and a plain store would first read each one from memory
# (run alone, a [512,14,14,256] float32 forward went from about 1.25x to 0.9x the time of a
# fill); smaller outputs stay in cache for whatever reads them next.
_STREAM_MIN_BYTES = 16 << 20


# ---------------------------------------------------------------------------------------------
# Work splitting
# ---------------------------------------------------------------------------------------------

def _ceil_div(a, b):
    return (a + b - 1) // b


def _split(size, parts, min_part):
    """(part size, number of parts) cutting ``size`` into at most ``parts`` pieces."""
    parts = max(min(parts, size // min_part), 1)
    part_size = _ceil_div(size, parts)
    return part_size, _ceil_div(size, part_size)


# ---------------------------------------------------------------------------------------------
# Coordinate helpers
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _box_centre(low, high, size):
    # Crop size 1 samples the box centre. TF writes the 0.5 as a C double literal, so both
    # products are exact in double and only the final conversion rounds.
    return 0.5 * np.float64(low + high) * np.float64(size - 1)


@njit(cache=True, inline="always")
def _forward_axis(low, high, size, crop_size, F):
    """(start, step) of the forward's sample coordinates along one axis.

    The step forms ``(high - low) * (size - 1)`` before dividing by ``crop_size - 1``; the
    gradient w.r.t. the boxes uses a different order (``_grad_boxes_axis``).
    """
    if crop_size > 1:
        return low * F(size - 1), ((high - low) * F(size - 1)) / F(crop_size - 1)
    return F(_box_centre(low, high, size)), F(0)


@njit(cache=True, inline="always")
def _grad_boxes_axis(low, high, size, crop_size, ratio, F):
    """(start, step) of CropAndResizeGradBoxes: ``(high - low) * ((size - 1) / (crop - 1))``."""
    if crop_size > 1:
        return low * F(size - 1), (high - low) * ratio
    return F(_box_centre(low, high, size)), F(0)


@njit(cache=True, inline="always")
def _coordinate(start, step, index, crop_size, F):
    # For a crop size of 1 the centre is used as is: adding 0 * step could flip the sign of
    # a zero and so the sign of a zero output.
    if crop_size > 1:
        return start + F(index) * step
    return start


@njit(cache=True, inline="always")
def _inside(coordinate, size, F):
    # Written as a conjunction so that NaN is outside; -0.0 is inside.
    return coordinate >= F(0) and coordinate <= F(size - 1)


@njit(cache=True, inline="always")
def _pixel(index, size):
    """``index`` clamped to a real pixel, ``[0, size - 1]``.

    The inside test compares in ``F``, where ``F(size - 1)`` can round up to ``size`` (float32
    from 2**24 on: 16777219 becomes 16777220), so a coordinate it accepts can floor or ceil to
    ``size``. Such a sample reads, and its gradient writes, the nearest real pixel instead of
    the memory past the edge. For sizes below 2**24 the clamp never changes an index.
    """
    return _clamp(index, 0, size - 1)


@njit(cache=True, inline="always")
def _unclamped_sample(coordinate, nearest, F):
    """(low pixel, high pixel, weight of the high pixel) of a coordinate that is inside,
    before the clamp: bilinear takes floor and ceil, weight ``coordinate - floor``;
    ``nearest`` the roundf pixel twice, weight 0."""
    if nearest:
        pixel = np.int64(round_half_away(coordinate))
        return pixel, pixel, F(0)
    low = np.floor(coordinate)
    return np.int64(low), np.int64(np.ceil(coordinate)), coordinate - low


@njit(cache=True, inline="always")
def _axis_sample(coordinate, size, nearest, F):
    """``_unclamped_sample`` with both pixels clamped (``_pixel``); the weight is not."""
    low, high, weight = _unclamped_sample(coordinate, nearest, F)
    return _pixel(low, size), _pixel(high, size), weight


@njit(cache=True, inline="always")
def _window_edge(value, F):
    """C-style truncation of a bilinear_v2 window edge, made total: NaN -> 0, clamped."""
    if not (value == value):
        return np.int64(0)
    if value >= F(_WINDOW_EDGE_LIMIT):
        return np.int64(_WINDOW_EDGE_LIMIT)
    if value <= F(-_WINDOW_EDGE_LIMIT):
        return -np.int64(_WINDOW_EDGE_LIMIT)
    return np.int64(value)


@njit(cache=True, inline="always")
def _clamp(value, low, high):
    return min(max(value, low), high)


@njit(cache=True, inline="always")
def _v2_window(low, high, size, F):
    """bilinear_v2's integer window ``[trunc(low*size), trunc(high*size)]``: (first, length)."""
    first = _window_edge(low * F(size), F)
    last = _window_edge(high * F(size), F)
    length = last - first + 1
    if length < 1:  # a flipped window collapses to its first pixel
        length = 1
    return first, length


@njit(cache=True, inline="always")
def _v2_axis_sample(first, length, size, index, crop_size, F):
    """bilinear_v2 sample along one axis: (low pixel, high pixel, weight of the high pixel).

    Half-pixel centres with the ratio formed first; indices clamp to the window and then to
    the image, the weight is not clamped.
    """
    position = ((F(index) + F(0.5)) * (F(length) / F(crop_size))) - F(0.5)
    low = _clamp(np.int64(np.floor(position)), 0, length - 1)
    high = _clamp(np.int64(np.ceil(position)), 0, length - 1)
    weight = position - F(low)
    return _clamp(first + low, 0, size - 1), _clamp(first + high, 0, size - 1), weight


@njit(cache=True)
def _axis_table(start, step, size, crop_size, nearest, lows, highs, lerps, F):
    """Tabulate the samples of one axis (TF recipe): pixel indices and interpolation weights.

    Every crop row of a box shares its column samples, so kernels compute them once per box.
    ``lows[i]`` is the floor (or, for ``nearest``, the roundf) pixel, ``-1`` when the sample is
    out of range; ``highs[i]`` the ceil pixel; ``lerps[i]`` the weight of the ceil pixel.
    """
    for index in range(crop_size):
        coordinate = _coordinate(start, step, index, crop_size, F)
        if _inside(coordinate, size, F):
            lows[index], highs[index], lerps[index] = _unclamped_sample(coordinate, nearest, F)
        else:
            lows[index] = -1
            highs[index] = -1
            lerps[index] = F(0)
    # The pixels clamped as ``_pixel`` does, keeping -1 (a pixel clamped to -1 would be
    # skipped, never read). A pass of its own: inside the loop above, the clamp made the
    # whole forward of a [4,512,512,3] image to 224x224 crops about 5% slower.
    last = size - 1
    for index in range(crop_size):
        lows[index] = _clamp(lows[index], -1, last)
        highs[index] = _clamp(highs[index], -1, last)


@njit(cache=True)
def _v2_axis_table(first, length, size, crop_size, lows, highs, weights, F):
    """Tabulate the samples of one bilinear_v2 axis (always in range)."""
    for index in range(crop_size):
        lows[index], highs[index], weights[index] = _v2_axis_sample(first, length, size, index,
                                                                    crop_size, F)


@njit(cache=True)
def _tf_column_tables(boxes, nearest, width, crop_width, lefts, rights, weights, F):
    for box in range(boxes.shape[0]):
        x_start, x_step = _forward_axis(boxes[box, 1], boxes[box, 3], width, crop_width, F)
        _axis_table(x_start, x_step, width, crop_width, nearest, lefts[box], rights[box],
                    weights[box], F)


@njit(cache=True)
def _v2_column_tables(boxes, width, crop_width, lefts, rights, weights, F):
    for box in range(boxes.shape[0]):
        first_column, window_width = _v2_window(boxes[box, 1], boxes[box, 3], width, F)
        _v2_axis_table(first_column, window_width, width, crop_width, lefts[box], rights[box],
                       weights[box], F)


def _column_tables(boxes, method, width, crop_width, F):
    """(lefts, rights, weights) ``[N, crop_width]``: every box's column samples.

    All crop rows of a box (and every task or tile that handles some of them) share these,
    so they are tabulated once per box up front, on one thread: they are a small fraction of
    the work, and a parallel loop doubled the compile time of the first call.
    """
    num_boxes = boxes.shape[0]
    lefts = np.empty((num_boxes, crop_width), np.int64)
    rights = np.empty((num_boxes, crop_width), np.int64)
    weights = np.empty((num_boxes, crop_width), boxes.dtype)
    if method == BILINEAR_V2:
        _v2_column_tables(boxes, width, crop_width, lefts, rights, weights, F)
    else:
        _tf_column_tables(boxes, method == NEAREST, width, crop_width, lefts, rights, weights,
                          F)
    return lefts, rights, weights


# ---------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _fill_pixel(target, crop_x, value, out_half):
    if out_half:
        bits = float_to_half_bits(value)
        for channel in range(target.shape[1]):
            target[crop_x, channel] = bits
    else:
        for channel in range(target.shape[1]):
            target[crop_x, channel] = value


@njit(cache=True, inline="always")
def _lerp(a, b, weight):
    """TF's interpolation step, ``a + (b - a) * weight``: every bilinear path's one formula
    (the x-lerp of a pixel row, then the y-lerp of two of them)."""
    return a + (b - a) * weight


@njit(cache=True, inline="always")
def _lerp2d(image, batch_index, top, bottom, left, right, channel, y_lerp, x_lerp, F):
    # TF's two-step a + (b - a) * w form, not the four-weight sum: it differs in rounding and
    # in how inf pixels turn into NaN.
    top_left = F(image[batch_index, top, left, channel])
    top_right = F(image[batch_index, top, right, channel])
    bottom_left = F(image[batch_index, bottom, left, channel])
    bottom_right = F(image[batch_index, bottom, right, channel])
    return _lerp(_lerp(top_left, top_right, x_lerp), _lerp(bottom_left, bottom_right, x_lerp),
                 y_lerp)


@njit(cache=True)
def _bilinear_row(image, batch_index, top, bottom, y_lerp, lefts, rights, x_lerps,
                  target, extrapolation_value, out_half, F):
    """One crop row into ``target`` [cw, D], a row of the output."""
    depth = image.shape[3]
    for crop_x in range(target.shape[0]):
        left = lefts[crop_x]
        if left < 0:
            _fill_pixel(target, crop_x, extrapolation_value, out_half)
            continue
        right = rights[crop_x]
        x_lerp = x_lerps[crop_x]
        destination = target[crop_x]
        # Two loops rather than a branch inside one, so the float path stays vectorizable.
        if out_half:
            for channel in range(depth):
                value = _lerp2d(image, batch_index, top, bottom, left, right, channel,
                                y_lerp, x_lerp, F)
                destination[channel] = float_to_half_bits(value)
        else:
            # Unsigned indices: Numba emits no negative-index wraparound in the channel loop.
            b, t, bt = np.uint64(batch_index), np.uint64(top), np.uint64(bottom)
            le, ri = np.uint64(left), np.uint64(right)
            for channel in range(np.uint64(depth)):
                destination[channel] = _lerp2d(image, b, t, bt, le, ri, channel, y_lerp,
                                               x_lerp, F)


@njit(cache=True)
def _horizontal_row(image, batch_index, row, lefts, rights, x_lerps, target, F):
    """``target[x, c]``: image row ``row`` interpolated along x (TF's top/bottom value).

    The x-lerp of a pixel row does not depend on whether it serves as the top or the bottom
    row of a sample, so consecutive crop rows reuse it. Extrapolated columns get 0 (their
    outputs are overwritten).
    """
    depth = image.shape[3]
    source = image[batch_index, row]
    if depth == 3:
        for crop_x in range(target.shape[0]):
            left = lefts[crop_x]
            cx = np.uint64(crop_x)
            if left < 0:
                target[cx, np.uint64(0)] = F(0)
                target[cx, np.uint64(1)] = F(0)
                target[cx, np.uint64(2)] = F(0)
                continue
            ul = np.uint64(left)
            ur = np.uint64(rights[crop_x])
            x_lerp = x_lerps[crop_x]
            for k in range(3):
                channel = np.uint64(k)
                target[cx, channel] = _lerp(F(source[ul, channel]), F(source[ur, channel]),
                                            x_lerp)
        return
    for crop_x in range(target.shape[0]):
        left = lefts[crop_x]
        if left < 0:
            for channel in range(np.uint64(depth)):
                target[crop_x, channel] = F(0)
            continue
        right = rights[crop_x]
        x_lerp = x_lerps[crop_x]
        for channel in range(np.uint64(depth)):
            target[crop_x, channel] = _lerp(F(source[left, channel]), F(source[right, channel]),
                                            x_lerp)


@njit(cache=True)
def _bilinear_band(image, batch_index, y_start, y_step, crop_row_begin, crop_row_end,
                   lefts, rights, x_lerps, out, box, extrapolation_value, F):
    """Bilinear rows [begin, end) of one box into a float ``out``, x-lerped rows reused.

    Per element exactly ``_lerp2d``'s operations: the top and bottom values are the x-lerps
    of their pixel rows (held in two buffers keyed by pixel row), then the y-lerp.
    """
    height = image.shape[1]
    crop_height, crop_width, depth = out.shape[1], out.shape[2], out.shape[3]
    buffers = np.empty((2, crop_width, depth), out.dtype)
    row0 = np.int64(-1)
    row1 = np.int64(-1)
    for crop_y in range(crop_row_begin, crop_row_end):
        in_y = _coordinate(y_start, y_step, crop_y, crop_height, F)
        out_row = out[box, crop_y]
        if not _inside(in_y, height, F):
            for crop_x in range(crop_width):
                for channel in range(np.uint64(depth)):
                    out_row[crop_x, channel] = extrapolation_value
            continue
        top, bottom, y_lerp = _axis_sample(in_y, height, False, F)
        # Slot of the top row, then of the bottom row, (re)computing what is missing.
        if row0 == top:
            top_slot = 0
        elif row1 == top:
            top_slot = 1
        else:
            top_slot = 1 if row0 == bottom else 0
            _horizontal_row(image, batch_index, top, lefts, rights, x_lerps,
                            buffers[top_slot], F)
            if top_slot == 0:
                row0 = top
            else:
                row1 = top
        if bottom == top:
            bottom_slot = top_slot
        else:
            bottom_slot = 1 - top_slot
            if (row0 if bottom_slot == 0 else row1) != bottom:
                _horizontal_row(image, batch_index, bottom, lefts, rights, x_lerps,
                                buffers[bottom_slot], F)
                if bottom_slot == 0:
                    row0 = bottom
                else:
                    row1 = bottom
        top_values = buffers[top_slot]
        bottom_values = buffers[bottom_slot]
        if depth == 3:
            for crop_x in range(crop_width):
                cx = np.uint64(crop_x)
                for k in range(3):
                    channel = np.uint64(k)
                    out_row[cx, channel] = _lerp(top_values[cx, channel],
                                                 bottom_values[cx, channel], y_lerp)
        else:
            for crop_x in range(crop_width):
                for channel in range(np.uint64(depth)):
                    out_row[crop_x, channel] = _lerp(top_values[crop_x, channel],
                                                     bottom_values[crop_x, channel], y_lerp)
        for crop_x in range(crop_width):
            if lefts[crop_x] < 0:
                for channel in range(np.uint64(depth)):
                    out_row[crop_x, channel] = extrapolation_value


def _can_stream(out):
    """Whether ``out`` [N,ch,cw,D] takes streaming stores: large, every row contiguous, every
    pixel a whole number of aligned ``STREAM_BYTES`` chunks."""
    itemsize = out.itemsize
    pixel_bytes = out.shape[3] * itemsize
    strides = out.strides
    return (out.size * itemsize >= _STREAM_MIN_BYTES
            and strides[3] == itemsize and strides[2] == pixel_bytes
            and pixel_bytes % STREAM_BYTES == 0
            and strides[1] % STREAM_BYTES == 0 and strides[0] % STREAM_BYTES == 0
            and out.ctypes.data % STREAM_BYTES == 0)


@njit(cache=True)
def _bilinear_rows_streamed(image, batch_index, y_start, y_step, crop_row_begin, crop_row_end,
                            lefts, rights, x_lerps, out, box, extrapolation_value, F):
    """Bilinear rows [begin, end) of one box into an ``out`` that ``_can_stream``.

    Each pixel is built in a small buffer that stays in L1, then streamed to ``out`` in
    ``STREAM_BYTES`` chunks; each element is ``_lerp2d``. This loop is kept apart from
    ``_bilinear_row`` on purpose: routing the same streaming through the shared row
    functions measured 2-3x slower.
    """
    height, depth = image.shape[1], image.shape[3]
    crop_height, crop_width = out.shape[1], out.shape[2]
    lanes = STREAM_BYTES // out.itemsize
    pixel = np.empty(depth, out.dtype)
    b = np.uint64(batch_index)
    for crop_y in range(crop_row_begin, crop_row_end):
        in_y = _coordinate(y_start, y_step, crop_y, crop_height, F)
        row_inside = _inside(in_y, height, F)
        top = bottom = np.uint64(0)
        y_lerp = F(0)
        if row_inside:
            row_top, row_bottom, y_lerp = _axis_sample(in_y, height, False, F)
            top, bottom = np.uint64(row_top), np.uint64(row_bottom)
        target = out[box, crop_y]
        for crop_x in range(crop_width):
            left = lefts[crop_x]
            if not row_inside or left < 0:
                for channel in range(depth):
                    pixel[channel] = extrapolation_value
            else:
                le, ri = np.uint64(left), np.uint64(rights[crop_x])
                x_lerp = x_lerps[crop_x]
                for channel in range(np.uint64(depth)):
                    pixel[channel] = _lerp2d(image, b, top, bottom, le, ri, channel, y_lerp,
                                             x_lerp, F)
            first = crop_x * depth
            for chunk in range(0, depth, lanes):
                stream_chunk(target, first + chunk, pixel, chunk)
    store_fence()


@njit(cache=True)
def _nearest_row(image, batch_index, row, columns, target, extrapolation_value, out_half, F):
    depth = image.shape[3]
    for crop_x in range(target.shape[0]):
        column = columns[crop_x]
        if column < 0:
            _fill_pixel(target, crop_x, extrapolation_value, out_half)
            continue
        destination = target[crop_x]
        if out_half:
            for channel in range(depth):
                value = F(image[batch_index, row, column, channel])
                destination[channel] = float_to_half_bits(value)
        else:
            for channel in range(depth):
                destination[channel] = F(image[batch_index, row, column, channel])


@njit(cache=True, inline="always")
def _v2_sum(image, batch_index, top, bottom, left, right, channel,
            y_weight, y_complement, x_weight, x_complement, F):
    # MindSpore's fixed term order: top-left, bottom-right, top-right, bottom-left.
    a = (F(image[batch_index, top, left, channel]) * y_complement) * x_complement
    b = (F(image[batch_index, bottom, right, channel]) * y_weight) * x_weight
    c = (F(image[batch_index, top, right, channel]) * y_complement) * x_weight
    d = (F(image[batch_index, bottom, left, channel]) * y_weight) * x_complement
    return ((a + b) + c) + d


@njit(cache=True)
def _v2_row(image, batch_index, top, bottom, y_weight, lefts, rights, x_weights,
            target, out_half, F):
    depth = image.shape[3]
    y_complement = F(1) - y_weight
    for crop_x in range(target.shape[0]):
        left = lefts[crop_x]
        right = rights[crop_x]
        x_weight = x_weights[crop_x]
        x_complement = F(1) - x_weight
        destination = target[crop_x]
        if out_half:
            for channel in range(depth):
                value = _v2_sum(image, batch_index, top, bottom, left, right, channel,
                                y_weight, y_complement, x_weight, x_complement, F)
                destination[channel] = float_to_half_bits(value)
        else:
            for channel in range(depth):
                destination[channel] = _v2_sum(
                    image, batch_index, top, bottom, left, right, channel,
                    y_weight, y_complement, x_weight, x_complement, F)


@njit(cache=True, nogil=True)
def _forward_bands(image, boxes, box_indices, band_height, bands, all_lefts, all_rights,
                   all_x_lerps, out, extrapolation_value, F, task_begin, task_end):
    """Bilinear tasks (box, band of crop rows) of small depths into a float ``out``, reusing
    x-interpolated pixel rows (``_bilinear_band``)."""
    height, crop_height = image.shape[1], out.shape[1]
    for task in range(task_begin, task_end):
        box = task // bands
        crop_row_begin = (task - box * bands) * band_height
        y_start, y_step = _forward_axis(boxes[box, 0], boxes[box, 2], height, crop_height, F)
        _bilinear_band(image, box_indices[box], y_start, y_step, crop_row_begin,
                       min(crop_row_begin + band_height, crop_height), all_lefts[box],
                       all_rights[box], all_x_lerps[box], out, box, extrapolation_value, F)


@njit(cache=True, nogil=True)
def _forward_streamed(image, boxes, box_indices, band_height, bands, all_lefts, all_rights,
                      all_x_lerps, out, extrapolation_value, F, task_begin, task_end):
    """Bilinear tasks into an ``out`` that ``_can_stream``, in a parallel region of their own:
    inside one region with the other paths, the same loop ran 25% slower."""
    height, crop_height = image.shape[1], out.shape[1]
    for task in range(task_begin, task_end):
        box = task // bands
        crop_row_begin = (task - box * bands) * band_height
        y_start, y_step = _forward_axis(boxes[box, 0], boxes[box, 2], height, crop_height, F)
        _bilinear_rows_streamed(image, box_indices[box], y_start, y_step, crop_row_begin,
                                min(crop_row_begin + band_height, crop_height),
                                all_lefts[box], all_rights[box], all_x_lerps[box], out, box,
                                extrapolation_value, F)


@njit(cache=True, nogil=True)
def _forward_rows(image, boxes, box_indices, nearest, band_height, bands, all_lefts,
                  all_rights, all_x_lerps, out, extrapolation_value, out_half, F, task_begin,
                  task_end):
    """Bilinear or nearest tasks row by row: half outputs and the depths past
    ``_MAX_BAND_DEPTH`` that do not stream."""
    height, crop_height, crop_width = image.shape[1], out.shape[1], out.shape[2]
    for task in range(task_begin, task_end):
        box = task // bands
        crop_row_begin = (task - box * bands) * band_height
        batch_index = box_indices[box]
        lefts, rights, x_lerps = all_lefts[box], all_rights[box], all_x_lerps[box]
        y_start, y_step = _forward_axis(boxes[box, 0], boxes[box, 2], height, crop_height, F)
        for crop_y in range(crop_row_begin, min(crop_row_begin + band_height, crop_height)):
            in_y = _coordinate(y_start, y_step, crop_y, crop_height, F)
            target = out[box, crop_y]
            if not _inside(in_y, height, F):
                for crop_x in range(crop_width):
                    _fill_pixel(target, crop_x, extrapolation_value, out_half)
            else:
                top, bottom, y_lerp = _axis_sample(in_y, height, nearest, F)
                if nearest:
                    _nearest_row(image, batch_index, top, lefts, target, extrapolation_value,
                                 out_half, F)
                else:
                    _bilinear_row(image, batch_index, top, bottom, y_lerp, lefts, rights,
                                  x_lerps, target, extrapolation_value, out_half, F)


@njit(cache=True, nogil=True)
def _forward_v2(image, boxes, box_indices, band_height, bands, all_lefts, all_rights,
                all_x_weights, out, out_half, F, task_begin, task_end):
    """bilinear_v2 tasks (box, band of crop rows)."""
    height, crop_height = image.shape[1], out.shape[1]
    for task in range(task_begin, task_end):
        box = task // bands
        crop_row_begin = (task - box * bands) * band_height
        batch_index = box_indices[box]
        first_row, window_height = _v2_window(boxes[box, 0], boxes[box, 2], height, F)
        for crop_y in range(crop_row_begin, min(crop_row_begin + band_height, crop_height)):
            top, bottom, y_weight = _v2_axis_sample(first_row, window_height, height, crop_y,
                                                    crop_height, F)
            _v2_row(image, batch_index, top, bottom, y_weight, all_lefts[box],
                    all_rights[box], all_x_weights[box], out[box, crop_y], out_half, F)


def forward(image, boxes, box_indices, method, extrapolation_value, out, out_half, F):
    """Crop and resize ``image`` [B,H,W,D] into ``out`` [N,ch,cw,D] (NHWC axis order).

    ``method``: 0 bilinear, 1 nearest (TF = MindSpore), 2 MindSpore's bilinear_v2.
    ``out`` has dtype ``F``, or uint16 (float16 bits) when ``out_half`` is true, in which case
    each float32 result is rounded once to half.

    Each path is a kernel of its own, picked here: a first call compiles only the path it
    takes (one kernel holding all of them took three times as long to compile).
    """
    num_boxes, crop_height, crop_width = out.shape[0], out.shape[1], out.shape[2]
    if num_boxes == 0:
        return
    # Tasks are (box, band of crop rows): whole boxes when there are many, bands so that a
    # few large crops still spread over the threads.
    band_height, bands = _split(crop_height, _ceil_div(_TARGET_TASKS, num_boxes), 1)
    tables = _column_tables(boxes, method, image.shape[2], crop_width, F)
    num_tasks = num_boxes * bands
    tasks = (image, boxes, box_indices, band_height, bands, *tables)
    if method == BILINEAR_V2:
        run_tasks(_forward_v2, num_tasks, *tasks, out, out_half, F)
    elif method == BILINEAR and not out_half and image.shape[3] <= _MAX_BAND_DEPTH:
        run_tasks(_forward_bands, num_tasks, *tasks, out, extrapolation_value, F)
    elif method == BILINEAR and not out_half and _can_stream(out):
        run_tasks(_forward_streamed, num_tasks, *tasks, out, extrapolation_value, F)
    else:
        run_tasks(_forward_rows, num_tasks, image, boxes, box_indices, method == NEAREST,
                  band_height, bands, *tables, out, extrapolation_value, out_half, F)


# ---------------------------------------------------------------------------------------------
# Gradient w.r.t. the image
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _share(grad, y_weight, x_weight):
    """A corner's share of a sample's gradient, ``(g * y_weight) * x_weight``: every scatter
    path's one formula (TF forms the y product first)."""
    return (grad * y_weight) * x_weight


@njit(cache=True, inline="always")
def _scatter(out, batch_index, row, column, grads, box, crop_y, crop_x,
             y_weight, x_weight, half_accumulate):
    """``out[pixel] += (g * y_weight) * x_weight`` for every channel.

    The weight is formed in the compute type; the addition is in ``out``'s type (float64
    accumulation widens the weight exactly), or in half when ``half_accumulate``.
    """
    # Unsigned channel indices: Numba then emits no negative-index wraparound, which would
    # otherwise keep LLVM from vectorizing this loop (20x slower).
    channels = range(np.uint64(out.shape[3]))
    if half_accumulate:
        for channel in channels:
            addend = round_to_half(_share(grads[box, crop_y, crop_x, channel], y_weight,
                                          x_weight))
            out[batch_index, row, column, channel] = round_to_half(
                out[batch_index, row, column, channel] + addend)
    else:
        for channel in channels:
            out[batch_index, row, column, channel] = (
                out[batch_index, row, column, channel]
                + _share(grads[box, crop_y, crop_x, channel], y_weight, x_weight))


@njit(cache=True, inline="always")
def _scatter_corners(out, batch_index, rows, columns, y_weights, x_weights, owned,
                     grads, box, crop_y, crop_x, half_accumulate):
    """Apply one sample's four corner updates, in the given order, to every channel.

    Corner k adds ``(g * y_weights[k]) * x_weights[k]`` at ``(rows[k], columns[k])`` if the
    calling tile owns it. Fusing the corners into one channel loop matters for small depths
    (3x faster at depth 3); each element still receives them in corner order.
    """
    if half_accumulate or not (owned[0] and owned[1] and owned[2] and owned[3]):
        for corner in range(4):
            if owned[corner]:
                _scatter(out, batch_index, rows[corner], columns[corner], grads, box, crop_y,
                         crop_x, y_weights[corner], x_weights[corner], half_accumulate)
        return
    row0, row1, row2, row3 = rows
    column0, column1, column2, column3 = columns
    y_weight0, y_weight1, y_weight2, y_weight3 = y_weights
    x_weight0, x_weight1, x_weight2, x_weight3 = x_weights
    for channel in range(np.uint64(out.shape[3])):
        grad = grads[box, crop_y, crop_x, channel]
        out[batch_index, row0, column0, channel] = (
            out[batch_index, row0, column0, channel] + _share(grad, y_weight0, x_weight0))
        out[batch_index, row1, column1, channel] = (
            out[batch_index, row1, column1, channel] + _share(grad, y_weight1, x_weight1))
        out[batch_index, row2, column2, channel] = (
            out[batch_index, row2, column2, channel] + _share(grad, y_weight2, x_weight2))
        out[batch_index, row3, column3, channel] = (
            out[batch_index, row3, column3, channel] + _share(grad, y_weight3, x_weight3))


@njit(cache=True, inline="always")
def _owns(index, begin, end):
    return index >= begin and index < end


@njit(cache=True)
def _grad_image_box(grads, boxes, box, batch_index, method, out, half_accumulate,
                    row_begin, row_end, column_begin, column_end, lefts, rights, x_lerps, F):
    """Scatter one box's bilinear or nearest gradient into the tile [rows) x [columns)."""
    height, crop_height = out.shape[1], grads.shape[1]
    nearest = method == NEAREST
    y_start, y_step = _forward_axis(boxes[box, 0], boxes[box, 2], height, crop_height, F)
    for crop_y in range(crop_height):
        in_y = _coordinate(y_start, y_step, crop_y, crop_height, F)
        if not _inside(in_y, height, F):
            continue
        top, bottom, y_lerp = _axis_sample(in_y, height, nearest, F)
        owns_top = _owns(top, row_begin, row_end)
        owns_bottom = _owns(bottom, row_begin, row_end)
        if not (owns_top or owns_bottom):
            continue
        if nearest:
            _grad_image_row_nearest(grads, box, crop_y, out, batch_index, top, lefts,
                                    column_begin, column_end, half_accumulate, F)
        else:
            _grad_image_row(grads, box, crop_y, out, batch_index, top, bottom, y_lerp,
                            owns_top, owns_bottom, lefts, rights, x_lerps,
                            column_begin, column_end, half_accumulate, F)


@njit(cache=True)
def _grad_image_row_nearest(grads, box, crop_y, out, batch_index, row, columns,
                            column_begin, column_end, half_accumulate, F):
    one = F(1)
    for crop_x in range(grads.shape[2]):
        column = columns[crop_x]
        # Out-of-range samples hold -1, which no tile owns.
        if _owns(column, column_begin, column_end):
            # (g * 1) * 1 == g exactly, for every g.
            _scatter(out, batch_index, row, column, grads, box, crop_y, crop_x, one, one,
                     half_accumulate)


@njit(cache=True, inline="always")
def _scatter_channel3(grad_row, top_row, bottom_row, cx, left, right, channel,
                      y_lerp, y_complement, x_lerp, x_complement):
    grad = grad_row[cx, channel]
    top_row[left, channel] = top_row[left, channel] + _share(grad, y_complement, x_complement)
    top_row[right, channel] = top_row[right, channel] + _share(grad, y_complement, x_lerp)
    bottom_row[left, channel] = bottom_row[left, channel] + _share(grad, y_lerp, x_complement)
    bottom_row[right, channel] = bottom_row[right, channel] + _share(grad, y_lerp, x_lerp)


@njit(cache=True)
def _grad_image_row3(grad_row, top_row, bottom_row, y_lerp, y_complement, lefts, rights,
                     x_lerps, F):
    """The fast path of ``_grad_image_row`` for depth 3: row views, channels unrolled.

    Each element receives the same updates in the same order (the corners of one sample in
    order, samples in crop-column order).
    """
    for crop_x in range(grad_row.shape[0]):
        left = lefts[crop_x]
        if left < 0:
            continue
        ul = np.uint64(left)
        ur = np.uint64(rights[crop_x])
        cx = np.uint64(crop_x)
        x_lerp = x_lerps[crop_x]
        x_complement = F(1) - x_lerp
        _scatter_channel3(grad_row, top_row, bottom_row, cx, ul, ur, np.uint64(0),
                          y_lerp, y_complement, x_lerp, x_complement)
        _scatter_channel3(grad_row, top_row, bottom_row, cx, ul, ur, np.uint64(1),
                          y_lerp, y_complement, x_lerp, x_complement)
        _scatter_channel3(grad_row, top_row, bottom_row, cx, ul, ur, np.uint64(2),
                          y_lerp, y_complement, x_lerp, x_complement)


@njit(cache=True)
def _grad_image_row(grads, box, crop_y, out, batch_index, top, bottom, y_lerp,
                    owns_top, owns_bottom, lefts, rights, x_lerps,
                    column_begin, column_end, half_accumulate, F):
    y_complement = F(1) - y_lerp
    if (owns_top and owns_bottom and not half_accumulate and column_begin == 0
            and column_end == out.shape[2]):
        # The common case, kept small so that it compiles to a tight loop.
        if out.shape[3] == 3:
            _grad_image_row3(grads[box, crop_y], out[batch_index, top], out[batch_index, bottom],
                             y_lerp, y_complement, lefts, rights, x_lerps, F)
            return
        for crop_x in range(grads.shape[2]):
            left = lefts[crop_x]
            if left < 0:
                continue
            right = rights[crop_x]
            x_lerp = x_lerps[crop_x]
            x_complement = F(1) - x_lerp
            for channel in range(np.uint64(out.shape[3])):
                grad = grads[box, crop_y, crop_x, channel]
                out[batch_index, top, left, channel] = (
                    out[batch_index, top, left, channel] + _share(grad, y_complement,
                                                                  x_complement))
                out[batch_index, top, right, channel] = (
                    out[batch_index, top, right, channel] + _share(grad, y_complement, x_lerp))
                out[batch_index, bottom, left, channel] = (
                    out[batch_index, bottom, left, channel] + _share(grad, y_lerp, x_complement))
                out[batch_index, bottom, right, channel] = (
                    out[batch_index, bottom, right, channel] + _share(grad, y_lerp, x_lerp))
        return
    for crop_x in range(grads.shape[2]):
        left = lefts[crop_x]
        right = rights[crop_x]
        owns_left = _owns(left, column_begin, column_end)
        owns_right = _owns(right, column_begin, column_end)
        if not (owns_left or owns_right):
            continue  # also out-of-range samples, held as -1
        x_lerp = x_lerps[crop_x]
        x_complement = F(1) - x_lerp
        # All four updates are applied even when two corners coincide (a zero weight):
        # the peers do, and g = inf times a zero weight is a NaN that must propagate.
        _scatter_corners(out, batch_index, (top, top, bottom, bottom), (left, right, left, right),
                         (y_complement, y_complement, y_lerp, y_lerp),
                         (x_complement, x_lerp, x_complement, x_lerp),
                         (owns_top and owns_left, owns_top and owns_right,
                          owns_bottom and owns_left, owns_bottom and owns_right),
                         grads, box, crop_y, crop_x, half_accumulate)


@njit(cache=True)
def _grad_image_box_v2(grads, boxes, box, batch_index, out, half_accumulate,
                       row_begin, row_end, column_begin, column_end, lefts, rights, x_weights,
                       F):
    """Adjoint of bilinear_v2 for one box, restricted to the tile [rows) x [columns)."""
    height, crop_height = out.shape[1], grads.shape[1]
    first_row, window_height = _v2_window(boxes[box, 0], boxes[box, 2], height, F)
    for crop_y in range(crop_height):
        top, bottom, y_weight = _v2_axis_sample(first_row, window_height, height, crop_y,
                                                crop_height, F)
        owns_top = _owns(top, row_begin, row_end)
        owns_bottom = _owns(bottom, row_begin, row_end)
        if not (owns_top or owns_bottom):
            continue
        y_complement = F(1) - y_weight
        for crop_x in range(grads.shape[2]):
            left = lefts[crop_x]
            right = rights[crop_x]
            owns_left = _owns(left, column_begin, column_end)
            owns_right = _owns(right, column_begin, column_end)
            if not (owns_left or owns_right):
                continue
            x_weight = x_weights[crop_x]
            x_complement = F(1) - x_weight
            # The forward's term order: top-left, bottom-right, top-right, bottom-left.
            _scatter_corners(out, batch_index, (top, bottom, top, bottom),
                             (left, right, right, left),
                             (y_complement, y_weight, y_complement, y_weight),
                             (x_complement, x_weight, x_weight, x_complement),
                             (owns_top and owns_left, owns_bottom and owns_right,
                              owns_top and owns_right, owns_bottom and owns_left),
                             grads, box, crop_y, crop_x, half_accumulate)


@njit(cache=True, inline="always")
def _tile(tile, batch, height, width, band_height, row_bands, band_width):
    """(image, first row, row end, first column, column end) of ``grad_image``'s tile."""
    # The image index varies fastest so that each thread's share spans every image.
    row_band = (tile // batch) % row_bands
    column_band = tile // (batch * row_bands)
    row_begin = row_band * band_height
    column_begin = column_band * band_width
    return (tile % batch, row_begin, min(row_begin + band_height, height), column_begin,
            min(column_begin + band_width, width))


@njit(cache=True, nogil=True)
def _grad_image_tiles(grads, boxes, box_indices, method, out, half_accumulate, tiling,
                      all_lefts, all_rights, all_x_lerps, F, task_begin, task_end):
    """Every tile of ``tiling`` (see ``grad_image``): the bilinear or nearest boxes of its
    image, in box order."""
    batch, height, width = out.shape[0], out.shape[1], out.shape[2]
    band_height, row_bands, band_width = tiling
    for tile in range(task_begin, task_end):
        batch_index, row_begin, row_end, column_begin, column_end = _tile(
            tile, batch, height, width, band_height, row_bands, band_width)
        for box in range(grads.shape[0]):
            if box_indices[box] == batch_index:
                _grad_image_box(grads, boxes, box, batch_index, method, out, half_accumulate,
                                row_begin, row_end, column_begin, column_end,
                                all_lefts[box], all_rights[box], all_x_lerps[box], F)


@njit(cache=True, nogil=True)
def _grad_image_tiles_v2(grads, boxes, box_indices, out, half_accumulate, tiling,
                         all_lefts, all_rights, all_x_weights, F, task_begin, task_end):
    """``_grad_image_tiles`` for the adjoint of bilinear_v2."""
    batch, height, width = out.shape[0], out.shape[1], out.shape[2]
    band_height, row_bands, band_width = tiling
    for tile in range(task_begin, task_end):
        batch_index, row_begin, row_end, column_begin, column_end = _tile(
            tile, batch, height, width, band_height, row_bands, band_width)
        for box in range(grads.shape[0]):
            if box_indices[box] == batch_index:
                _grad_image_box_v2(grads, boxes, box, batch_index, out, half_accumulate,
                                   row_begin, row_end, column_begin, column_end,
                                   all_lefts[box], all_rights[box], all_x_weights[box], F)


def grad_image(grads, boxes, box_indices, method, out, half_accumulate, F):
    """CropAndResizeGradImage: add the gradient of ``grads`` [N,ch,cw,D] into ``out`` [B,H,W,D].

    ``out`` must be zero-initialised; its dtype (float32 or float64) is the accumulation type.
    ``half_accumulate`` (float32 ``out`` only) rounds every addend and every sum to half.
    ``method``: 0 bilinear, 1 nearest, 2 the adjoint of bilinear_v2.
    """
    batch, height, width = out.shape[0], out.shape[1], out.shape[2]
    if batch == 0 or grads.shape[0] == 0:
        return
    # Tiles are (image, band of rows, band of columns), never blocks of channels: a tile reads
    # only the grads of the samples landing in it, so grads (often far larger than the cache)
    # stream from memory once. Only the speed depends on the tiling, never the result; it
    # ignores the thread count.
    band_height, row_bands = _split(height, _ceil_div(_TARGET_TILES, batch), _MIN_BAND)
    band_width, column_bands = _split(width, _ceil_div(_TARGET_TILES, batch * row_bands),
                                      _MIN_BAND)
    tiling = (band_height, row_bands, band_width)
    num_tiles = batch * row_bands * column_bands
    tables = _column_tables(boxes, method, width, grads.shape[2], F)
    if method == BILINEAR_V2:
        run_tasks(_grad_image_tiles_v2, num_tiles, grads, boxes, box_indices, out,
                  half_accumulate, tiling, *tables, F)
    else:
        run_tasks(_grad_image_tiles, num_tiles, grads, boxes, box_indices, method, out,
                  half_accumulate, tiling, *tables, F)


# ---------------------------------------------------------------------------------------------
# Gradient w.r.t. the boxes
# ---------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _accumulate_crop1(accumulator, term, size, crop1_in_double, F):
    """A crop-size-1 box-gradient update: ``acc += (term * 0.5) * (size - 1)``.

    TF does it in double and rounds back (the product is exact); MindSpore in ``F``.
    """
    if crop1_in_double:
        return F(np.float64(accumulator) + (np.float64(term) * 0.5) * np.float64(size - 1))
    return accumulator + (term * F(0.5)) * F(size - 1)


def grad_boxes(grads, image, boxes, box_indices, crop1_in_double, out, F):
    """CropAndResizeGradBoxes: d/d[y1, x1, y2, x2] of the bilinear crop, into ``out`` [N,4].

    Uses the gradient's own coordinate recipe (docs/tensorflow.md#box-gradient), skips out-of-range
    samples and sums each accumulator sequentially in (y, x, channel) order; tasks are boxes.
    """
    run_tasks(_grad_boxes, grads.shape[0], grads, image, boxes, box_indices, crop1_in_double,
              out, F)


@njit(cache=True, nogil=True)
def _grad_boxes(grads, image, boxes, box_indices, crop1_in_double, out, F, box_begin, box_end):
    """``grad_boxes`` of the boxes ``[box_begin, box_end)``."""
    height, width, depth = image.shape[1], image.shape[2], image.shape[3]
    crop_height, crop_width = grads.shape[1], grads.shape[2]
    height_ratio = F(height - 1) / F(crop_height - 1) if crop_height > 1 else F(0)
    width_ratio = F(width - 1) / F(crop_width - 1) if crop_width > 1 else F(0)
    one = F(1)
    for box in range(box_begin, box_end):
        batch_index = box_indices[box]
        y1, x1, y2, x2 = boxes[box, 0], boxes[box, 1], boxes[box, 2], boxes[box, 3]
        y_start, y_step = _grad_boxes_axis(y1, y2, height, crop_height, height_ratio, F)
        x_start, x_step = _grad_boxes_axis(x1, x2, width, crop_width, width_ratio, F)
        lefts = np.empty(crop_width, np.int64)
        rights = np.empty(crop_width, np.int64)
        x_lerps = np.empty(crop_width, boxes.dtype)
        # np.bool_, not False: a Python literal would compile _axis_table once more.
        _axis_table(x_start, x_step, width, crop_width, np.bool_(False), lefts, rights,
                    x_lerps, F)
        d_y1 = F(0)
        d_x1 = F(0)
        d_y2 = F(0)
        d_x2 = F(0)
        for crop_y in range(crop_height):
            in_y = _coordinate(y_start, y_step, crop_y, crop_height, F)
            if not _inside(in_y, height, F):
                continue
            top, bottom, y_lerp = _axis_sample(in_y, height, False, F)
            y_complement = one - y_lerp
            # d in_y / d y2 and d in_y / d y1 (the latter as (H-1) - y*r, not (1 - y/(ch-1))*(H-1)).
            y2_weight = F(crop_y) * height_ratio
            y1_weight = F(height - 1) - y2_weight
            for crop_x in range(crop_width):
                left = lefts[crop_x]
                if left < 0:
                    continue
                right = rights[crop_x]
                x_lerp = x_lerps[crop_x]
                x_complement = one - x_lerp
                x2_weight = F(crop_x) * width_ratio
                x1_weight = F(width - 1) - x2_weight
                for channel in range(depth):
                    top_left = F(image[batch_index, top, left, channel])
                    top_right = F(image[batch_index, top, right, channel])
                    bottom_left = F(image[batch_index, bottom, left, channel])
                    bottom_right = F(image[batch_index, bottom, right, channel])
                    grad = grads[box, crop_y, crop_x, channel]
                    grad_in_y = (x_complement * (bottom_left - top_left)
                                 + x_lerp * (bottom_right - top_right)) * grad
                    grad_in_x = (y_complement * (top_right - top_left)
                                 + y_lerp * (bottom_right - bottom_left)) * grad
                    if crop_height > 1:
                        d_y1 = d_y1 + grad_in_y * y1_weight
                        d_y2 = d_y2 + grad_in_y * y2_weight
                    else:
                        d_y1 = _accumulate_crop1(d_y1, grad_in_y, height, crop1_in_double, F)
                        d_y2 = _accumulate_crop1(d_y2, grad_in_y, height, crop1_in_double, F)
                    if crop_width > 1:
                        d_x1 = d_x1 + grad_in_x * x1_weight
                        d_x2 = d_x2 + grad_in_x * x2_weight
                    else:
                        d_x1 = _accumulate_crop1(d_x1, grad_in_x, width, crop1_in_double, F)
                        d_x2 = _accumulate_crop1(d_x2, grad_in_x, width, crop1_in_double, F)
        out[box, 0] = d_y1
        out[box, 1] = d_x1
        out[box, 2] = d_y2
        out[box, 3] = d_x2
