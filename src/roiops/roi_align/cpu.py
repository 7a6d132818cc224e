"""Numba CPU kernels of roi_align: forward, gradient w.r.t. the input, gradient w.r.t. the boxes.

One kernel per direction serves both conventions (semantics.md §4): ``mindspore`` switches the
handful of geometry rules (edges, minimum size, floor or ceil adaptive grid, count), and the
sample arithmetic is shared. Every operation is done in the compute type ``F`` in the peers'
order, without FMA or reassociation, so float32 and float64 results are bit-identical to
torchvision's CPU kernel and MindSpore's ROIAlign. ``half_arithmetic`` rounds every single
operation to binary16, which is how both peers compute float16.

Design, in two phases:

1. **Plan** (``_plan``, parallel over rois). A sample's y coordinate depends only on
   ``(roi, ph, iy)`` and its x only on ``(roi, pw, ix)``, so each axis gets a small table of its
   *valid* samples (coordinate inside ``[-1, size]``): the two neighbouring rows (or columns),
   their interpolation weights, and what the box gradient needs. Coordinates are monotonic in
   the sample index, so the valid samples of one bin are a contiguous run found by bisection: an
   adaptive grid of a huge box costs the samples that land on the map, not the whole grid, and
   invalid samples are never read (API.md §4.10; skipping them is exact, since an invalid
   sample adds a signed zero to an accumulator that can never be -0).
2. **Apply**, reusing the tables across channels. The forward and the box gradient parallelize
   over (roi, block of channels), each output element written by one thread. The input gradient
   scatters, so it parallelizes over what it writes, (image, block of channels), and each task
   walks the rois in ascending order: every element receives its adds in torchvision's
   sequential order (roi, ph, pw, iy, ix, corner 1..4) whatever the thread count.

``half`` is a compile-time constant inside the hot loops: each apply body is inlined twice, once
with ``True`` and once with ``False``, so the float32 path carries no rounding calls.
"""
import numpy as np
from numba import njit, prange

from .._numerics import float_to_half_bits, round_to_half

# Channels per parallel task: enough to amortize the per-task setup, small enough that a
# handful of rois still spreads over every core.
_CHANNEL_BLOCK = 16
# Smallest channel block of the channels-last paths (split only to feed idle threads).
_VECTOR_BLOCK = 64
# The channels-last copy is made once the taps exceed this many times the map elements.
_CHANNELS_LAST_MIN_RATIO = 4
# Parallel tasks wanted at least (a thread count cannot be read in cached code).
_MIN_TASKS = 16
# Adaptive grid sizes saturate here (an int32, as the peers' grids): a huge finite box must
# not overflow the sample count.
_MAX_GRID = 2147483647.0


@njit(cache=True)
def _h(value, half):
    """``value`` rounded to binary16 when computing in half, else unchanged (one peer op)."""
    if half:
        return round_to_half(value)
    return value


@njit(cache=True)
def _grid_size(value):
    """A float grid size (already floored or ceiled) as an int, saturating; NaN gives 0."""
    if not value == value:
        return 0
    if value > _MAX_GRID:
        return 2147483647
    if value < -_MAX_GRID:
        return -2147483647
    return int(value)


@njit(cache=True)
def _axis_geometry(low, high, spatial_scale, sampling_ratio, aligned, mindspore, roi_end_mode,
                   pooled, half, F):
    """Start, bin size and grid size of one roi axis; and whether the size was clamped to 1.

    torchvision: ``start = low*s - off``, ``end = high*s - off`` (off 0.5 when aligned), size at
    least 1 when not aligned, adaptive grid ``ceil(bin)``. MindSpore: ``start = low*s``,
    ``end = (high + mode)*s``, size at least 1 for mode 0 (``size if size > 1 else 1``, so NaN
    becomes 1), adaptive grid ``floor(bin)``.
    """
    one = F(1)
    clamped = False
    if mindspore:
        start = _h(low * spatial_scale, half)
        end = _h(_h(high + _h(F(roi_end_mode), half), half) * spatial_scale, half)
        size = _h(end - start, half)
        if roi_end_mode == 0 and not size > one:
            size = one
            clamped = True
    else:
        offset = F(0.5) if aligned else F(0)
        start = _h(_h(low * spatial_scale, half) - offset, half)
        end = _h(_h(high * spatial_scale, half) - offset, half)
        size = _h(end - start, half)
        if not aligned and size < one:
            size = one
            clamped = True
    bin_size = _h(size / _h(F(pooled), half), half)
    if sampling_ratio > 0:
        grid = sampling_ratio
    elif mindspore:
        grid = _grid_size(np.floor(bin_size))
    else:
        grid = _grid_size(np.ceil(bin_size))
    return start, bin_size, grid, clamped


