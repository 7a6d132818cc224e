"""The crops of one image's boxes: crop_and_resize's samples, or with ``--antialias`` the mean
of ``ky x kx`` of them spread over each crop pixel.

Without antialiasing a crop pixel is one bilinear (or nearest) sample, TensorFlow's
``crop_and_resize`` exactly: reducing a box by more than 2x skips image pixels, so that fine
patterns alias (stripes become flat or moire). With it, a crop pixel whose footprint spans
``s`` image pixels along an axis (``s > 1``: the distance between its sample and the next) is
the mean of ``k = ceil(s)`` samples (at most ``MAX_FACTOR``) evenly spread over the footprint
along that axis, a box filter over the crop pixel like OpenCV's ``INTER_AREA``. The footprints
of the first and last crop pixels stop at the box's corner samples (the half beyond them is
left out), so that an antialiased crop sees no more of the image than the exact one. Axes that
are not reduced keep their single sample: a box that is not reduced anywhere gives
crop_and_resize's crop bit for bit.
"""
import math

import numpy as np

import roiops

MAX_FACTOR = 16
STEP_TOLERANCE = 1e-3  # pixels
FLOAT_CROP_BYTES = 3 * 4  # per crop pixel: float32 RGB


def crop_boxes(pixels, boxes, size, *, method, extrapolation_value, antialias=False,
               call_bytes=64 * 2 ** 20):
    """float32 crops ``[n, h, w, 3]`` of the crop_and_resize ``boxes`` ``[n, 4]`` (float32)
    in the ``[H, W, 3]`` image ``pixels``."""
    options = {"method": method, "extrapolation_value": extrapolation_value}
    if not antialias:
        return _crop(pixels, boxes, size, options)
    height, width = pixels.shape[:2]
    factors = [(factor(box[0], box[2], height, size[0]), factor(box[1], box[3], width, size[1]))
               for box in boxes]
    crops = np.empty((len(boxes), *size, 3), np.float32)
    for ky, kx in sorted(set(factors)):
        chosen = np.array([k == (ky, kx) for k in factors])
        spread = np.array([_spread(box, ky, kx, size) for box in boxes[chosen]], np.float32)
        dense = (size[0] * ky, size[1] * kx)
        step = max(1, call_bytes // (dense[0] * dense[1] * FLOAT_CROP_BYTES))
        indices = np.flatnonzero(chosen)
        rows, columns = _weights(ky, size[0]), _weights(kx, size[1])
        for start in range(0, len(indices), step):
            part = _crop(pixels, spread[start:start + step], dense, options)
            crops[indices[start:start + step]] = _mean(part, rows, columns)
    return crops


def _weights(k, count):
    """``[count, k]``: 1 for the samples of each crop pixel that lie between the box's corner
    samples, 0 for those beyond them (half of the first and last pixels' footprints)."""
    if count == 1 or k == 1:
        return np.ones((count, k))
    offsets = np.arange(count)[:, None] - 0.5 + (np.arange(k)[None, :] + 0.5) / k
    return ((offsets >= -1e-9) & (offsets <= count - 1 + 1e-9)).astype(np.float64)


def _mean(samples, rows, columns):
    """The weighted mean of each crop pixel's ``ky x kx`` samples (float32)."""
    count, (height, ky), (width, kx) = len(samples), rows.shape, columns.shape
    grouped = samples.reshape(count, height, ky, width, kx, 3)
    total = np.einsum("nyaxbc,ya,xb->nyxc", grouped, rows, columns)
    return (total / np.multiply.outer(rows.sum(1), columns.sum(1))[..., None]).astype(
        np.float32)


def _crop(pixels, boxes, size, options):
    return roiops.crop_and_resize(pixels[None], boxes, np.zeros(len(boxes), np.int64), size,
                                  **options)


def factor(start, end, image_size, crop_size):
    """Samples per crop pixel along an axis: the image pixels its footprint spans, rounded
    up, between 1 and ``MAX_FACTOR`` (a step a little over a whole number of pixels, from the
    float32 box, counts as that number)."""
    span = abs(float(end) - float(start)) * (image_size - 1)
    step = span / (crop_size - 1) if crop_size > 1 else span
    return max(1, min(MAX_FACTOR, math.ceil(step - STEP_TOLERANCE)))


def _spread(box, ky, kx, size):
    """The crop_and_resize box whose ``size * k`` samples are the ``k`` samples of each crop
    pixel, centred on its footprint (the box unchanged along an axis with ``k = 1``)."""
    y1, x1, y2, x2 = (float(v) for v in box)
    y1, y2 = _spread_axis(y1, y2, ky, size[0])
    x1, x2 = _spread_axis(x1, x2, kx, size[1])
    return y1, x1, y2, x2


def _spread_axis(start, end, k, count):
    if k == 1:
        return start, end
    if count == 1:  # the one crop pixel's footprint is the whole span
        step = end - start
        return start + step / (2 * k), end - step / (2 * k)
    step = (end - start) / (count - 1)
    return start - step / 2 + step / (2 * k), end + step / 2 - step / (2 * k)


def dense_bytes(size, antialias):
    """The most float32 bytes one crop's samples take (``MAX_FACTOR`` squared times the crop
    with antialiasing)."""
    factor_area = MAX_FACTOR ** 2 if antialias else 1
    return size[0] * size[1] * FLOAT_CROP_BYTES * factor_area
