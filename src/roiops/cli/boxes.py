"""Box geometry of ``roiops crop``: pixel or normalized boxes to crop_and_resize boxes.

The convention (docs/cli.md, "Box conventions"):

* Pixel boxes ``x1, y1, x2, y2`` (a COCO ``[x, y, w, h]`` is ``x1 = x``, ``x2 = x + w``) are in
  pixel-edge coordinates: pixel ``i`` covers ``[i, i + 1)``, so ``[0, 0, W, H]`` is the whole
  image. The crop's corner samples land on the centres of the box's first and last pixels:
  columns are sampled from pixel ``x1`` to pixel ``x2 - 1`` (pixel-index coordinates), that is
  normalized ``x1 / (W - 1)`` to ``(x2 - 1) / (W - 1)`` in crop_and_resize's convention, where a
  normalized ``x`` maps to ``x * (W - 1)``. A box of ``w`` pixels cropped to ``w`` columns gives
  exactly those pixels. A box less than one pixel wide samples one column at ``x1``.
* Normalized boxes (CSV with ``--normalized``) are crop_and_resize's own coordinates and are
  passed through unchanged (flipped boxes flip the crop).
* Relative boxes (YOLO) are fractions of the image width and height in edge coordinates:
  ``x1 * W`` is the pixel box's ``x1``; from there they are pixel boxes.
* ``margin`` grows a box by ``margin`` times its width (height) on the left and right (top and
  bottom); ``square`` then grows the shorter side to the longer one around the box centre.
  Both act on pixel sizes: for pixel boxes on the edge-coordinate box (its size is ``w``), for
  normalized boxes on the span between the corner samples (``|x2 - x1| * (W - 1)``).
"""
import math

import numpy as np


class BoxError(ValueError):
    """A box that cannot be cropped (the message says why)."""


def check_pixel_box(box):
    """Raise BoxError unless ``box = (x1, y1, x2, y2)`` has a positive width and height."""
    x1, y1, x2, y2 = box
    if not x2 > x1 or not y2 > y1:
        raise BoxError(f"empty box: x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g} "
                       "(needs x2 > x1 and y2 > y1)")


def sample_box(box, height, width, *, units="pixels", margin=0.0, square=False):
    """The crop_and_resize box ``[y1, x1, y2, x2]`` (float32) for an annotation box.

    Args:
        box: ``(x1, y1, x2, y2)`` in ``units``: ``"pixels"`` (edge coordinates),
            ``"normalized"`` or ``"relative"`` (see the module docstring).
        height, width: the image size in pixels.
        margin, square: see the module docstring.

    Raises:
        BoxError: an empty pixel box, or a box with no overlap with the image.
    """
    if units == "relative":
        box = to_pixels(box, height, width)
    x1, y1, x2, y2 = (float(v) for v in box)
    if units == "normalized":
        _require_overlap_normalized(box)
        ys = _grow(y1 * (height - 1), y2 * (height - 1), margin)
        xs = _grow(x1 * (width - 1), x2 * (width - 1), margin)
        if square:
            ys, xs = _square(ys, xs)
        return _normalize(ys, xs, height, width)
    check_pixel_box(box)
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise BoxError(f"box x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g} lies outside the "
                       f"{width}x{height} image")
    ys, xs = _grow(y1, y2, margin), _grow(x1, x2, margin)
    if square:
        ys, xs = _square(ys, xs)
    # Edge coordinates to the centres of the first and last pixel.
    ys = (ys[0], max(ys[0], ys[1] - 1.0))
    xs = (xs[0], max(xs[0], xs[1] - 1.0))
    return _normalize(ys, xs, height, width)


def to_pixels(box, height, width):
    """A relative box (fractions of the image size) in pixel edge coordinates."""
    x1, y1, x2, y2 = box
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def pixel_size(box, units, height=None, width=None):
    """``(width, height)`` of an annotation box in pixels (the image size is needed unless
    ``units`` is pixels): a normalized box spans the pixels between its corner samples."""
    x1, y1, x2, y2 = box
    if units == "pixels":
        return x2 - x1, y2 - y1
    if units == "relative":
        return (x2 - x1) * width, (y2 - y1) * height
    return abs(x2 - x1) * (width - 1) + 1, abs(y2 - y1) * (height - 1) + 1


def samples_outside(sampled_box, height, width, crop_height, crop_width):
    """``(rows, columns)``: which rows and columns of a crop sample outside the image (boolean
    arrays), for the crop_and_resize box ``[y1, x1, y2, x2]`` of an image ``height x width``."""
    y1, x1, y2, x2 = (float(v) for v in sampled_box)
    return (_outside(y1, y2, height, crop_height), _outside(x1, x2, width, crop_width))


def _outside(start, end, size, count):
    scale = size - 1
    if count == 1:
        positions = np.array([0.5 * (start + end) * scale])
    else:
        positions = start * scale + np.arange(count) * ((end - start) * scale / (count - 1))
    return (positions < 0) | (positions > scale)


def _require_overlap_normalized(box):
    x1, y1, x2, y2 = box
    if (max(x1, x2) < 0 or min(x1, x2) > 1 or max(y1, y2) < 0 or min(y1, y2) > 1):
        raise BoxError(f"normalized box x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g} lies "
                       "outside the image ([0, 1])")


def _grow(start, end, margin):
    """The span ``start..end`` grown by ``margin`` times its length at both ends (keeps its
    direction)."""
    pad = margin * (end - start)
    return start - pad, end + pad


def _square(ys, xs):
    """Grow the shorter span to the longer one's length around its centre."""
    side = max(abs(ys[1] - ys[0]), abs(xs[1] - xs[0]))
    return _resize_span(ys, side), _resize_span(xs, side)


def _resize_span(span, length):
    start, end = span
    centre = (start + end) / 2
    half = math.copysign(length / 2, end - start if end != start else 1.0)
    return centre - half, centre + half


def _normalize(ys, xs, height, width):
    """Pixel-index coordinates to crop_and_resize's ``[y1, x1, y2, x2]`` (``v / (size - 1)``;
    a one-pixel dimension maps everything to 0). BoxError if a coordinate overflows float32
    (a huge box, or a huge --margin)."""
    dy, dx = max(height - 1, 1), max(width - 1, 1)
    box = [ys[0] / dy, xs[0] / dx, ys[1] / dy, xs[1] / dx]
    with np.errstate(over="ignore"):
        normalized = np.array(box, np.float32)
    if not np.isfinite(normalized).all():
        raise BoxError(f"box too large to crop: its normalized coordinates [y1, x1, y2, x2] = "
                       f"{[float(v) for v in box]} overflow float32")
    return normalized
