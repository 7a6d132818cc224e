"""The sample plan of roi_align: where every valid sample of every roi lies, in NumPy.

A sample's y coordinate depends only on ``(roi, ph, iy)`` and its x only on ``(roi, pw, ix)``,
so each axis gets a small table of its *valid* samples (coordinate inside ``[-1, size]``): the
two neighbouring rows (or columns), their interpolation weights, and what the box gradient
needs. The Numba kernels (``roiops.roi_align.cpu``, and the position-sensitive and multi-scale
ones) then apply the tables to every channel.

The plan is vectorized NumPy, not a Numba kernel: it is small (rois x bins x grid entries),
and as NumPy it costs nothing to compile, where the Numba plan was most of a first call's
compile time. Every operation is an elementwise IEEE operation in the compute type ``F`` in
the peers' order (NumPy neither fuses nor reassociates), and with ``half`` every result is
rounded to binary16 as the peers' half arithmetic does, so the tables carry the peers' bits.

Coordinates are monotonic in the sample index (each rounding is monotonic), so the valid
samples of one bin are a contiguous run, found by bisection: an adaptive grid of a huge box
costs the samples that land on the map, not the whole grid, and invalid samples are never
read (docs/decisions.md#invalid-samples-are-not-read).

Example:
    >>> import numpy as np
    >>> from roiops.roi_align.conventions import TORCHVISION_ALIGNED
    >>> rois = np.array([[0, 1.0, 1.0, 3.0, 3.0]], np.float32)
    >>> plan = one_map(rois, np.float32(1), 2, TORCHVISION_ALIGNED.geometry, 1, 1, 4, 4,
    ...                False, np.float32)
    >>> plan.ys.low, plan.ys.frac   # two samples, on rows 1 and 2 exactly
    (array([1, 2], dtype=uint64), array([0., 0.], dtype=float32))
"""
from typing import NamedTuple

import numpy as np

from .conventions import LESS_THAN_ONE, NOT_ABOVE_ONE

# Adaptive grid sizes saturate here (an int32, as the peers' grids): a huge finite box must
# not overflow the sample count.
_MAX_GRID = 2147483647
# Grids of at most this many samples in all (rois x bins x grid) are evaluated whole, larger
# ones bisected (a few MB of temporaries at most).
_WHOLE_GRID_LIMIT = 1 << 18


class SampleTable(NamedTuple):
    """The valid samples of one axis (y or x) of every roi, flat arrays indexed by entry
    ``e``; the entries of roi ``k`` and bin ``p`` are ``first[k, p] <= e < first[k, p + 1]``,
    in ascending sample order.

    - ``first`` ``[K, P + 1]`` int64: the offsets;
    - ``low``, ``high`` uint64: the two neighbouring rows (equal when pinned at the last);
      unsigned, so that indexing skips Numba's negative-index wraparound;
    - ``frac``, ``comp`` in ``F``: the weights ``l = c - low`` and ``h = 1 - l``;
    - ``active`` bool: the coordinate moves with the box (not clamped at 0, not pinned);
    - ``position`` in ``F``: ``(p + (i + 0.5)/grid) / P``, where the sample sits along the
      roi, i.e. ``d coordinate / d end`` over the scale (for the box gradient).
    """

    first: np.ndarray
    low: np.ndarray
    high: np.ndarray
    frac: np.ndarray
    comp: np.ndarray
    active: np.ndarray
    position: np.ndarray


class Plan(NamedTuple):
    """Geometry of every roi and both axes' sample tables."""

    count: np.ndarray      # [K] the divisor of every bin, in F
    ys: SampleTable
    xs: SampleTable
    y_clamped: np.ndarray  # [K] the minimum size fired on the axis (the size is constant 1)
    x_clamped: np.ndarray
    grid_h: np.ndarray     # [K] sample grid sizes, int64
    grid_w: np.ndarray


def _rounding(half):
    """The peers' per-operation rounding: to binary16 in half arithmetic (a NaN keeps its
    bits, as x86's negative 0/0 NaN does in the peers), else none."""
    if not half:
        return lambda value: value

    def to_half(value):
        rounded = value.astype(np.float16).astype(value.dtype)
        return np.where(np.isnan(value), value, rounded)
    return to_half


def _grid_sizes(value):
    """Float grid sizes (already floored or ceiled) as int64, saturating; NaN gives 0. The
    bound is compared in float64, where it is exact."""
    value = value.astype(np.float64)
    clipped = np.clip(np.where(np.isnan(value), 0.0, value), -float(_MAX_GRID), float(_MAX_GRID))
    return clipped.astype(np.int64)


