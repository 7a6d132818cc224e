"""The plain reference of rotated RoI Align and its gradients: slow, obviously correct.

Scalar Python loops over NumPy scalars for tiny shapes in tests, written from docs/rotated.md
independently of the kernels; not imported by ``import roiops``::

    from roiops.roi_align_rotated import reference
    reference.roi_align_rotated(features, rois, (7, 7), 0.25, 2, convention="mmcv")

``F`` is the arithmetic type: ``np.float64`` (the independent double reference) or
``np.float32`` (a NumPy float32 scalar operation is one binary32 operation rounded to
nearest, so it reproduces the frameworks' float32 kernels). Every literal and integer is
wrapped in ``F`` before it meets a value of type ``F``; the operation order is the one of
docs/rotated.md, one rounding per operation. Cosine and sine are the double-precision values
(``math.cos``) rounded to ``F``.

Decisions shared with roi_align (docs/decisions.md): samples outside the map are never read;
a NaN sample coordinate is outside the map.
"""

from __future__ import annotations

import math

import numpy as np

from .._reference import ceil_int, quiet
from .conventions import convention as _convention

__all__ = ["roi_align_rotated", "roi_align_rotated_grad_input",
           "roi_align_rotated_grad_boxes", "RotatedGeometry", "roi_geometry"]


class RotatedGeometry:
    """One roi's geometry (docs/rotated.md#geometry): batch index ``b``, centre ``cy, cx``,
    bin sizes ``bin_h, bin_w``, ``start_h, start_w`` (``-size/2``), ``cos, sin``, the grid
    ``gh, gw``, the divisors ``cnt_fwd, cnt_bwd``, whether the minimum size held an axis
    (``clamp_h, clamp_w``), the scale ``s`` and the angle's radians per unit ``dtheta``."""


def roi_geometry(roi, PH, PW, spatial_scale, sampling_ratio, geometry, F) -> RotatedGeometry:
    """The geometry of one roi ``(batch, cx, cy, w, h, angle)`` for a ``PH x PW`` output."""
    g = RotatedGeometry()
    g.b = int(math.trunc(float(roi[0])))
    cx, cy, w, h, angle = (F(v) for v in roi[1:6])
    s = F(spatial_scale) if F is np.float64 else F(np.float32(spatial_scale))
    g.s = s
    off = F(geometry.offset)
    g.cx, g.cy = cx * s - off, cy * s - off
    rw, rh = w * s, h * s
    if geometry.degrees:
        theta = F(float(angle) * math.pi / 180.0)
        g.dtheta = F(math.pi / 180.0)
    else:
        theta = angle
        g.dtheta = F(1)
    if geometry.angle_sign < 0:
        theta, g.dtheta = -theta, -g.dtheta
    g.cos, g.sin = F(math.cos(float(theta))), F(math.sin(float(theta)))
    g.clamp_w = g.clamp_h = False
    if geometry.min_size_one:
        if rw < F(1):
            rw, g.clamp_w = F(1), True
        if rh < F(1):
            rh, g.clamp_h = F(1), True
    g.bin_h, g.bin_w = rh / F(PH), rw / F(PW)
    if sampling_ratio > 0:
        g.gh = g.gw = int(sampling_ratio)
    else:
        qh, qw = rh / F(PH), rw / F(PW)
        if geometry.grid_in_float32:
            qh, qw = np.float32(qh), np.float32(qw)
        g.gh, g.gw = ceil_int(qh), ceil_int(qw)
    g.cnt_fwd = F(max(g.gh * g.gw, 1))
    g.cnt_bwd = F(g.gh * g.gw)
    g.start_h, g.start_w = -rh / F(2), -rw / F(2)
    return g


def _offsets(start, p, bin_, grid, F):
    """``(start + p*bin) + ((i + 0.5)*bin)/grid`` for ``i`` in ``range(grid)``."""
    base = start + F(p) * bin_
    return [base + (F(np.float32(i + 0.5)) * bin_) / F(grid) for i in range(max(grid, 0))]


