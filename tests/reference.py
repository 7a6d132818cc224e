"""Plain-loop reference implementations of every roiops operator.

It follows docs/: the rules it implements are those pages (docs/arithmetic.md,
docs/tensorflow.md, docs/mindspore.md, docs/torchvision.md and docs/decisions.md), written out
independently of the Numba kernels.  Speed is irrelevant: these are scalar Python loops over
NumPy scalars, meant for tiny shapes in tests.

The arithmetic type ``F`` is a parameter of every function:

* ``np.float64``: the independent double-precision reference;
* ``np.float32``: reproduces the peers' float32 bits, because a NumPy float32 scalar operation is
  one IEEE binary32 operation rounded to nearest even (no FMA, no reassociation);
* ``np.float16``: the half arithmetic paths (torchvision / MindSpore roi_align in half).  A NumPy
  float16 scalar operation is computed in float32 and rounded to half, which is exactly what
  c10::Half and MindSpore's Float16 do (docs/torchvision.md#dtypes-and-half-precision,
  docs/mindspore.md#arithmetic).

Every literal and every integer is wrapped in ``F`` before it meets a value of type ``F`` and the
operation order of those pages is followed literally, one rounding per operation.

Decisions of docs/decisions.md that the reference follows:

* no flush-to-zero emulation (docs/decisions.md#flush-to-zero): tests avoid subnormals when
  comparing with TensorFlow;
* invalid samples are never read (docs/decisions.md#invalid-samples-are-not-read);
* a sample coordinate that is NaN (from overflow) is out of range
  (docs/decisions.md#overflowing-box-arithmetic);
* MindSpore's skip rule is not reproduced: such rois are computed like any other
  (docs/decisions.md#mindspore-skip-rule);
* MindSpore's empty adaptive grids give 0/0 = NaN in the forward and no gradient
  (docs/decisions.md#mindspore-nan-bins);
* torchvision's ``std::vector`` error (one grid side negative) gives zeros
  (docs/decisions.md#reversed-aligned-boxes).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "crop_and_resize",
    "crop_and_resize_grad_image",
    "crop_and_resize_grad_boxes",
    "roi_align",
    "roi_align_grad_input",
    "roi_align_grad_boxes",
]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _floor(v) -> int:
    return int(math.floor(float(v)))


def _ceil(v) -> int:
    return int(math.ceil(float(v)))


def _roundf(c, F) -> int:
    """C ``roundf``: halves away from zero (docs/arithmetic.md#float-to-integer).
    ``k = floor(c)``, then ``+1`` if ``c - k >= 0.5`` (the subtraction is exact).  Not
    half-to-even, not ``floor(c + 0.5)``."""
    if c < F(0):
        return -_roundf(-c, F)
    k = _floor(c)
    if c - F(k) >= F(0.5):
        k += 1
    return k


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else (hi if v > hi else v)


def _quiet(fn):
    """Run ``fn`` with NumPy floating-point warnings silenced (inf/NaN arithmetic is part of the
    specified behaviour, not an error)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


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
    lo = _clamp(_floor(p), 0, extent - 1)
    hi = _clamp(_ceil(p), 0, extent - 1)
    w = p - F(lo)
    return _clamp(start + lo, 0, size - 1), _clamp(start + hi, 0, size - 1), w


# --------------------------------------------------------------------------------------------
# crop_and_resize forward
# --------------------------------------------------------------------------------------------


@_quiet
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
                t, bo = _floor(cy), _ceil(cy)
                l, r = _floor(cx), _ceil(cx)
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


@_quiet
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
                t, bo = _floor(cy), _ceil(cy)
                l, r = _floor(cx), _ceil(cx)
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


@_quiet
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
                t, bo = _floor(cy), _ceil(cy)
                l, r = _floor(cx), _ceil(cx)
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


# --------------------------------------------------------------------------------------------
# roi_align: geometry
# --------------------------------------------------------------------------------------------


class _RoiGeom:
    """Per-roi geometry of docs/torchvision.md#geometry / docs/mindspore.md#roialign-geometry.

    Attributes: ``b`` batch index, ``y0, x0`` the (shifted) start, ``bin_h, bin_w``, ``gh, gw``
    the sample grid, ``cnt_fwd`` (forward divisor), ``cnt_bwd`` (backward divisor),
    ``clamp_h, clamp_w`` (the minimum size rule fired: the size no longer depends on the box),
    ``s`` the scale in ``F``."""


def _roi_batch_index(v, convention, F) -> int:
    if convention == "torchvision":
        return int(math.trunc(float(F(v))))  # C cast truncates toward zero
    # MindSpore: rint(F32(v) + 7e-5f) in float32, half to even, whatever F is
    return int(np.rint(np.float32(v) + np.float32(7e-5)))


def _roi_geometry(roi, PH, PW, spatial_scale, sampling_ratio, aligned, convention,
                  roi_end_mode, F) -> _RoiGeom:
    g = _RoiGeom()
    g.b = _roi_batch_index(roi[0], convention, F)
    x1, y1, x2, y2 = (F(v) for v in roi[1:5])
    # the scale (a double) converted to the arithmetic type once: directly for float64
    # (torchvision's double kernel), through float32 otherwise (half: double -> float -> half)
    s = F(spatial_scale) if F is np.float64 else F(np.float32(spatial_scale))
    g.s = s
    if convention == "torchvision":
        off = F(0.5) if aligned else F(0)
        xs, ys = x1 * s - off, y1 * s - off
        xe, ye = x2 * s - off, y2 * s - off
        rw, rh = xe - xs, ye - ys
        g.clamp_w = g.clamp_h = False
        if not aligned:
            if rw < F(1):
                rw, g.clamp_w = F(1), True
            if rh < F(1):
                rh, g.clamp_h = F(1), True
    elif convention == "mindspore":
        if aligned:
            raise ValueError("aligned=True is not an option of the mindspore convention")
        mode = F(roi_end_mode)
        xs, ys = x1 * s, y1 * s
        xe, ye = (x2 + mode) * s, (y2 + mode) * s
        rw, rh = xe - xs, ye - ys
        g.clamp_w = g.clamp_h = False
        if roi_end_mode == 0:
            if not (rw > F(1)):  # NaN also becomes 1
                rw, g.clamp_w = F(1), True
            if not (rh > F(1)):
                rh, g.clamp_h = F(1), True
    else:
        raise ValueError(f"unknown convention {convention!r}")
    g.x0, g.y0 = xs, ys
    g.bin_h = rh / F(PH)
    g.bin_w = rw / F(PW)
    if sampling_ratio > 0:
        g.gh = g.gw = int(sampling_ratio)
    else:
        qh, qw = rh / F(PH), rw / F(PW)
        if not (np.isfinite(qh) and np.isfinite(qw)):
            raise ValueError("adaptive grid of a non-finite roi size")
        if convention == "torchvision":
            g.gh, g.gw = _ceil(qh), _ceil(qw)
        else:
            g.gh, g.gw = _floor(qh), _floor(qw)
    if convention == "torchvision":
        g.cnt_fwd = F(max(g.gh * g.gw, 1))
        g.cnt_bwd = F(g.gh * g.gw)
    else:
        g.cnt_fwd = g.cnt_bwd = F(g.gh) * F(g.gw)
    return g


def _roi_sample_coords(start, p: int, bin_, grid: int, F) -> list:
    """``(start + p*bin) + ((i + 0.5)*bin)/grid`` for ``i`` in ``range(grid)``
    (docs/torchvision.md#sample-coordinates; docs/mindspore.md#roialign-samples has the same
    association)."""
    base = start + F(p) * bin_
    return [base + (F(np.float32(i + 0.5)) * bin_) / F(grid) for i in range(max(grid, 0))]


def _roi_axis(c, size: int, F):
    """Bilinear along one axis (docs/torchvision.md#bilinear-weights,
    docs/mindspore.md#roialign-samples): caller
    has checked ``-1 <= c <= size``.  Returns ``(lo, hi, l, h, moving)`` where ``l, h`` are the
    weights of ``hi, lo`` and ``moving`` is False where the value does not depend on ``c``
    (clamped at ``c <= 0`` or pinned at ``size - 1``)."""
    moving = True
    if c <= F(0):
        c, moving = F(0), False
    lo = _floor(c)
    if lo >= size - 1:
        lo = hi = size - 1
        c, moving = F(size - 1), False
    else:
        hi = lo + 1
    lw = c - F(lo)
    hw = F(1) - lw
    return lo, hi, lw, hw, moving


def _roi_valid(y, x, H: int, W: int, F) -> bool:
    """Valid iff ``-1 <= y <= H`` and ``-1 <= x <= W`` (inclusive; NaN invalid,
    docs/decisions.md#overflowing-box-arithmetic)."""
    return (bool(y >= F(-1)) and bool(y <= F(H)) and bool(x >= F(-1)) and bool(x <= F(W)))


def _opts(output_size):
    if isinstance(output_size, (int, np.integer)):
        return int(output_size), int(output_size)
    return int(output_size[0]), int(output_size[1])


# --------------------------------------------------------------------------------------------
# roi_align forward and gradients
# --------------------------------------------------------------------------------------------


@_quiet
def roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              convention="torchvision", roi_end_mode=1, F=np.float32):
    """roi_align forward (docs/torchvision.md, docs/mindspore.md#roialign).

    input ``[N,C,H,W]``, rois ``[K,5]`` = ``(batch, x1, y1, x2, y2)``; output ``[K,C,PH,PW]`` of
    dtype ``F``.  Per output element: ``acc = +0``; for each sample (iy-major), if valid,
    ``acc += ((w1*v1 + w2*v2) + w3*v3) + w4*v4``; then ``out = acc / count``.  Invalid samples
    are not read (docs/decisions.md#invalid-samples-are-not-read).  torchvision: truncated batch
    index, ``off = 0.5`` when aligned, minimum size 1 when not aligned, ceil grid,
    ``count = max(gh*gw, 1)``.  MindSpore: batch index ``rint(v + 7e-5)``, end
    ``(x2 + roi_end_mode) * scale``, minimum size 1 for mode 0, floor grid,
    ``count = F(gh)*F(gw)`` (an empty grid gives 0/0 = NaN, docs/decisions.md#mindspore-nan-bins).
    ``spatial_scale`` is converted to ``F`` once: directly for float64 (torchvision's double
    kernel), through float32 otherwise."""
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    K = rois.shape[0]
    out = np.zeros((K, C, PH, PW), dtype=F)
    for k in range(K):
        g = _roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
                          convention, roi_end_mode, F)
        for ph in range(PH):
            ycs = _roi_sample_coords(g.y0, ph, g.bin_h, g.gh, F)
            for pw in range(PW):
                xcs = _roi_sample_coords(g.x0, pw, g.bin_w, g.gw, F)
                samples = []
                for yc in ycs:
                    for xc in xcs:
                        if not _roi_valid(yc, xc, H, W, F):
                            samples.append(None)
                            continue
                        ylo, yhi, ly, hy, _ = _roi_axis(yc, H, F)
                        xlo, xhi, lx, hx, _ = _roi_axis(xc, W, F)
                        samples.append((ylo, yhi, xlo, xhi,
                                        hy * hx, hy * lx, ly * hx, ly * lx))
                for c in range(C):
                    acc = F(0)
                    for smp in samples:
                        if smp is None:
                            continue
                        ylo, yhi, xlo, xhi, w1, w2, w3, w4 = smp
                        v = x[g.b, c]
                        t = (((w1 * v[ylo, xlo]) + (w2 * v[ylo, xhi]))
                             + (w3 * v[yhi, xlo])) + (w4 * v[yhi, xhi])
                        acc = acc + t
                    out[k, c, ph, pw] = acc / g.cnt_fwd
    return out


