"""The plain reference of ps_roi_align and its gradients: slow, obviously correct.

Scalar loops over NumPy scalars of the arithmetic type ``F`` (``np.float64``: the independent
reference; ``np.float32``: torchvision's float32 bits; ``np.float16``: its half arithmetic),
for tiny shapes in tests. Written from docs/position_sensitive.md#ps_roi_align on top of roi_align's
reference geometry (``roiops.roi_align.reference``: the aligned torchvision geometry is
ps_roi_align's), independently of the kernels; not imported by ``import roiops``::

    from roiops.ps_roi_align import reference
    reference.ps_roi_align(maps, rois, (7, 7), 0.25, 2, F=np.float64)
"""

from __future__ import annotations

import numpy as np

from .._reference import quiet
from ..roi_align.reference import (
    _opts,
    _roi_axis,
    _roi_sample_coords,
    _roi_valid,
    roi_geometry,
)

__all__ = ["ps_roi_align", "ps_roi_align_grad_input", "ps_roi_align_grad_boxes"]


def _geometry(roi, PH, PW, spatial_scale, sampling_ratio, F):
    """roi_align's aligned torchvision geometry; the divisor is ``F(gh * gw)`` (no minimum)."""
    return roi_geometry(roi, PH, PW, spatial_scale, sampling_ratio, True, "torchvision", 1, F)


def _samples(g, ph, pw, H, W, F):
    """The valid samples of bin ``(ph, pw)``, iy-major: ``(iy, ix, y axis, x axis)`` with each
    axis ``(lo, hi, l, h, moving)``; invalid samples are not read."""
    ycs = _roi_sample_coords(g.y0, ph, g.bin_h, g.gh, F)
    xcs = _roi_sample_coords(g.x0, pw, g.bin_w, g.gw, F)
    return [(iy, ix, _roi_axis(yc, H, F), _roi_axis(xc, W, F))
            for iy, yc in enumerate(ycs) for ix, xc in enumerate(xcs)
            if _roi_valid(yc, xc, H, W, F)]


@quiet
def ps_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                 F=np.float32):
    """Output ``[K, C/(PH*PW), PH, PW]``: bin ``(k, c, ph, pw)`` of channel
    ``(c*PH + ph)*PW + pw``, ``acc += ((w1*v1 + w2*v2) + w3*v3) + w4*v4`` over its valid
    samples, then ``acc / F(gh*gw)``."""
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    out = np.zeros((rois.shape[0], C // (PH * PW), PH, PW), F)
    for k in range(rois.shape[0]):
        g = _geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, F)
        for c in range(out.shape[1]):
            for ph in range(PH):
                for pw in range(PW):
                    v = x[g.b, (c * PH + ph) * PW + pw]
                    acc = F(0)
                    for _, _, (ylo, yhi, ly, hy, _), (xlo, xhi, lx, hx, _) in _samples(
                            g, ph, pw, H, W, F):
                        term = ((((hy * hx) * v[ylo, xlo]) + ((hy * lx) * v[ylo, xhi]))
                                + ((ly * hx) * v[yhi, xlo])) + ((ly * lx) * v[yhi, xhi])
                        acc = acc + term
                    out[k, c, ph, pw] = acc / g.cnt_bwd
    return out


@quiet
def ps_roi_align_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                            sampling_ratio=-1, F=np.float32):
    """Sequential over rois, output channels, bins, samples: each valid sample adds
    ``(g * w_i) / F(gh*gw)`` to its four corners of the bin's channel in order 1..4."""
    gr = np.asarray(grads).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    N, C, H, W = (int(v) for v in input_shape)
    out = np.zeros((N, C, H, W), F)
    for k in range(rois.shape[0]):
        g = _geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, F)
        for c in range(gr.shape[1]):
            for ph in range(PH):
                for pw in range(PW):
                    plane = out[g.b, (c * PH + ph) * PW + pw]
                    gv = gr[k, c, ph, pw]
                    for _, _, (ylo, yhi, ly, hy, _), (xlo, xhi, lx, hx, _) in _samples(
                            g, ph, pw, H, W, F):
                        cnt = g.cnt_bwd
                        plane[ylo, xlo] = plane[ylo, xlo] + (gv * (hy * hx)) / cnt
                        plane[ylo, xhi] = plane[ylo, xhi] + (gv * (hy * lx)) / cnt
                        plane[yhi, xlo] = plane[yhi, xlo] + (gv * (ly * hx)) / cnt
                        plane[yhi, xhi] = plane[yhi, xhi] + (gv * (ly * lx)) / cnt
    return out


@quiet
def ps_roi_align_grad_boxes(grads, input, rois, output_size, spatial_scale=1.0,
                            sampling_ratio=-1, F=np.float64):
    """``[K, 5]``: column 0 zero, columns 1..4 d/d(x1, y1, x2, y2) with the sample grid held
    fixed (docs/arithmetic.md#roi_align-box-gradient): a sample at ``c = start + a*size``
    moves by ``s*(1 - a)`` with the low edge and ``s*a`` with the high edge, and its value by
    ``hx*(v3 - v1) + lx*(v4 - v2)`` per unit of y (``hy*(v2 - v1) + ly*(v4 - v3)`` of x)
    unless clamped, pinned or invalid."""
    gr = np.asarray(grads).astype(F)
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    out = np.zeros((rois.shape[0], 5), F)
    for k in range(rois.shape[0]):
        g = _geometry(rois[k], PH, PW, spatial_scale, sampling_ratio, F)
        if g.gh <= 0 or g.gw <= 0:
            continue
        s = g.s
        acc = {name: F(0) for name in ("x1", "y1", "x2", "y2")}
        for c in range(gr.shape[1]):
            for ph in range(PH):
                for pw in range(PW):
                    v = x[g.b, (c * PH + ph) * PW + pw]
                    gv = gr[k, c, ph, pw]
                    for iy, ix, (ylo, yhi, ly, hy, ymov), (xlo, xhi, lx, hx, xmov) in _samples(
                            g, ph, pw, H, W, F):
                        if ymov:
                            a = (F(ph) + F(np.float32(iy + 0.5)) / F(g.gh)) / F(PH)
                            dv = hx * (v[yhi, xlo] - v[ylo, xlo]) + lx * (v[yhi, xhi] - v[ylo, xhi])
                            d = (gv * dv) / g.cnt_bwd
                            acc["y1"] = acc["y1"] + d * (s * (F(1) - a))
                            acc["y2"] = acc["y2"] + d * (s * a)
                        if xmov:
                            a = (F(pw) + F(np.float32(ix + 0.5)) / F(g.gw)) / F(PW)
                            dv = hy * (v[ylo, xhi] - v[ylo, xlo]) + ly * (v[yhi, xhi] - v[yhi, xlo])
                            d = (gv * dv) / g.cnt_bwd
                            acc["x1"] = acc["x1"] + d * (s * (F(1) - a))
                            acc["x2"] = acc["x2"] + d * (s * a)
        out[k, 1:] = (acc["x1"], acc["y1"], acc["x2"], acc["y2"])
    return out