@njit(cache=True)
def _sample_offset(index, bin_size, grid_f, half, F):
    """``((index + 0.5) * bin) / grid``: the sample's offset inside its bin, in that order.

    ``index + 0.5`` is formed in float32 as both peers do (exact below 2**23).
    """
    centre = _h(F(np.float32(index) + np.float32(0.5)), half)
    return _h(_h(centre * bin_size, half) / grid_f, half)



# How _first_sample compares a coordinate with its bound.
_AT_LEAST, _ABOVE, _AT_MOST, _BELOW = 0, 1, 2, 3


@njit(cache=True)
def _first_sample(bin_base, bin_size, grid_f, grid, bound, relation, half, F):
    """The first sample index in ``[0, grid)`` whose coordinate stands in ``relation`` to
    ``bound``, by bisection; ``max(grid, 0)`` if there is none.

    Correct because coordinates are monotonic in the index (each rounding is monotonic), so
    the relation is false and then true. A NaN coordinate satisfies no relation; the
    arithmetic yields NaN for every sample of a bin or for none.
    """
    low = 0
    high = max(grid, 0)
    while low < high:
        middle = (low + high) // 2
        coordinate = _h(bin_base + _sample_offset(middle, bin_size, grid_f, half, F), half)
        if relation == _AT_LEAST:
            holds = coordinate >= bound
        elif relation == _ABOVE:
            holds = coordinate > bound
        elif relation == _AT_MOST:
            holds = coordinate <= bound
        else:
            holds = coordinate < bound
        if holds:
            high = middle
        else:
            low = middle + 1
    return low


@njit(cache=True)
def _valid_samples(bin_base, bin_size, grid_f, grid, size, half, F):
    """``[first, stop)``: the samples of one bin whose coordinate lies in ``[-1, size]``."""
    lower = F(-1)
    upper = F(size)
    if bin_size >= 0:  # coordinates non-decreasing in the sample index
        first = _first_sample(bin_base, bin_size, grid_f, grid, lower, _AT_LEAST, half, F)
        stop = _first_sample(bin_base, bin_size, grid_f, grid, upper, _ABOVE, half, F)
    else:  # non-increasing (a reversed box)
        first = _first_sample(bin_base, bin_size, grid_f, grid, upper, _AT_MOST, half, F)
        stop = _first_sample(bin_base, bin_size, grid_f, grid, lower, _BELOW, half, F)
    return first, max(first, stop)