@_quiet
def roi_align_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                         sampling_ratio=-1, aligned=False, convention="torchvision",
                         roi_end_mode=1, F=np.float32):
    """roi_align gradient w.r.t. the input (docs/torchvision.md#backward,
    docs/mindspore.md#roialigngrad).

    Sequential over rois, channels, bins (ph, pw), samples (iy, ix); each valid sample adds
    ``(g * w_k) / count`` to its four corners in order 1..4, every add in ``F`` (half adds for
    float16).  ``count`` is ``F(gh*gw)`` (torchvision) or ``F(gh)*F(gw)`` (MindSpore); the
    geometry follows ``convention`` and ``roi_end_mode`` as given (MindSpore's own ROIAlignGrad
    corresponds to ``roi_end_mode=1``).  Output ``input_shape`` of dtype ``F``."""
    gr = np.asarray(grads).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    N, C, H, W = (int(v) for v in input_shape)
    K = rois.shape[0]
    out = np.zeros((N, C, H, W), dtype=F)
    for k in range(K):
        g = _roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
                          convention, roi_end_mode, F)
        for c in range(C):
            plane = out[g.b, c]
            for ph in range(PH):
                ycs = _roi_sample_coords(g.y0, ph, g.bin_h, g.gh, F)
                for pw in range(PW):
                    xcs = _roi_sample_coords(g.x0, pw, g.bin_w, g.gw, F)
                    gv = gr[k, c, ph, pw]
                    for yc in ycs:
                        for xc in xcs:
                            if not _roi_valid(yc, xc, H, W, F):
                                continue
                            ylo, yhi, ly, hy, _ = _roi_axis(yc, H, F)
                            xlo, xhi, lx, hx, _ = _roi_axis(xc, W, F)
                            cnt = g.cnt_bwd
                            plane[ylo, xlo] = plane[ylo, xlo] + (gv * (hy * hx)) / cnt
                            plane[ylo, xhi] = plane[ylo, xhi] + (gv * (hy * lx)) / cnt
                            plane[yhi, xlo] = plane[yhi, xlo] + (gv * (ly * hx)) / cnt
                            plane[yhi, xhi] = plane[yhi, xhi] + (gv * (ly * lx)) / cnt
    return out


