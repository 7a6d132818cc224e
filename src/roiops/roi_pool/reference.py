"""The plain reference of roi_pool and its input gradient: slow, obviously correct.

Python loops over NumPy scalars for the geometry and over pixels for the scan (vectorized over
channels only), meant for tiny shapes in tests. It is written from docs/roi_pool.md,
independently of the kernels, and is not imported by ``import roiops``::

    from roiops.roi_pool import reference
    output, argmax = reference.roi_pool(features, rois, (7, 7), 0.25)

The geometry type ``T`` is NumPy's scalar type of the computation: ``np.float32`` or
``np.float64`` (the input's), or ``np.float16`` for torchvision's half kernel, where a NumPy
float16 scalar operation is a float32 operation rounded to half, exactly as c10::Half does.
Integers follow C on x86-64: a float converted to int32 outside its range becomes -2**31, and
int32 sums wrap.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["roi_pool", "roi_pool_grad_input", "bin_edges"]

_LOWEST = np.finfo(np.float32).min  # torchvision's -FLT_MAX


def _int32(value):
    """C ``(int) value`` on x86-64."""
    value = float(value)
    return int(value) if -2.0**31 <= value < 2.0**31 else -2**31


def _wrap(value):
    """``value`` as an int32 sum wraps."""
    return (value + 2**31) % 2**32 - 2**31


def _c_round(value):
    """C ``round``: the nearest integer, halves away from zero."""
    value = float(value)
    if not math.isfinite(value):
        return value
    whole = float(math.trunc(value))
    if abs(value - whole) >= 0.5:
        whole += math.copysign(1.0, value)
    return whole


def bin_edges(low, high, scale, pooled, size, T):
    """``[(start, end)]`` of every bin along one roi axis, clipped to ``[0, size]``.

    The scale is ``T(scale)``; in half through float32 first, as c10::Half converts a double.
    """
    scale = T(np.float32(scale)) if T == np.float16 else T(scale)
    with np.errstate(over="ignore"):
        start = _int32(_c_round(T(low) * scale))
        end = _int32(_c_round(T(high) * scale))
    length = max(_wrap(end - start + 1), 1)
    bin_size = T(length) / T(pooled)
    edges = []
    with np.errstate(over="ignore"):
        for p in range(pooled):
            first = _int32(np.floor(T(p) * bin_size))
            stop = _int32(np.ceil(T(p + 1) * bin_size))
            edges.append((min(max(_wrap(first + start), 0), size),
                          min(max(_wrap(stop + start), 0), size)))
    return edges


def _geometry_type(dtype, half):
    if half:
        return np.float16
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def roi_pool(input, rois, output_size, spatial_scale=1.0, half=False):
    """``(output, argmax)``: max pooling ``[K, C, PH, PW]`` of ``input.dtype`` and the int32
    flat plane index of each maximum (-1 for none).

    ``half``: torchvision's float16 geometry (every operation rounded to half); otherwise the
    geometry is computed in float32 (float64 for float64 input). ``spatial_scale`` is used as
    ``T(spatial_scale)``.
    """
    T = _geometry_type(input.dtype, half)
    batch, channels, height, width = input.shape
    pooled_height, pooled_width = output_size
    num_rois = rois.shape[0]
    output = np.zeros((num_rois, channels, pooled_height, pooled_width), input.dtype)
    argmax = np.full(output.shape, -1, np.int32)
    with np.errstate(over="ignore"):
        lowest = np.asarray(_LOWEST if T != np.float16 else -np.inf, input.dtype)
    for k in range(num_rois):
        b = int(math.trunc(float(rois[k, 0])))
        rows = bin_edges(rois[k, 2], rois[k, 4], spatial_scale, pooled_height, height, T)
        cols = bin_edges(rois[k, 1], rois[k, 3], spatial_scale, pooled_width, width, T)
        for ph, (h0, h1) in enumerate(rows):
            for pw, (w0, w1) in enumerate(cols):
                if h1 <= h0 or w1 <= w0:
                    continue  # empty: 0, no argmax
                best = np.full(channels, lowest, input.dtype)
                best_index = np.full(channels, -1, np.int32)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        value = input[b, :, h, w]
                        greater = value > best
                        best = np.where(greater, value, best)
                        best_index = np.where(greater, h * width + w, best_index)
                output[k, :, ph, pw] = best
                argmax[k, :, ph, pw] = best_index
    return output, argmax


def roi_pool_grad_input(grads, argmax, rois, input_shape, half=False):
    """The input gradient: ``grads[k, c, ph, pw]`` added at ``argmax[k, c, ph, pw]`` of image
    ``trunc(rois[k, 0])``, in the order (roi, ph, pw); summed in half when ``half``, else in
    float32 (float64 for float64 grads) and rounded once to ``grads.dtype``."""
    batch, channels, height, width = input_shape
    A = np.float16 if half else _geometry_type(grads.dtype, False)
    total = np.zeros((batch, channels, height * width), A)
    everyone = np.arange(channels)
    for k in range(grads.shape[0]):
        b = int(math.trunc(float(rois[k, 0])))
        for ph in range(grads.shape[2]):
            for pw in range(grads.shape[3]):
                index = argmax[k, :, ph, pw].astype(np.int64)
                hit = index >= 0
                # one channel per element: no element is hit twice by one assignment; a half
                # sum beyond its range is inf, as the kernels' is
                with np.errstate(over="ignore"):
                    total[b, everyone[hit], index[hit]] += grads[k, hit, ph, pw].astype(A)
    with np.errstate(over="ignore"):
        return total.reshape(input_shape).astype(grads.dtype)
