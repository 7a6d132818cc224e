"""The plain reference of crop_and_resize and its gradients: slow, obviously correct.

Scalar Python loops over NumPy scalars, meant for tiny shapes in tests (and for users who want
to see the arithmetic spelled out); the Numba and Triton kernels are tested against it. It is
written from docs/ (docs/tensorflow.md, docs/mindspore.md, docs/arithmetic.md and
docs/decisions.md), independently of the kernels, and is not imported by ``import roiops``::

    from roiops.crop_and_resize import reference
    reference.crop_and_resize(image, boxes, box_indices, (7, 7), F=np.float64)

The arithmetic type ``F`` is a parameter of every function:

* ``np.float64``: the independent double-precision reference;
* ``np.float32``: reproduces the peers' float32 bits, because a NumPy float32 scalar operation
  is one IEEE binary32 operation rounded to nearest even (no FMA, no reassociation,
  docs/arithmetic.md#one-rounding-per-operation).

Every literal and every integer is wrapped in ``F`` before it meets a value of type ``F`` and the
operation order of those pages is followed literally, one rounding per operation.

Decisions of docs/decisions.md that the reference follows:

* no flush-to-zero emulation (docs/decisions.md#flush-to-zero): tests avoid subnormals when
  comparing with TensorFlow;
* a sample coordinate that is NaN (from overflow) is out of range
  (docs/decisions.md#overflowing-box-arithmetic).
"""

from __future__ import annotations

import math

import numpy as np

from .._reference import ceil_int, floor_int, quiet

__all__ = [
    "crop_and_resize",
    "crop_and_resize_grad_image",
    "crop_and_resize_grad_boxes",
]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _roundf(c, F) -> int:
    """C ``roundf``: halves away from zero (docs/arithmetic.md#float-to-integer).
    ``k = floor(c)``, then ``+1`` if ``c - k >= 0.5`` (the subtraction is exact).  Not
    half-to-even, not ``floor(c + 0.5)``."""
    if c < F(0):
        return -_roundf(-c, F)
    k = floor_int(c)
    if c - F(k) >= F(0.5):
        k += 1
    return k


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else (hi if v > hi else v)


def _read_image(image, F) -> np.ndarray:
    """Image values converted to ``F`` first (C ``static_cast``; NumPy ``astype`` rounds
    int64/float64 to nearest even exactly like it), docs/tensorflow.md#image-values."""
    return np.asarray(image).astype(F)


# --------------------------------------------------------------------------------------------
# crop_and_resize: sample coordinates
# --------------------------------------------------------------------------------------------


def _crop_centre(c1, c2, size: int, F):
    """Crop size 1: the box centre ``0.5 * (c1 + c2) * (size - 1)``
    (docs/tensorflow.md#sample-coordinates).

    The sum ``c1 + c2`` is an ``F`` addition; both products are done in double (TF's ``0.5`` is a
    double literal, the products are exact for float32 operands) and rounded once to ``F``."""
    s = c1 + c2
    return F(np.float64(0.5) * np.float64(s) * np.float64(size - 1))


def _crop_coords_forward(c1, c2, size: int, crop: int, F) -> list:
    """Forward / GradImage sample coordinates along one axis
    (docs/tensorflow.md#sample-coordinates, docs/mindspore.md#cropandresize-coordinates):
    ``scale = ((c2 - c1) * (size - 1)) / (crop - 1)`` (product first),
    ``in(i) = c1 * (size - 1) + i * scale``."""
    if crop == 1:
        return [_crop_centre(c1, c2, size, F)]
    m = F(size - 1)
    scale = ((c2 - c1) * m) / F(crop - 1)
    base = c1 * m
    return [base + F(i) * scale for i in range(crop)]


def _crop_coords_gradboxes(c1, c2, size: int, crop: int, F):
    """GradBoxes coordinates (docs/tensorflow.md#box-gradient): ``r = (size - 1) / (crop - 1)``
    first, then ``scale = (c2 - c1) * r``.  Returns ``(coords, r)`` (``r = 0`` for crop 1)."""
    if crop == 1:
        return [_crop_centre(c1, c2, size, F)], F(0)
    m = F(size - 1)
    r = m / F(crop - 1)
    scale = (c2 - c1) * r
    base = c1 * m
    return [base + F(i) * scale for i in range(crop)], r


def _crop_valid(c, size: int, F) -> bool:
    """Valid iff ``0 <= c <= size - 1`` (strict outside test; -0.0 valid; NaN invalid,
    docs/decisions.md#overflowing-box-arithmetic)."""
    return bool(c >= F(0)) and bool(c <= F(size - 1))