def _axis_geometry(low, high, scales, sampling_ratio, geometry, pooled, h, F):
    """Start, bin size, grid size and whether the size was clamped to 1, of one roi axis for
    every roi (``low``, ``high``, ``scales``: ``[K]``).

    With the convention's ``geometry`` (docs/conventions.md#roi_align-switches):
    ``start = low*s - offset``, ``end = (high [+ end_extra])*s - offset``, the size held at 1
    by the ``min_size`` rule, adaptive grid ``floor`` or ``ceil`` of the bin size. Subtracting
    an offset of 0 leaves every value as it is (-0.0 and NaN included), so a convention
    without one computes exactly ``low*s``. The grid comes from the bin size before it is
    stored in ``F``.
    """
    one = F(1)
    offset = F(geometry.offset)
    start = h(h(low * scales) - offset)
    if geometry.add_end:
        high = h(high + h(np.asarray(F(geometry.end_extra))))
    end = h(h(high * scales) - offset)
    size = h(end - start)
    if geometry.min_size == LESS_THAN_ONE:
        clamped = size < one
    elif geometry.min_size == NOT_ABOVE_ONE:
        clamped = ~(size > one)
    else:
        clamped = np.zeros(size.shape, np.bool_)
    size = np.where(clamped, one, size)
    bin_size = h(size / h(np.asarray(F(pooled))))
    if sampling_ratio > 0:
        grid = np.full(size.shape, sampling_ratio, np.int64)
    elif geometry.grid_floor:
        grid = _grid_sizes(np.floor(bin_size))
    else:
        grid = _grid_sizes(np.ceil(bin_size))
    return start.astype(F), bin_size.astype(F), grid, clamped


def _sample_offset(index, bin_size, grid_f, h, F):
    """``((index + 0.5) * bin) / grid``: the sample's offset inside its bin, in that order;
    ``index + 0.5`` formed in float32 as both peers do (exact below 2**23)."""
    centre = h((index.astype(np.float32) + np.float32(0.5)).astype(F))
    return h(h(centre * bin_size) / grid_f)


def _first_true(holds, coordinate, grid):
    """Per bin, the first sample index in ``[0, grid)`` whose coordinate ``holds``, by
    bisection on every bin at once; ``max(grid, 0)`` if there is none.

    Correct because the relation is false and then true along a bin's samples (coordinates
    are monotonic in the index). A NaN coordinate satisfies no relation; the arithmetic yields
    NaN for every sample of a bin or for none.
    """
    low = np.zeros(grid.shape, np.int64)
    high = np.maximum(grid, 0)
    searching = low < high
    while searching.any():
        middle = (low + high) // 2
        found = holds(coordinate(middle)) & searching
        high = np.where(found, middle, high)
        low = np.where(searching & ~found, middle + 1, low)
        searching = low < high
    return low


def _valid_samples(coordinate, coordinate_of, shape, grids, sizes, rising, F):
    """``(q, i, c)``: the valid samples (coordinate ``c`` in ``[-1, size]``) of every bin
    ``q = k*P + p``, as flat arrays in ascending ``(q, i)`` order. ``coordinate(i)`` gives
    the ``[K, P, n]`` coordinates of sample indices ``i`` (``[n]``, or ``[K, P, 1]``: one per
    bin; ``shape`` is ``[K, P]``), ``coordinate_of(q, i)`` those of flat entries.

    Small grids are evaluated whole; larger ones (an adaptive grid of a huge box) by two
    bisections per bin, which find the same samples: coordinates are monotonic in the index,
    rising with it when the bin size is not negative, so the valid samples are one run.
    """
    lower = F(-1)
    upper = sizes.astype(F)[:, None, None]
    bins = shape[0] * shape[1]
    grid_max = max(int(grids.max(initial=0)), 0)
    if bins * grid_max <= _WHOLE_GRID_LIMIT:
        index = np.arange(grid_max)
        c = coordinate(index)
        valid = (c >= lower) & (c <= upper)
        if grids.min(initial=grid_max) < grid_max:
            valid &= index < grids[:, None, None]
        flat = np.flatnonzero(valid)
        q = flat // grid_max
        return q, flat - q * grid_max, c.ravel()[flat]
    grid = np.broadcast_to(grids[:, None, None], (*shape, 1))
    # a reversed box's coordinates fall with the index
    rising = rising[:, :, None]
    first = _first_true(lambda c: np.where(rising, c >= lower, c <= upper), coordinate, grid)
    stop = _first_true(lambda c: np.where(rising, c > upper, c < lower), coordinate, grid)
    counts = (np.maximum(first, stop) - first).ravel()
    q = np.repeat(np.arange(bins), counts)
    i = first.ravel()[q] + (np.arange(q.shape[0]) - (np.cumsum(counts) - counts)[q])
    return q, i, coordinate_of(q, i)