@njit(cache=True)
def _plan_axis(starts, bin_sizes, grids, pooled, size, half, F):
    """The valid samples of one axis (y with the height, or x with the width) of every roi.

    Returns flat tables indexed by entry ``e``, where the entries of roi ``k`` and bin ``p``
    are ``first[k, p] <= e < first[k, p + 1]`` in ascending sample order:

    - ``low[e]``, ``high[e]``: the two neighbouring rows (equal when pinned at ``size - 1``);
      unsigned, so that indexing skips Numba's negative-index wraparound;
    - ``frac[e]``, ``comp[e]``: the weights ``l = c - low`` and ``h = 1 - l`` in ``F``;
    - ``active[e]``: the coordinate moves with the box (not clamped at 0, not pinned);
    - ``position[e]``: ``(p + (i + 0.5)/grid) / pooled``, where the sample sits along the roi,
      i.e. ``d coordinate / d end`` over the scale (for the box gradient).
    """
    num_rois = starts.shape[0]
    first = np.zeros((num_rois, pooled + 1), np.int64)
    begin = np.zeros((num_rois, pooled), np.int64)
    for k in range(num_rois):
        grid_f = _h(F(grids[k]), half)
        for p in range(pooled):
            bin_base = _h(starts[k] + _h(_h(F(p), half) * bin_sizes[k], half), half)
            start_index, stop_index = _valid_samples(bin_base, bin_sizes[k], grid_f, grids[k],
                                                     size, half, F)
            begin[k, p] = start_index
            first[k, p + 1] = stop_index - start_index
    total = 0  # counts to offsets: a running sum, sequential and cheap
    for k in range(num_rois):
        first[k, 0] = total
        for p in range(pooled):
            total += first[k, p + 1]
            first[k, p + 1] = total

    low = np.empty(total, np.uint64)
    high = np.empty(total, np.uint64)
    frac = np.empty(total, F)
    comp = np.empty(total, F)
    active = np.empty(total, np.bool_)
    position = np.empty(total, F)
    one = F(1)
    last = size - 1
    for k in range(num_rois):
        grid_f = _h(F(grids[k]), half)
        for p in range(pooled):
            bin_base = _h(starts[k] + _h(_h(F(p), half) * bin_sizes[k], half), half)
            e = first[k, p]
            for i in range(begin[k, p], begin[k, p] + first[k, p + 1] - first[k, p]):
                c = _h(bin_base + _sample_offset(i, bin_sizes[k], grid_f, half, F), half)
                moves = True
                if c <= F(0):  # the margin [-1, 0] reads row 0 at full weight
                    c = F(0)
                    moves = False
                row = np.int64(c)  # c >= 0: truncation is floor
                if row >= last:  # pinned to the last row, coordinate reset to it
                    row = last
                    row_next = last
                    c = _h(F(last), half)
                    moves = False
                else:
                    row_next = row + 1
                l = _h(c - _h(F(row), half), half)
                low[e] = row
                high[e] = row_next
                frac[e] = l
                comp[e] = _h(one - l, half)
                active[e] = moves
                position[e] = (F(p) + (F(i) + F(0.5)) / F(grids[k])) / F(pooled)
                e += 1
    return first, low, high, frac, comp, active, position


@njit(cache=True)
def _plan(rois, spatial_scale, sampling_ratio, aligned, mindspore, roi_end_mode,
          pooled_height, pooled_width, height, width, half, F):
    """Geometry of every roi and the sample tables of both axes (see ``_plan_axis``).

    Returns ``(count, ys, xs, y_clamped, x_clamped, grid_h, grid_w)``; ``count`` is the
    divisor of the forward (torchvision ``max(gh*gw, 1)``, MindSpore ``F(gh) * F(gw)``),
    which the gradients share: it differs from torchvision's backward ``gh*gw`` only where a
    roi has no samples at all.
    """
    num_rois = rois.shape[0]
    y_start = np.empty(num_rois, F)
    x_start = np.empty(num_rois, F)
    y_bin = np.empty(num_rois, F)
    x_bin = np.empty(num_rois, F)
    grid_h = np.empty(num_rois, np.int64)
    grid_w = np.empty(num_rois, np.int64)
    y_clamped = np.empty(num_rois, np.bool_)
    x_clamped = np.empty(num_rois, np.bool_)
    count = np.empty(num_rois, F)
    for k in range(num_rois):
        x_start[k], x_bin[k], grid_w[k], x_clamped[k] = _axis_geometry(
            rois[k, 1], rois[k, 3], spatial_scale, sampling_ratio, aligned, mindspore,
            roi_end_mode, pooled_width, half, F)
        y_start[k], y_bin[k], grid_h[k], y_clamped[k] = _axis_geometry(
            rois[k, 2], rois[k, 4], spatial_scale, sampling_ratio, aligned, mindspore,
            roi_end_mode, pooled_height, half, F)
        if mindspore:
            count[k] = _h(_h(F(grid_h[k]), half) * _h(F(grid_w[k]), half), half)
        else:
            count[k] = _h(F(max(grid_h[k] * grid_w[k], 1)), half)
    ys = _plan_axis(y_start, y_bin, grid_h, pooled_height, height, half, F)
    xs = _plan_axis(x_start, x_bin, grid_w, pooled_width, width, half, F)
    return count, ys, xs, y_clamped, x_clamped, grid_h, grid_w