def _v2_window(c1, c2, size: int, F):
    """bilinear_v2 integer window (docs/mindspore.md#bilinear_v2 step 1): ``trunc(c * size)``
    with ``size``, not ``size - 1``; returns ``(start, extent)``.  Products beyond 2^62 are
    clamped there (roiops uses 64-bit indices, docs/decisions.md#bilinear_v2-window-overflow;
    such windows lie far outside)."""

    def tr(v):
        v = float(v)
        if math.isnan(v):
            raise ValueError("non-finite bilinear_v2 window")
        lim = float(2**62)
        v = max(-lim, min(lim, v))
        return int(math.trunc(v))

    a = tr(c1 * F(size))
    b = tr(c2 * F(size))
    n = b - a + 1
    return a, (n if n > 1 else 1)


def _v2_axis(i: int, start: int, extent: int, crop: int, size: int, F):
    """bilinear_v2 along one axis (docs/mindspore.md#bilinear_v2 steps 2-4): half-pixel centre
    ``p = ((i + 0.5) * (extent / crop)) - 0.5``, window indices clamped to the window, the
    weight not clamped, source indices clamped to the image.  Returns (lo, hi, weight)."""
    p = ((F(i) + F(0.5)) * (F(extent) / F(crop))) - F(0.5)
    lo = _clamp(floor_int(p), 0, extent - 1)
    hi = _clamp(ceil_int(p), 0, extent - 1)
    w = p - F(lo)
    return _clamp(start + lo, 0, size - 1), _clamp(start + hi, 0, size - 1), w


# --------------------------------------------------------------------------------------------
# crop_and_resize forward
# --------------------------------------------------------------------------------------------


@quiet
def crop_and_resize(image, boxes, box_indices, crop_size, method="bilinear",
                    extrapolation_value=0.0, F=np.float32):
    """``CropAndResize`` forward, NHWC.

    image ``[B,H,W,D]`` of any dtype (read as ``F(value)``), boxes ``[N,4]`` normalized
    ``[y1, x1, y2, x2]``, ``box_indices [N]``, ``crop_size (ch, cw)``.  Output ``[N,ch,cw,D]``
    of dtype ``F``.

    * "bilinear" / "nearest": docs/tensorflow.md#forward = docs/mindspore.md#bilinear-and-nearest:
      lerp ``a + (b - a) * w`` twice (x first, then y); nearest with C ``roundf``; a sample
      strictly outside ``[0, H-1] x [0, W-1]`` (or NaN) gets ``extrapolation_value``.
    * "bilinear_v2": docs/mindspore.md#bilinear_v2: integer pixel window, half-pixel centres, edge
      clamps, four-term sum ``((A + B) + C) + D``; no extrapolation at all.
    """
    img = _read_image(image, F)
    boxes = np.asarray(boxes)
    bidx = np.asarray(box_indices)
    _, H, W, D = img.shape
    ch, cw = int(crop_size[0]), int(crop_size[1])
    N = boxes.shape[0]
    out = np.zeros((N, ch, cw, D), dtype=F)
    ext = F(np.float32(extrapolation_value)) if F is not np.float64 else F(extrapolation_value)
    for n in range(N):
        y1, x1, y2, x2 = (F(v) for v in boxes[n])
        b = int(bidx[n])
        if method == "bilinear_v2":
            ys, hh = _v2_window(y1, y2, H, F)
            xs, ww = _v2_window(x1, x2, W, F)
            for py in range(ch):
                yt, yb, yl = _v2_axis(py, ys, hh, ch, H, F)
                for px in range(cw):
                    xl_, xr, xl = _v2_axis(px, xs, ww, cw, W, F)
                    for d in range(D):
                        a = (img[b, yt, xl_, d] * (F(1) - yl)) * (F(1) - xl)
                        bq = (img[b, yb, xr, d] * yl) * xl
                        cq = (img[b, yt, xr, d] * (F(1) - yl)) * xl
                        dq = (img[b, yb, xl_, d] * yl) * (F(1) - xl)
                        out[n, py, px, d] = ((a + bq) + cq) + dq
            continue
        ycs = _crop_coords_forward(y1, y2, H, ch, F)
        xcs = _crop_coords_forward(x1, x2, W, cw, F)
        for py, cy in enumerate(ycs):
            for px, cx in enumerate(xcs):
                if not (_crop_valid(cy, H, F) and _crop_valid(cx, W, F)):
                    out[n, py, px, :] = ext
                    continue
                if method == "nearest":
                    iy, ix = _roundf(cy, F), _roundf(cx, F)
                    out[n, py, px, :] = img[b, iy, ix, :]
                    continue
                if method != "bilinear":
                    raise ValueError(f"unknown method {method!r}")
                t, bo = floor_int(cy), ceil_int(cy)
                l, r = floor_int(cx), ceil_int(cx)
                ly = cy - F(t)
                lx = cx - F(l)
                for d in range(D):
                    tl, tr_ = img[b, t, l, d], img[b, t, r, d]
                    bl, br = img[b, bo, l, d], img[b, bo, r, d]
                    top = tl + (tr_ - tl) * lx
                    bot = bl + (br - bl) * lx
                    out[n, py, px, d] = top + (bot - top) * ly
    return out


