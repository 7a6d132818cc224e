"""Numba CPU kernels of roi_pool: the forward (max and argmax per bin) and the input gradient.

torchvision's arithmetic (docs/roi_pool.md), in the compute type ``F`` (the input's type for
float32/float64; float16 widened exactly to float32), with ``half`` rounding every geometry
operation to binary16 as torchvision's float16 kernel does. The integer geometry follows the
C++ kernel on x86-64: a float converted to ``int`` outside the int32 range (or NaN) becomes
``-2**31`` (``cvttss2si``), and int32 sums wrap.

Design, in two phases like roi_align's kernels:

1. **Plan** (``_plan``, sequential: it is small). A bin's rows depend only on ``(roi, ph)``
   and its columns only on ``(roi, pw)``: each roi gets ``[start, end)`` rows per bin row and
   columns per bin column, already clipped to the map.
2. **Apply.** The forward runs over (roi, block of channels) tasks, each output element
   written by one thread; a bin is scanned row by row, left to right, and a pixel replaces
   the maximum only when it is strictly greater (``>``): ties keep the first pixel, NaN never
   wins. The input gradient runs over (image, block of channels) tasks, each walking the rois
   in ascending order, so every element receives its adds in torchvision's sequential order
   (roi, ph, pw) on any number of threads.

Three forward paths give the same bits. *In place* scans the NCHW planes one channel at a
time. When the scanned pixels outnumber the map elements several times (dense rois) the maps
are read channels last, so that one pixel of a block of channels is a contiguous vector and
the compare-and-select of every channel vectorizes: with channels enough for a wide block per
thread, each (channel block, image) task copies its block into a small buffer of its own and
pools every roi of that image from it (read from cache); with few channels, the maps are
copied once as ``[N, H, W, C]`` and the tasks are (roi, block of channels).
"""
import numba
import numpy as np
from numba import njit

from .._numerics import float_to_half_bits, round_half_away
from .._threads import run_tasks
from ..roi_align.cpu import _channels_last as channels_last
from ..roi_align.cpu import (
    _h,  # a value rounded to half when computing in half (one peer op)
    channels_last_row,
)

# Channels per task of the in-place forward and of the input gradient (blocks of 4 to 64
# channels gave the gradient the same speed within 15%).
_CHANNEL_BLOCK = 16
# Channels per vector chunk of the channels-last paths: the narrowest block worth scanning
# (16 channels scanned at half the speed of 64), and the unit of the copy's blocks.
_LANES = 64
# The widest channel block of a thread's own channels-last buffer (2-core benchmark: 128
# channels 18-21 ms, 64 channels 22-27 ms, 256 channels 22-30 ms).
_WIDEST_BLOCK = 128
# The channels-last copy is made once the scanned pixels exceed this many times the map.
_CHANNELS_LAST_MIN_RATIO = 4
# Parallel tasks wanted at least (a thread count cannot be read in cached code).
_MIN_TASKS = 16
# The maximum a bin starts from when it is not empty: torchvision's -FLT_MAX in every type
# (-inf in half, where it overflows).
LOWEST = float(np.finfo(np.float32).min)
_INT32_MIN = -2147483648
_TWO_31 = 2147483648.0


@njit(cache=True, error_model="numpy")
def _int32(value):
    """C's float-to-int conversion on x86-64: truncation, and ``-2**31`` for a value outside
    the int32 range or NaN (the "integer indefinite" of ``cvttss2si``)."""
    if -_TWO_31 <= value < _TWO_31:
        return np.int64(value)
    return np.int64(_INT32_MIN)


