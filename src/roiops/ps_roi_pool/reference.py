"""The plain reference of ps_roi_pool and its input gradient: slow, obviously correct.

Scalar loops over NumPy scalars of the arithmetic type ``F`` (``np.float32`` / ``np.float64``:
torchvision's bits; ``np.float16``: its half arithmetic), written from
docs/position_sensitive.md#ps_roi_pool independently of the kernels; not imported by
``import roiops``::

    from roiops.ps_roi_pool import reference
    reference.ps_roi_pool(maps, rois, (7, 7), 0.25, F=np.float64)
"""

from __future__ import annotations

import math

import numpy as np

from .._reference import ceil_int, floor_int, quiet
from ..roi_align.reference import _opts

__all__ = ["ps_roi_pool", "ps_roi_pool_grad_input"]


def _round(v) -> int:
    """C's ``round``: halves away from zero."""
    magnitude = abs(float(v))
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return int(math.copysign(whole, float(v)))


def _bins(roi, PH, PW, spatial_scale, H, W, backward, F):
    """``(b, [(h0, h1)] * PH, [(w0, w1)] * PW)``: the clipped pixel ranges of the bins; the
    forward clips to ``size - 1``, the backward to ``size`` and rounds through float32."""
    s = F(spatial_scale) if F is np.float64 else F(np.float32(spatial_scale))
    corners = []
    for v in roi[1:5]:
        scaled = F(v) * s
        corners.append(_round(np.float32(scaled) if backward else scaled))
    x1, y1, x2, y2 = corners
    ranges = []
    for low, high, pooled, size in ((y1, y2, PH, H), (x1, x2, PW, W)):
        limit = size if backward else size - 1
        bin_size = F(max(high - low, 1)) / F(pooled)
        ranges.append([(min(max(floor_int(F(p) * bin_size) + low, 0), limit),
                        min(max(ceil_int(F(p + 1) * bin_size) + low, 0), limit))
                       for p in range(pooled)])
    return int(math.trunc(float(F(roi[0])))), ranges[0], ranges[1]


@quiet
def ps_roi_pool(input, rois, output_size, spatial_scale=1.0, F=np.float32):
    """Output ``[K, C/(PH*PW), PH, PW]``: the row-major sum of channel ``(c*PH + ph)*PW + pw``
    over the bin divided by ``F(area)``; an empty bin 0."""
    x = np.asarray(input).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    _, C, H, W = x.shape
    out = np.zeros((rois.shape[0], C // (PH * PW), PH, PW), F)
    for k in range(rois.shape[0]):
        b, rows, cols = _bins(rois[k], PH, PW, spatial_scale, H, W, False, F)
        for c in range(out.shape[1]):
            for ph, (h0, h1) in enumerate(rows):
                for pw, (w0, w1) in enumerate(cols):
                    if h1 <= h0 or w1 <= w0:
                        continue
                    v = x[b, (c * PH + ph) * PW + pw]
                    acc = F(0)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            acc = acc + v[h, w]
                    out[k, c, ph, pw] = acc / F((h1 - h0) * (w1 - w0))
    return out


@quiet
def ps_roi_pool_grad_input(grads, rois, input_shape, output_size, spatial_scale=1.0,
                           F=np.float32):
    """torchvision's backward: sequential over rois, bins, output channels; each non-empty
    bin adds ``g / F(area)`` to every pixel of its (backward) bin, row-major."""
    gr = np.asarray(grads).astype(F)
    rois = np.asarray(rois)
    PH, PW = _opts(output_size)
    N, C, H, W = (int(v) for v in input_shape)
    out = np.zeros((N, C, H, W), F)
    for k in range(rois.shape[0]):
        b, rows, cols = _bins(rois[k], PH, PW, spatial_scale, H, W, True, F)
        for ph, (h0, h1) in enumerate(rows):
            for pw, (w0, w1) in enumerate(cols):
                if h1 <= h0 or w1 <= w0:
                    continue
                for c in range(gr.shape[1]):
                    plane = out[b, (c * PH + ph) * PW + pw]
                    share = gr[k, c, ph, pw] / F((h1 - h0) * (w1 - w0))
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            plane[h, w] = plane[h, w] + share
    return out