def _axis_table(starts, bin_sizes, grids, pooled, sizes, h, F):
    """The ``SampleTable`` of one axis (y with the heights, or x with the widths: ``sizes[k]``
    is the size of roi ``k``'s map along the axis)."""
    num_rois = starts.shape[0]
    grid_f = h(grids.astype(F))
    bin_base = h(starts[:, None] + h(h(np.arange(pooled).astype(F))[None, :] * bin_sizes[:, None]))

    def coordinate(index):
        offset = _sample_offset(index, bin_sizes[:, None, None], grid_f[:, None, None], h, F)
        return h(bin_base[:, :, None] + offset)

    def coordinate_of(q, i):
        k = q // pooled
        return h(bin_base.ravel()[q] + _sample_offset(i, bin_sizes[k], grid_f[k], h, F))

    q, i, c = _valid_samples(coordinate, coordinate_of, bin_base.shape, grids, sizes,
                             (bin_sizes >= 0)[:, None], F)
    offsets = np.zeros(num_rois * pooled + 1, np.int64)
    np.cumsum(np.bincount(q, minlength=num_rois * pooled), out=offsets[1:])
    table_first = offsets[np.arange(num_rois)[:, None] * pooled + np.arange(pooled + 1)]

    k = q // pooled
    p = q - k * pooled
    below = c <= F(0)  # the margin [-1, 0] reads row 0 at full weight
    c = np.where(below, F(0), c)
    row = c.astype(np.int64)  # c >= 0: truncation is floor
    # Pinned to the last row, coordinate reset to it. Compared as integers: the float bound
    # F(size) rounds up past size for some sizes from 2**24 on, so a valid c can truncate to
    # size or beyond; its sample reads the last pixel.
    last = sizes[k] - 1
    pinned = row >= last
    row = np.where(pinned, last, row)
    row_next = np.where(pinned, last, row + 1)
    c = np.where(pinned, h(last.astype(F)), c)
    fraction = h(c - h(row.astype(F)))
    position = (p.astype(F) + (i.astype(F) + F(0.5)) / grids[k].astype(F)) / F(pooled)
    return SampleTable(table_first, row.astype(np.uint64), row_next.astype(np.uint64),
                       fraction.astype(F), h(F(1) - fraction).astype(F), ~(below | pinned),
                       position.astype(F))


def plan(rois, scales, heights, widths, sampling_ratio, geometry, pooled_height, pooled_width,
         half, F):
    """Geometry of every roi and the sample tables of both axes (``SampleTable``).

    Roi ``k`` (a row ``(batch, x1, y1, x2, y2)`` of ``rois`` in ``F``) is scaled by
    ``scales[k]`` onto a map of ``heights[k] x widths[k]``: one map for roi_align
    (:func:`one_map`), each roi's own level for multi-scale RoI Align. ``half`` rounds every
    operation to binary16 (``F`` is then float32).

    Returns a ``Plan``; ``count`` is the divisor of the forward (torchvision
    ``max(gh*gw, 1)``, MindSpore ``F(gh) * F(gw)``), which the gradients share: it differs
    from torchvision's backward ``gh*gw`` only where a roi has no samples at all.
    """
    h = _rounding(half)
    with np.errstate(all="ignore"):  # inf and NaN boxes give inf and NaN, as in the peers
        x_start, x_bin, grid_w, x_clamped = _axis_geometry(
            rois[:, 1], rois[:, 3], scales, sampling_ratio, geometry, pooled_width, h, F)
        y_start, y_bin, grid_h, y_clamped = _axis_geometry(
            rois[:, 2], rois[:, 4], scales, sampling_ratio, geometry, pooled_height, h, F)
        if geometry.count_product:
            count = h(h(grid_h.astype(F)) * h(grid_w.astype(F)))
        else:
            count = h(np.maximum(grid_h * grid_w, 1).astype(F))
        ys = _axis_table(y_start, y_bin, grid_h, pooled_height, heights, h, F)
        xs = _axis_table(x_start, x_bin, grid_w, pooled_width, widths, h, F)
    return Plan(count.astype(F), ys, xs, y_clamped, x_clamped, grid_h, grid_w)


def one_map(rois, spatial_scale, sampling_ratio, geometry, pooled_height, pooled_width,
            height, width, half, F):
    """:func:`plan` of rois all on one ``height x width`` map at ``spatial_scale``."""
    num_rois = rois.shape[0]
    return plan(rois, np.full(num_rois, spatial_scale), np.full(num_rois, height),
                np.full(num_rois, width), sampling_ratio, geometry, pooled_height,
                pooled_width, half, F)