@njit(cache=True)
def _sample_work(ys, xs, num_rois):
    """The number of samples of all rois together (each roi: y samples times x samples)."""
    y_first, x_first = ys[0], xs[0]
    total = 0
    for k in range(num_rois):
        total += (y_first[k, -1] - y_first[k, 0]) * (x_first[k, -1] - x_first[k, 0])
    return total


@njit(cache=True)
def _use_channels_last(ys, xs, num_rois, input_shape):
    """Whether to gather from a channels-last copy of the maps rather than in place.

    A channels-last copy makes the four taps of a sample contiguous vectors over channels,
    which vectorize and stream; it costs one pass over the maps. It pays off once the taps
    outnumber the map elements a few times over (dense rois on a map), not for a few rois.
    """
    batch, channels, height, width = input_shape
    taps = 4 * channels * _sample_work(ys, xs, num_rois)
    return taps >= _CHANNELS_LAST_MIN_RATIO * batch * channels * height * width


@njit(cache=True, parallel=True)
def _channels_last(input):
    """A C-contiguous ``[N, H, W, C]`` copy of ``[N, C, H, W]`` ``input`` (any strides)."""
    batch, channels, height, width = input.shape
    result = np.empty((batch, height, width, channels), input.dtype)
    for task in prange(batch * height):
        b = task // height
        y = task % height
        # Channel rows stay in L1 across consecutive x (one line per channel); writes stream.
        for x in range(width):
            for c in range(channels):
                result[b, y, x, c] = input[b, c, y, x]
    return result


@njit(cache=True, parallel=True)
def _channels_first_into(out, source):
    """``out[n, c, y, x] = source[n, y, x, c]``."""
    batch, channels, height, width = out.shape
    for task in prange(batch * channels):
        b = task // channels
        c = task % channels
        for y in range(height):
            for x in range(width):
                out[b, c, y, x] = source[b, y, x, c]


@njit(cache=True)
def _store(out, out_half, k, c, ph, pw, value):
    if out_half:
        out[k, c, ph, pw] = float_to_half_bits(value)
    else:
        out[k, c, ph, pw] = value


@njit(cache=True)
def _forward_in_place(input, out, out_half, k, batch_index, first_channel, stop_channel,
                      count, ys, xs, half, F):
    """Output bins of roi ``k``, channels ``[first_channel, stop_channel)``, gathered from the
    ``[N, C, H, W]`` maps through their strides; every op rounded to half when ``half``."""
    y_first, y_low, y_high, y_frac, y_comp = ys[0], ys[1], ys[2], ys[3], ys[4]
    x_first, x_low, x_high, x_frac, x_comp = xs[0], xs[1], xs[2], xs[3], xs[4]
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    for c in range(first_channel, stop_channel):
        plane = input[batch_index, c]
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                acc = F(0)
                for j in range(y_first[k, ph], y_first[k, ph + 1]):
                    row_lo, row_hi, ly, hy = y_low[j], y_high[j], y_frac[j], y_comp[j]
                    for i in range(x_first[k, pw], x_first[k, pw + 1]):
                        col_lo, col_hi, lx, hx = x_low[i], x_high[i], x_frac[i], x_comp[i]
                        w1 = _h(hy * hx, half)
                        w2 = _h(hy * lx, half)
                        w3 = _h(ly * hx, half)
                        w4 = _h(ly * lx, half)
                        term = _h(_h(w1 * plane[row_lo, col_lo], half)
                                  + _h(w2 * plane[row_lo, col_hi], half), half)
                        term = _h(term + _h(w3 * plane[row_hi, col_lo], half), half)
                        term = _h(term + _h(w4 * plane[row_hi, col_hi], half), half)
                        acc = _h(acc + term, half)
                _store(out, out_half, k, c, ph, pw, _h(acc / count, half))