def _axis(c, size, F):
    """Bilinear along one axis, ``c`` already inside ``[-1, size]``: ``(lo, hi, l, h,
    moving)``; ``moving`` is False where the value does not depend on ``c``."""
    moving = True
    if c < F(0):
        c, moving = F(0), False
    lo = int(c)
    if lo >= size - 1:
        lo = hi = size - 1
        c, moving = F(lo), False
    else:
        hi = lo + 1
    lw = c - F(lo)
    return lo, hi, lw, F(1) - lw, moving


def _samples(g, ph, pw, H, W, F):
    """Every sample of bin ``(ph, pw)`` in order (iy-major): ``None`` when outside the map,
    else ``(yy, xx, (y_lo, y_hi, ly, hy, y_moving), (x_lo, x_hi, lx, hx, x_moving))``."""
    result = []
    for yy in _offsets(g.start_h, ph, g.bin_h, g.gh, F):
        for xx in _offsets(g.start_w, pw, g.bin_w, g.gw, F):
            y = (yy * g.cos - xx * g.sin) + g.cy
            x = (yy * g.sin + xx * g.cos) + g.cx
            if not (y >= F(-1) and y <= F(H) and x >= F(-1) and x <= F(W)):
                result.append(None)
                continue
            result.append((yy, xx, _axis(y, H, F), _axis(x, W, F)))
    return result


def _opts(output_size):
    if isinstance(output_size, (int, np.integer)):
        return int(output_size), int(output_size)
    return int(output_size[0]), int(output_size[1])


@quiet
def roi_align_rotated(input, rois, output_size, spatial_scale=1.0, sampling_ratio=0,
                      aligned=True, clockwise=False, convention="detectron2", F=np.float32):
    """Forward: ``[K, C, PH, PW]`` of dtype ``F``; per bin ``acc += ((w1*v1 + w2*v2) + w3*v3)
    + w4*v4`` over the samples in the map, then ``acc / max(gh*gw, 1)``."""
    geometry = _convention(convention, aligned, clockwise).geometry
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    out = np.zeros((rois.shape[0], C, PH, PW), F)
    for k in range(rois.shape[0]):
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, geometry, F)
        for ph in range(PH):
            for pw in range(PW):
                samples = _samples(g, ph, pw, H, W, F)
                for c in range(C):
                    v = x[g.b, c]
                    acc = F(0)
                    for sample in samples:
                        if sample is None:
                            continue
                        (ylo, yhi, ly, hy, _), (xlo, xhi, lx, hx, _) = sample[2:]
                        acc = acc + ((((hy * hx) * v[ylo, xlo] + (hy * lx) * v[ylo, xhi])
                                      + (ly * hx) * v[yhi, xlo]) + (ly * lx) * v[yhi, xhi])
                    out[k, c, ph, pw] = acc / g.cnt_fwd
    return out


@quiet
def roi_align_rotated_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                                 sampling_ratio=0, aligned=True, clockwise=False,
                                 convention="detectron2", F=np.float32):
    """Input gradient, sequential over rois, channels, bins, samples: each sample in the map
    adds ``(g * w_i) / (gh*gw)`` to its corners ``i = 1..4`` in order."""
    geometry = _convention(convention, aligned, clockwise).geometry
    gr = np.asarray(grads).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    N, C, H, W = (int(v) for v in input_shape)
    out = np.zeros((N, C, H, W), F)
    for k in range(rois.shape[0]):
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, geometry, F)
        for c in range(C):
            plane = out[g.b, c]
            for ph in range(PH):
                for pw in range(PW):
                    gv = gr[k, c, ph, pw]
                    for sample in _samples(g, ph, pw, H, W, F):
                        if sample is None:
                            continue
                        (ylo, yhi, ly, hy, _), (xlo, xhi, lx, hx, _) = sample[2:]
                        for (r, q), wt in (((ylo, xlo), hy * hx), ((ylo, xhi), hy * lx),
                                           ((yhi, xlo), ly * hx), ((yhi, xhi), ly * lx)):
                            plane[r, q] = plane[r, q] + (gv * wt) / g.cnt_bwd
    return out