# --------------------------------------------------------------------------------------------
# crop_and_resize gradients
# --------------------------------------------------------------------------------------------


def _acc_add(out, idx, w, A):
    """One ``+=`` into an accumulator of dtype ``A`` (docs/tensorflow.md#accumulation-in-t): the
    addend is rounded to ``A`` first (half: RNE from float32; float64: exact widening), then one
    ``A`` addition."""
    out[idx] = out[idx] + A(w)


@quiet
def crop_and_resize_grad_image(grads, boxes, box_indices, image_shape, method="bilinear",
                               accumulate=np.float32, F=np.float32):
    """``CropAndResizeGradImage`` (docs/tensorflow.md#image-gradient,
    docs/mindspore.md#cropandresizegradimage).

    Sequential over boxes, rows, columns, channels; weights formed in ``F``; each ``+=`` rounds
    the addend to ``accumulate`` and adds in ``accumulate`` (float16: half add; float64: float64
    sum of the ``F`` weights).  Output ``[B,H,W,D]`` of dtype ``accumulate``.

    * bilinear: ``dtop = (1-ly)*g``; ``[t,l] += (1-lx)*dtop``; ``[t,r] += lx*dtop``;
      ``dbot = ly*g``; ``[bo,l] += (1-lx)*dbot``; ``[bo,r] += lx*dbot``.
    * nearest: ``[roundf(y), roundf(x)] += g``.
    * bilinear_v2 (docs/arithmetic.md#bilinear_v2-image-gradient, no peer): the true adjoint of
      the v2 forward; each output sample scatters ``(g*wy)*wx`` to its four clamped source
      pixels in the forward's term order A ``(t,l)``, B ``(b,r)``, C ``(t,r)``, D ``(b,l)``.
    """
    A = accumulate
    g_all = np.asarray(grads).astype(F)
    boxes = np.asarray(boxes)
    bidx = np.asarray(box_indices)
    B, H, W, D = (int(v) for v in image_shape)
    N, ch, cw, _ = g_all.shape
    out = np.zeros((B, H, W, D), dtype=A)
    for n in range(N):
        y1, x1, y2, x2 = (F(v) for v in boxes[n])
        b = int(bidx[n])
        if method == "bilinear_v2":
            ys, hh = _v2_window(y1, y2, H, F)
            xs, ww = _v2_window(x1, x2, W, F)
            for py in range(ch):
                yt, yb, yl = _v2_axis(py, ys, hh, ch, H, F)
                for px in range(cw):
                    xl_, xr, xl = _v2_axis(px, xs, ww, cw, W, F)
                    for d in range(D):
                        g = g_all[n, py, px, d]
                        _acc_add(out, (b, yt, xl_, d), (g * (F(1) - yl)) * (F(1) - xl), A)
                        _acc_add(out, (b, yb, xr, d), (g * yl) * xl, A)
                        _acc_add(out, (b, yt, xr, d), (g * (F(1) - yl)) * xl, A)
                        _acc_add(out, (b, yb, xl_, d), (g * yl) * (F(1) - xl), A)
            continue
        ycs = _crop_coords_forward(y1, y2, H, ch, F)
        xcs = _crop_coords_forward(x1, x2, W, cw, F)
        for py, cy in enumerate(ycs):
            if not _crop_valid(cy, H, F):
                continue
            for px, cx in enumerate(xcs):
                if not _crop_valid(cx, W, F):
                    continue
                if method == "nearest":
                    iy, ix = _roundf(cy, F), _roundf(cx, F)
                    for d in range(D):
                        _acc_add(out, (b, iy, ix, d), g_all[n, py, px, d], A)
                    continue
                if method != "bilinear":
                    raise ValueError(f"unknown method {method!r}")
                t, bo = floor_int(cy), ceil_int(cy)
                l, r = floor_int(cx), ceil_int(cx)
                ly = cy - F(t)
                lx = cx - F(l)
                for d in range(D):
                    g = g_all[n, py, px, d]
                    dtop = (F(1) - ly) * g
                    _acc_add(out, (b, t, l, d), (F(1) - lx) * dtop, A)
                    _acc_add(out, (b, t, r, d), lx * dtop, A)
                    dbot = ly * g
                    _acc_add(out, (b, bo, l, d), (F(1) - lx) * dbot, A)
                    _acc_add(out, (b, bo, r, d), lx * dbot, A)
    return out