@njit(cache=True, error_model="numpy")
def _wrap(value):
    """An int64 ``value`` wrapped to int32, as an int32 sum wraps on x86-64."""
    return ((value + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit(cache=True, error_model="numpy")
def _rounded_edge(coordinate, spatial_scale, half):
    """``(int) round(coordinate * spatial_scale)``: C ``round`` (halves away from zero)."""
    scaled = _h(coordinate * spatial_scale, half)
    if not abs(scaled) < _TWO_31:  # also inf: no int32 to round to
        return np.int64(_INT32_MIN)
    return _int32(round_half_away(scaled))


@njit(cache=True, error_model="numpy")
def _axis(low, high, spatial_scale, pooled, size, starts, ends, half, F):
    """One roi axis: ``starts[p], ends[p]``, the clipped ``[start, end)`` of bin ``p``.

    ``start = round(low*s)``, ``length = max(round(high*s) - start + 1, 1)`` (a malformed
    roi becomes one pixel), ``bin = F(length) / F(pooled)``; bin ``p`` spans
    ``[floor(p*bin), ceil((p+1)*bin))`` shifted by ``start`` and clipped to ``[0, size]``.
    """
    start = _rounded_edge(low, spatial_scale, half)
    end = _rounded_edge(high, spatial_scale, half)
    length = max(_wrap(end - start + 1), 1)
    bin_size = _h(_h(F(length), half) / _h(F(pooled), half), half)
    for p in range(pooled):
        first = _int32(np.floor(_h(_h(F(p), half) * bin_size, half)))
        stop = _int32(np.ceil(_h(_h(F(p + 1), half) * bin_size, half)))
        starts[p] = min(max(_wrap(first + start), 0), size)
        ends[p] = min(max(_wrap(stop + start), 0), size)


@njit(cache=True, error_model="numpy")
def _plan(rois, spatial_scale, pooled_height, pooled_width, height, width, half, F):
    """``(row_start, row_end, col_start, col_end)``: ``[K, PH]`` and ``[K, PW]`` int64."""
    num_rois = rois.shape[0]
    row_start = np.empty((num_rois, pooled_height), np.int64)
    row_end = np.empty((num_rois, pooled_height), np.int64)
    col_start = np.empty((num_rois, pooled_width), np.int64)
    col_end = np.empty((num_rois, pooled_width), np.int64)
    for k in range(num_rois):
        _axis(rois[k, 2], rois[k, 4], spatial_scale, pooled_height, height, row_start[k],
              row_end[k], half, F)
        _axis(rois[k, 1], rois[k, 3], spatial_scale, pooled_width, width, col_start[k],
              col_end[k], half, F)
    return row_start, row_end, col_start, col_end


@njit(cache=True, error_model="numpy")
def _write(out, out_half, argmax, with_argmax, k, first_channel, lanes, best, best_index):
    """A task's results, held as ``[bins, lanes]``, into ``out[k]`` and ``argmax[k]`` from
    ``first_channel`` on, contiguous over each channel's bins. float16 results are written as
    their bits (values read from a float16 map are halves already, so the rounding is exact;
    -FLT_MAX becomes -inf). The dtype switch stands outside the loops: a switch per element
    cost more than the scans."""
    pooled_height, pooled_width = out.shape[2], out.shape[3]
    if out_half:
        for c in range(lanes):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    out[k, first_channel + c, ph, pw] = float_to_half_bits(
                        best[ph * pooled_width + pw, c])
    else:
        for c in range(lanes):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    out[k, first_channel + c, ph, pw] = best[ph * pooled_width + pw, c]
    if with_argmax:
        for c in range(lanes):
            for ph in range(pooled_height):
                for pw in range(pooled_width):
                    argmax[k, first_channel + c, ph, pw] = best_index[ph * pooled_width + pw, c]


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_in_place(input, out, out_half, argmax, with_argmax, batch_indices, num_blocks,
                      plan, F, task_begin, task_end):
    """The (roi, ``_CHANNEL_BLOCK`` channels) tasks given, scanning the NCHW planes."""
    row_start, row_end, col_start, col_end = plan
    channels, width = out.shape[1], input.shape[3]
    pooled_height, pooled_width = row_start.shape[1], col_start.shape[1]
    lowest = F(LOWEST)
    best = np.empty((pooled_height * pooled_width, _CHANNEL_BLOCK), F)
    best_index = np.empty((pooled_height * pooled_width, _CHANNEL_BLOCK), np.int32)
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        lanes = min(first_channel + _CHANNEL_BLOCK, channels) - first_channel
        for c in range(lanes):
            plane = input[batch_indices[k], first_channel + c]
            for ph in range(pooled_height):
                h0, h1 = row_start[k, ph], row_end[k, ph]
                for pw in range(pooled_width):
                    w0, w1 = col_start[k, pw], col_end[k, pw]
                    value_best = lowest
                    index_best = -1
                    if h1 <= h0 or w1 <= w0:
                        value_best = F(0)  # an empty bin is 0 (and has no argmax)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            value = plane[h, w]
                            if value > value_best:
                                value_best = value
                                index_best = h * width + w
                    best[ph * pooled_width + pw, c] = value_best
                    best_index[ph * pooled_width + pw, c] = index_best
        _write(out, out_half, argmax, with_argmax, k, first_channel, lanes, best, best_index)


@njit(cache=True, error_model="numpy")
def _scan(image, h0, h1, w0, w1, first_channel, lanes, best, best_index):
    """One bin of ``lanes`` channels from ``first_channel`` of the ``[H, W, C]`` ``image``,
    into the running ``best`` and ``best_index``: a pixel replaces the maximum only when it is
    strictly greater. The channel loop vectorizes: unsigned offsets into the C-contiguous
    copy (no negative-index wraparound, a unit stride; a slice of the last axis would have a
    runtime stride), and ``best`` arrives as an argument (allocated in the caller, the loop
    lost its vectorization)."""
    width = image.shape[1]
    for h in range(h0, h1):
        for w in range(w0, w1):
            index = np.int32(h * width + w)
            for c in range(lanes):
                value = image[h, w, np.uint64(first_channel + c)]
                greater = value > best[c]
                best[c] = value if greater else best[c]
                best_index[c] = index if greater else best_index[c]


@njit(cache=True, nogil=True, error_model="numpy")
def _pool_roi(image, first_lane, lanes, k, plan, best, best_index, F):
    """Every bin of roi ``k`` over ``lanes`` channels of the ``[H, W, C]`` ``image`` from
    ``first_lane`` on, into ``best`` and ``best_index`` (``[bins, lanes]``)."""
    row_start, row_end, col_start, col_end = plan
    pooled_height, pooled_width = row_start.shape[1], col_start.shape[1]
    lowest = F(LOWEST)
    for ph in range(pooled_height):
        h0, h1 = row_start[k, ph], row_end[k, ph]
        for pw in range(pooled_width):
            w0, w1 = col_start[k, pw], col_end[k, pw]
            start = F(0) if h1 <= h0 or w1 <= w0 else lowest
            bin_best = best[ph * pooled_width + pw]
            bin_index = best_index[ph * pooled_width + pw]
            for c in range(lanes):
                bin_best[c] = start
                bin_index[c] = -1
            _scan(image, h0, h1, w0, w1, first_lane, lanes, bin_best, bin_index)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_channels_last(features, out, out_half, argmax, with_argmax, batch_indices, block,
                           num_blocks, plan, F, task_begin, task_end):
    """The (roi, ``block`` channels) tasks given, scanning the ``[N, H, W, C]`` copy: the
    compare-and-select of one pixel runs over the block's channels as vectors.

    A task's bins are kept as ``[bins, lanes]`` (contiguous over channels for the scan) and
    written out once per channel, contiguous over its bins: writing each bin's channels
    straight into ``[K, C, PH, PW]`` strided by the bin count cost more than the scans.
    """
    channels, bins = out.shape[1], out.shape[2] * out.shape[3]
    best = np.empty((bins, block), F)
    best_index = np.empty((bins, block), np.int32)
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * block
        lanes = min(first_channel + block, channels) - first_channel
        _pool_roi(features[batch_indices[k]], first_channel, lanes, k, plan, best, best_index,
                  F)
        _write(out, out_half, argmax, with_argmax, k, first_channel, lanes, best, best_index)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_channel_blocks(input, out, out_half, argmax, with_argmax, batch_indices, block,
                            num_blocks, plan, F, task_begin, task_end):
    """The (channel block, image) tasks given: each copies its ``block`` channels of the
    image channels-last into a buffer of its own, then pools every roi of the image from
    it. The buffer is reused from task to task and is a fraction of the maps, so the scans
    read it from cache, and no copy of the whole maps is made (the 512-roi benchmark's
    forward: a quarter faster)."""
    batch, channels, height, width = input.shape
    bins = out.shape[2] * out.shape[3]
    image = np.empty((height, width, block), F)
    best = np.empty((bins, block), F)
    best_index = np.empty((bins, block), np.int32)
    for task in range(task_begin, task_end):
        b = task % batch
        first_channel = (task // batch) * block
        lanes = min(first_channel + block, channels) - first_channel
        for h in range(height):
            channels_last_row(input, b, first_channel, h, image[h, :, :lanes])
        for k in range(batch_indices.shape[0]):
            if batch_indices[k] == b:
                _pool_roi(image, 0, lanes, k, plan, best, best_index, F)
                _write(out, out_half, argmax, with_argmax, k, first_channel, lanes, best,
                       best_index)


def _scanned_pixels(plan):
    """The pixels every channel's scans read, summed over the rois' bins."""
    row_start, row_end, col_start, col_end = plan
    rows = (row_end - row_start).clip(0).sum(axis=1)
    cols = (col_end - col_start).clip(0).sum(axis=1)
    return int((rows * cols).sum())


def forward(input, rois, batch_indices, spatial_scale, half_arithmetic, out, out_half, argmax,
            with_argmax, F):
    """Max pooling of every roi's bins into ``out`` ``[K, C, PH, PW]`` (float16 results as
    uint16 bits) and, when ``with_argmax``, the winners' flat plane indices into ``argmax``
    (int32, -1 where a bin is empty or holds nothing above -FLT_MAX).

    ``input`` is ``[N, C, H, W]`` in ``F`` (any strides), ``rois`` ``[K, 5]`` in ``F`` (in
    half arithmetic: values already rounded to half), ``spatial_scale`` an ``F`` (likewise).
    """
    batch, channels, height, width = input.shape
    num_rois, _, pooled_height, pooled_width = out.shape
    plan = _plan(rois, spatial_scale, pooled_height, pooled_width, height, width,
                 half_arithmetic, F)
    scanned = _scanned_pixels(plan)
    if scanned < _CHANNELS_LAST_MIN_RATIO * batch * height * width:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        run_tasks(_forward_in_place, num_rois * num_blocks, input, out, out_half, argmax,
                  with_argmax, batch_indices, num_blocks, plan, F)
        return
    # Channels last. Per thread, a buffer of its own channel blocks when there are blocks
    # of a worthwhile width for every thread (tasks walk the blocks, so that the threads
    # share the work however the rois fall on the images); else one copy of the maps,
    # parallel over rois.
    num_blocks = max(-(-channels // _WIDEST_BLOCK), numba.get_num_threads())
    block = -(-channels // num_blocks)
    if block >= _LANES:
        run_tasks(_forward_channel_blocks, batch * num_blocks, input, out, out_half, argmax,
                  with_argmax, batch_indices, block, num_blocks, plan, F)
    else:
        features = channels_last(input)  # roi_align's copy: [N, H, W, C], C-contiguous
        block, num_blocks = _vector_blocks(channels, num_rois)
        run_tasks(_forward_channels_last, num_rois * num_blocks, features, out, out_half,
                  argmax, with_argmax, batch_indices, block, num_blocks, plan, F)


def _vector_blocks(channels, num_rois):
    """(channels per block, blocks): as few blocks as keep every thread busy, each a whole
    number of ``_LANES`` chunks."""
    wanted = (_MIN_TASKS + num_rois - 1) // num_rois
    num_blocks = max(1, min(wanted, (channels + _LANES - 1) // _LANES))
    block = (channels + num_blocks - 1) // num_blocks
    block = (block + _LANES - 1) // _LANES * _LANES
    return block, (channels + block - 1) // block


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input(grads, argmax, batch_indices, out, block, num_blocks, half, task_begin,
                task_end):
    """The (image, ``block`` channels) tasks given, into ``out`` ``[N, C, H * W]``:
    every roi of the image in ascending order adds ``grads[k, c, ph, pw]`` at its argmax
    (each add rounded to half when ``half``); an argmax outside the plane (-1: an empty bin)
    adds nothing. Rois outside, channels inside: a roi's block of grads and argmax is read
    contiguously."""
    channels, plane_size = out.shape[1], out.shape[2]
    pooled_height, pooled_width = grads.shape[2], grads.shape[3]
    for task in range(task_begin, task_end):
        b = task // num_blocks
        first_channel = (task % num_blocks) * block
        stop_channel = min(first_channel + block, channels)
        for k in range(grads.shape[0]):
            if batch_indices[k] != b:
                continue
            for c in range(first_channel, stop_channel):
                plane = out[b, c]
                for ph in range(pooled_height):
                    for pw in range(pooled_width):
                        index = np.int64(argmax[k, c, ph, pw])
                        if 0 <= index < plane_size:
                            plane[index] = _h(plane[index] + grads[k, c, ph, pw], half)


def grad_input(grads, argmax, batch_indices, half_arithmetic, out):
    """Add every bin's gradient to its argmax pixel of the zeroed ``[N, C, H, W]`` ``out``
    (in ``F``), in torchvision's sequential order (roi, ph, pw) per element."""
    batch, channels, height, width = out.shape
    num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
    # planes as flat rows: an argmax is a flat index, and indexing it needs no division
    run_tasks(_grad_input, batch * num_blocks, grads, argmax, batch_indices,
              out.reshape(batch, channels, height * width), _CHANNEL_BLOCK, num_blocks,
              half_arithmetic)