@quiet
def roi_align_rotated_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                                 sampling_ratio=0, aligned=True, clockwise=False,
                                 convention="detectron2", F=np.float64):
    """Box gradient ``[K, 6]``: d/d ``(batch, cx, cy, w, h, angle)``, column 0 zero
    (docs/rotated.md#box-gradient). The grid and the divisor are held fixed; a sample
    ``y = (yy*cos - xx*sin) + cy*s - off``, ``x = (yy*sin + xx*cos) + cx*s - off`` with
    ``yy = h*s*(a_y - 1/2)``, ``a_y = (ph + (iy + 0.5)/gh)/PH`` (``xx`` likewise), so

    - d/dcx: ``s * dv/dx``; d/dcy: ``s * dv/dy``;
    - d/dh: ``s*(a_y - 1/2) * (cos * dv/dy + sin * dv/dx)`` (0 when the minimum size held h);
    - d/dw: ``s*(a_x - 1/2) * (cos * dv/dx - sin * dv/dy)``;
    - d/dangle: ``dtheta * ((-yy*sin - xx*cos) * dv/dy + (yy*cos - xx*sin) * dv/dx)``;

    with ``dv/dy = hx*(v3 - v1) + lx*(v4 - v2)`` and ``dv/dx = hy*(v2 - v1) + ly*(v4 - v3)``,
    each zero where its coordinate is clamped at 0 or pinned at the last pixel."""
    geometry = _convention(convention, aligned, clockwise).geometry
    gr = np.asarray(grads).astype(F)
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    out = np.zeros((rois.shape[0], 6), F)
    for k in range(rois.shape[0]):
        g = roi_geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, geometry, F)
        d_cx = d_cy = d_w = d_h = d_t = F(0)
        for ph in range(PH):
            for pw in range(PW):
                samples = _samples(g, ph, pw, H, W, F)
                for index, sample in enumerate(samples):
                    if sample is None:
                        continue
                    iy, ix = divmod(index, max(g.gw, 1))
                    yy, xx, (ylo, yhi, ly, hy, ymov), (xlo, xhi, lx, hx, xmov) = sample
                    sy = sx = F(0)
                    for c in range(C):
                        v = x[g.b, c]
                        gv = gr[k, c, ph, pw]
                        if ymov:
                            sy = sy + gv * (hx * (v[yhi, xlo] - v[ylo, xlo])
                                            + lx * (v[yhi, xhi] - v[ylo, xhi]))
                        if xmov:
                            sx = sx + gv * (hy * (v[ylo, xhi] - v[ylo, xlo])
                                            + ly * (v[yhi, xhi] - v[yhi, xlo]))
                    a_y = (F(ph) + (F(iy) + F(0.5)) / F(g.gh)) / F(PH) - F(0.5)
                    a_x = (F(pw) + (F(ix) + F(0.5)) / F(g.gw)) / F(PW) - F(0.5)
                    d_cy = d_cy + sy * g.s
                    d_cx = d_cx + sx * g.s
                    if not g.clamp_h:
                        d_h = d_h + (g.s * a_y) * (g.cos * sy + g.sin * sx)
                    if not g.clamp_w:
                        d_w = d_w + (g.s * a_x) * (g.cos * sx - g.sin * sy)
                    d_t = d_t + ((-yy * g.sin - xx * g.cos) * sy
                                 + (yy * g.cos - xx * g.sin) * sx)
        out[k, 1:] = (d_cx / g.cnt_fwd, d_cy / g.cnt_fwd, d_w / g.cnt_fwd, d_h / g.cnt_fwd,
                      g.dtheta * d_t / g.cnt_fwd)
    return out