@_quiet
def roi_align_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                         aligned=False, convention="torchvision", roi_end_mode=1, F=np.float64):
    """roi_align gradient w.r.t. the box coordinates (docs/arithmetic.md#roi_align-box-gradient;
    no peer).

    Output ``[K, 5]``: column 0 (batch index) is zero, columns 1..4 are d/d(x1, y1, x2, y2).

    Derivation (y shown; x is the same with W, PW, x1, x2).  With the grid size ``gh`` and the
    count held fixed (they are piecewise constant in the box), a sample row is

        y = y_start + ph*bin_h + (iy + 0.5)*bin_h/gh = y_start + a*size_h,
        a = (ph + (iy + 0.5)/gh) / PH,

    where ``y_start = y1*s - off`` (torchvision) or ``y1*s`` (MindSpore) and
    ``size_h = (y2 - y1)*s`` (torchvision) or ``(y2 + mode - y1)*s`` (MindSpore).  Hence
    ``dy/dy1 = s*(1 - a)`` and ``dy/dy2 = s*a`` -- unless the minimum-size rule fired
    (torchvision not aligned, or MindSpore mode 0, size below 1): then ``size_h`` is the
    constant 1 and ``dy/dy1 = s``, ``dy/dy2 = 0``.

    The interpolated value of a valid sample, with ``ly = y - y_lo`` and the x weights fixed,
    ``val = (1-ly)*(hx*v1 + lx*v2) + ly*(hx*v3 + lx*v4)``, so
    ``dval/dy = hx*(v3 - v1) + lx*(v4 - v2)`` while ``y`` lies strictly inside the unclamped
    region; it is 0 where the forward is locally constant in y: ``y <= 0`` (clamped to 0),
    ``floor(y) >= H-1`` (pinned to H-1), or the sample invalid (outside [-1, H] x [-1, W]).
    ``hx, lx`` are the x weights after x's own clamping.  The forward output is
    ``out = sum(val)/count`` so

        d out/d y1 = sum over valid samples of dval/dy * dy/dy1 / count,

    and the box gradient is ``sum over (c, ph, pw) of grads * d out/d coord``.  An empty grid
    contributes nothing.  At the kinks (integer sample coordinates, the clamp boundaries) the
    one-sided derivative from the side the forward's ``floor`` picks is returned.

    Evaluation order (in ``F``): per roi, channel, bin, sample (iy-major),
    ``gyv = (g * dval/dy) / count``; ``acc_y1 += gyv * dy/dy1``; ``acc_y2 += gyv * dy/dy2``.
    """
    gr = np.asarray(grads).astype(F)
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    K = rois.shape[0]
    out = np.zeros((K, 5), dtype=F)
    for k in range(K):
        g = _roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
                          convention, roi_end_mode, F)
        s = g.s

        def factors(p, i, grid, P, clamped, s=s):  # s bound now: defined in the roi loop
            # d coord / d (c1, c2) for sample i of bin p
            if clamped:
                return s, F(0)
            a = (F(p) + F(np.float32(i + 0.5)) / F(grid)) / F(P)
            return s * (F(1) - a), s * a

        ax1 = ay1 = ax2 = ay2 = F(0)
        for c in range(C):
            v = x[g.b, c]
            for ph in range(PH):
                ycs = _roi_sample_coords(g.y0, ph, g.bin_h, g.gh, F)
                for pw in range(PW):
                    xcs = _roi_sample_coords(g.x0, pw, g.bin_w, g.gw, F)
                    gv = gr[k, c, ph, pw]
                    for iy, yc in enumerate(ycs):
                        for ix, xc in enumerate(xcs):
                            if not _roi_valid(yc, xc, H, W, F):
                                continue
                            ylo, yhi, ly, hy, ymov = _roi_axis(yc, H, F)
                            xlo, xhi, lx, hx, xmov = _roi_axis(xc, W, F)
                            if ymov:
                                dvy = (hx * (v[yhi, xlo] - v[ylo, xlo])
                                       + lx * (v[yhi, xhi] - v[ylo, xhi]))
                                gy = (gv * dvy) / g.cnt_bwd
                                f1, f2 = factors(ph, iy, g.gh, PH, g.clamp_h)
                                ay1 = ay1 + gy * f1
                                ay2 = ay2 + gy * f2
                            if xmov:
                                dvx = (hy * (v[ylo, xhi] - v[ylo, xlo])
                                       + ly * (v[yhi, xhi] - v[yhi, xlo]))
                                gx = (gv * dvx) / g.cnt_bwd
                                f1, f2 = factors(pw, ix, g.gw, PW, g.clamp_w)
                                ax1 = ax1 + gx * f1
                                ax2 = ax2 + gx * f2
        out[k, 1:] = (ax1, ay1, ax2, ay2)
    return out
