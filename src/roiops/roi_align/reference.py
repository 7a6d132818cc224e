"""The plain reference of roi_align and its gradients: slow, obviously correct.

Scalar Python loops over NumPy scalars, meant for tiny shapes in tests (and for users who want
to see the arithmetic spelled out); the Numba and Triton kernels are tested against it. It is
written from docs/ (docs/torchvision.md, docs/mindspore.md, docs/arithmetic.md and
docs/decisions.md), independently of the kernels, and is not imported by ``import roiops``::

    from roiops.roi_align import reference
    reference.roi_align(features, rois, (7, 7), 0.25, 2, aligned=True, F=np.float64)

The arithmetic type ``F`` is a parameter of every function:

* ``np.float64``: the independent double-precision reference;
* ``np.float32``: reproduces the peers' float32 bits, because a NumPy float32 scalar operation
  is one IEEE binary32 operation rounded to nearest even (no FMA, no reassociation,
  docs/arithmetic.md#one-rounding-per-operation);
* ``np.float16``: the half arithmetic paths (torchvision / MindSpore roi_align in half).  A NumPy
  float16 scalar operation is computed in float32 and rounded to half, which is exactly what
  c10::Half and MindSpore's Float16 do (docs/torchvision.md#dtypes-and-half-precision,
  docs/mindspore.md#arithmetic).

Every literal and every integer is wrapped in ``F`` before it meets a value of type ``F`` and the
operation order of those pages is followed literally, one rounding per operation.

Decisions of docs/decisions.md that the reference follows:

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

import math

import numpy as np

from .._reference import ceil_int, floor_int, quiet

__all__ = [
    "roi_align",
    "roi_align_grad_input",
    "roi_align_grad_boxes",
    "roi_geometry",
]


# --------------------------------------------------------------------------------------------
# roi_align: geometry
# --------------------------------------------------------------------------------------------


class RoiGeometry:
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


def roi_geometry(roi, PH, PW, spatial_scale, sampling_ratio, aligned, convention,
                 roi_end_mode, F) -> RoiGeometry:
    """The geometry of one roi ``(batch, x1, y1, x2, y2)`` for a ``PH x PW`` output. Its grid
    sizes tell what a call costs (``PH * PW * gh * gw`` samples per channel). ValueError for
    an adaptive grid of a non-finite roi size, which has no grid."""
    g = RoiGeometry()
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
            g.gh, g.gw = ceil_int(qh), ceil_int(qw)
        else:
            g.gh, g.gw = floor_int(qh), floor_int(qw)
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
    lo = floor_int(c)
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


@quiet
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
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
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


@quiet
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
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
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


@quiet
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
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, aligned,
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