@quiet
def crop_and_resize_grad_boxes(grads, image, boxes, box_indices, crop1_rule="tensorflow",
                               F=np.float32):
    """``CropAndResizeGradBoxes`` (docs/tensorflow.md#box-gradient,
    docs/mindspore.md#cropandresizegradboxes).

    Always the bilinear derivative.  Its own coordinate recipe ``r = (H-1)/(ch-1)``,
    ``scale = (y2-y1)*r`` (can differ by an ulp from the forward, even in validity).  Per valid
    sample and channel, in (y, x, d) order, four independent sequential ``F`` sums:

    * ``gy = ((1-lx)*(BL-TL) + lx*(BR-TR)) * g``, ``gx = ((1-ly)*(TR-TL) + ly*(BR-BL)) * g``;
    * crop > 1: ``dy1 += gy*((H-1) - y*r)``, ``dy2 += gy*(y*r)`` (likewise x);
    * crop 1, ``crop1_rule="tensorflow"``: ``acc = F(double(acc) + (double(gy)*0.5)*double(H-1))``;
      ``crop1_rule="mindspore"``: ``acc += (gy*0.5)*(H-1)`` in ``F``.

    Output ``[N, 4]`` = ``[dy1, dx1, dy2, dx2]`` of dtype ``F``.
    """
    g_all = np.asarray(grads).astype(F)
    img = _read_image(image, F)
    boxes = np.asarray(boxes)
    bidx = np.asarray(box_indices)
    _, H, W, D = img.shape
    N, ch, cw, _ = g_all.shape
    out = np.zeros((N, 4), dtype=F)
    Hm, Wm = F(H - 1), F(W - 1)

    def crop1_add(acc, gv, m):
        if crop1_rule == "tensorflow":
            return F(np.float64(acc) + (np.float64(gv) * np.float64(0.5)) * np.float64(m))
        if crop1_rule == "mindspore":
            return acc + (gv * F(0.5)) * F(m)
        raise ValueError(f"unknown crop1_rule {crop1_rule!r}")

    for n in range(N):
        y1, x1, y2, x2 = (F(v) for v in boxes[n])
        b = int(bidx[n])
        ycs, rh = _crop_coords_gradboxes(y1, y2, H, ch, F)
        xcs, rw = _crop_coords_gradboxes(x1, x2, W, cw, F)
        a0 = a1 = a2 = a3 = F(0)
        for py, cy in enumerate(ycs):
            if not _crop_valid(cy, H, F):
                continue
            for px, cx in enumerate(xcs):
                if not _crop_valid(cx, W, F):
                    continue
                t, bo = floor_int(cy), ceil_int(cy)
                l, r = floor_int(cx), ceil_int(cx)
                ly = cy - F(t)
                lx = cx - F(l)
                for d in range(D):
                    g = g_all[n, py, px, d]
                    tl, tr_ = img[b, t, l, d], img[b, t, r, d]
                    bl, br = img[b, bo, l, d], img[b, bo, r, d]
                    gy = ((F(1) - lx) * (bl - tl)) + (lx * (br - tr_))
                    gx = ((F(1) - ly) * (tr_ - tl)) + (ly * (br - bl))
                    gy = gy * g
                    gx = gx * g
                    if ch > 1:
                        a0 = a0 + gy * (Hm - F(py) * rh)
                        a2 = a2 + gy * (F(py) * rh)
                    else:
                        a0 = crop1_add(a0, gy, H - 1)
                        a2 = crop1_add(a2, gy, H - 1)
                    if cw > 1:
                        a1 = a1 + gx * (Wm - F(px) * rw)
                        a3 = a3 + gx * (F(px) * rw)
                    else:
                        a1 = crop1_add(a1, gx, W - 1)
                        a3 = crop1_add(a3, gx, W - 1)
        out[n] = (a0, a1, a2, a3)
    return out