@njit(cache=True)
def _forward_channels_last(features, out, out_half, k, batch_index, first_channel,
                           stop_channel, count, ys, xs, acc, F):
    """As ``_forward_in_place`` (float path) from ``[N, H, W, C]`` ``features``: the channel
    loop is innermost over contiguous memory, so the same per-channel arithmetic vectorizes."""
    y_first, y_low, y_high, y_frac, y_comp = ys[0], ys[1], ys[2], ys[3], ys[4]
    x_first, x_low, x_high, x_frac, x_comp = xs[0], xs[1], xs[2], xs[3], xs[4]
    pooled_height = y_first.shape[1] - 1
    pooled_width = x_first.shape[1] - 1
    image = features[batch_index]
    offset = np.uint64(first_channel)
    num_channels = stop_channel - first_channel
    for ph in range(pooled_height):
        for pw in range(pooled_width):
            for c in range(num_channels):
                acc[c] = F(0)
            for j in range(y_first[k, ph], y_first[k, ph + 1]):
                row_lo, row_hi = np.int64(y_low[j]), np.int64(y_high[j])
                ly, hy = y_frac[j], y_comp[j]
                for i in range(x_first[k, pw], x_first[k, pw + 1]):
                    col_lo, col_hi = np.int64(x_low[i]), np.int64(x_high[i])
                    lx, hx = x_frac[i], x_comp[i]
                    w1 = hy * hx
                    w2 = hy * lx
                    w3 = ly * hx
                    w4 = ly * lx
                    # Whole-pixel views (not slices) keep the unit stride visible to LLVM.
                    v1 = image[row_lo, col_lo]
                    v2 = image[row_lo, col_hi]
                    v3 = image[row_hi, col_lo]
                    v4 = image[row_hi, col_hi]
                    for c in range(num_channels):
                        # An unsigned index skips Numba's negative-index wraparound, which
                        # would turn these unit-stride loads into gathers.
                        source = offset + np.uint64(c)
                        acc[c] += (((w1 * v1[source] + w2 * v2[source]) + w3 * v3[source])
                                   + w4 * v4[source])
            for c in range(num_channels):
                _store(out, out_half, k, first_channel + c, ph, pw, acc[c] / count)


@njit(cache=True)
def _vector_blocks(channels, num_tasks_other):
    """Channel blocks per task for the channels-last paths: as few as keep every thread busy
    (long blocks amortize the per-sample work over more channels)."""
    wanted = (_MIN_TASKS + num_tasks_other - 1) // num_tasks_other
    return max(1, min(wanted, (channels + _VECTOR_BLOCK - 1) // _VECTOR_BLOCK))


@njit(cache=True, parallel=True)
def forward(input, rois, batch_indices, spatial_scale, sampling_ratio, aligned, mindspore,
            roi_end_mode, half_arithmetic, out, out_half, F):
    """roi_align forward into ``out`` ``[K, C, PH, PW]`` (dtype ``F``, or uint16 half bits when
    ``out_half``): each bin is the sum of its samples' bilinear values, iy-major, divided by
    the count (semantics.md §4)."""
    channels, height, width = input.shape[1], input.shape[2], input.shape[3]
    num_rois, pooled_height, pooled_width = out.shape[0], out.shape[2], out.shape[3]
    count, ys, xs, _, _, _, _ = _plan(rois, spatial_scale, sampling_ratio, aligned, mindspore,
                                      roi_end_mode, pooled_height, pooled_width, height, width,
                                      half_arithmetic, F)
    if not half_arithmetic and _use_channels_last(ys, xs, num_rois, input.shape):
        features = _channels_last(input)
        num_blocks = _vector_blocks(channels, num_rois)
        block = (channels + num_blocks - 1) // num_blocks
        for task in prange(num_rois * num_blocks):
            k = task // num_blocks
            first_channel = (task % num_blocks) * block
            stop_channel = min(first_channel + block, channels)
            acc = np.empty(stop_channel - first_channel, F)
            _forward_channels_last(features, out, out_half, k, batch_indices[k],
                                   first_channel, stop_channel, count[k], ys, xs, acc, F)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        for task in prange(num_rois * num_blocks):
            k = task // num_blocks
            first_channel = (task % num_blocks) * _CHANNEL_BLOCK
            stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
            _forward_in_place(input, out, out_half, k, batch_indices[k], first_channel,
                              stop_channel, count[k], ys, xs, half_arithmetic, F)
