"""Triton kernels of ps_roi_pool for CUDA tensors: forward and the deterministic gradient.

The CPU kernels' arithmetic (``roiops.ps_roi_pool.cpu``, torchvision's bin rules of each
direction as ``roiops.ps_roi_pool.conventions.Bins`` constexprs), with the exactness rules of
``roiops.roi_align.cuda`` (no FMA contraction, ``div_rn``, the CPU's order): bit-identical to
the CPU in float32 and float64 (checked under the Triton interpreter; no GPU run yet).

- **Forward**: one program per (roi, block of input channels); lane ``c`` averages its bin
  ``(ph, pw)`` of plane ``c`` row-major (lanes with smaller bins add ``+0.0``, which changes
  no sum), an empty bin stores ``+0``.
- **Input gradient** (deterministic, no atomics): one program per (image, input channel,
  block of pixels), a lane per pixel, walking the rois of the image in ascending order and
  adding ``g / area`` where the lane's pixel lies in the roi's bin: the CPU's adds in its
  order.

float16/bfloat16 compute in float32 and round once; torchvision's half arithmetic runs the
CPU kernels on a host copy (``roiops.torch.ps_roi_ops``).
"""
import torch
import triton
import triton.language as tl

from .._triton import compute_dtype, div, float_arg, float_bits, i64, largest
from .conventions import BACKWARD, FORWARD

__all__ = ["forward", "grad_input"]

LAUNCH = {"forward": {"BLOCK": 128, "num_warps": 4},
          "grad_input": {"BLOCK": 256, "num_warps": 4}}


@triton.jit
def _to_int(value):
    """A float already rounded as an int64, saturating at int32's range (the CPU's). The
    float is clamped to +-2**31 (exact in float32, unlike 2**31 - 1), then the int."""
    value = tl.minimum(tl.maximum(value, -2147483648.0), 2147483648.0)
    return tl.minimum(value.to(tl.int64), 2147483647)


@triton.jit
def _round_coordinate(value, scale, ROUND_IN_FLOAT32: tl.constexpr):
    """C's ``round(value * scale)`` (halves away from zero) as an int64."""
    scaled = value * scale
    if ROUND_IN_FLOAT32:
        scaled = scaled.to(tl.float32).to(value.dtype)
    magnitude = tl.abs(scaled)
    whole = tl.floor(magnitude)
    whole = tl.where(magnitude - whole >= 0.5, whole + 1, whole)
    return _to_int(tl.where(scaled < 0, -whole, whole))


@triton.jit
def _bin(rois_ptr, k, low_column, high_column, scale, pooled, p, size,
         END_LIMIT: tl.constexpr, ROUND_IN_FLOAT32: tl.constexpr):
    """``(start, end)`` of bin ``p`` (any shape) of roi ``k`` along one axis, clipped."""
    low = tl.load(rois_ptr + k * 5 + low_column)
    high = tl.load(rois_ptr + k * 5 + high_column)
    F = low.dtype
    first = _round_coordinate(low, scale, ROUND_IN_FLOAT32)
    last = _round_coordinate(high, scale, ROUND_IN_FLOAT32)
    length = tl.maximum(last - first, 1)
    bin_size = div(length.to(F), i64(pooled).to(F))
    start = _to_int(tl.floor(p.to(F) * bin_size))
    end = _to_int(tl.ceil((p + 1).to(F) * bin_size))
    limit = size + END_LIMIT
    start = tl.minimum(tl.maximum(start + first, 0), limit)
    end = tl.minimum(tl.maximum(end + first, 0), limit)
    return start, end


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "s_n", "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, rois_ptr, index_ptr, out_ptr, scale_bits, channels, height,
                    width, pooled_h, pooled_w, s_n, s_c, s_h, s_w, END_LIMIT: tl.constexpr,
                    ROUND_IN_FLOAT32: tl.constexpr, FLOAT64: tl.constexpr,
                    BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64)
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    channel = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = channel < channels
    bins = i64(pooled_h) * pooled_w
    bin_id = tl.where(mask, channel % bins, 0)
    ph = bin_id // pooled_w
    pw = bin_id % pooled_w
    h0, h1 = _bin(rois_ptr, k, 2, 4, scale, pooled_h, ph, i64(height), END_LIMIT,
                  ROUND_IN_FLOAT32)
    w0, w1 = _bin(rois_ptr, k, 1, 3, scale, pooled_w, pw, i64(width), END_LIMIT,
                  ROUND_IN_FLOAT32)
    rows = tl.where(mask, tl.maximum(h1 - h0, 0), 0)
    columns = tl.where(mask, tl.maximum(w1 - w0, 0), 0)
    plane = input_ptr + tl.load(index_ptr + k) * s_n + channel * s_c
    acc = tl.full([BLOCK], 0, F)
    for dh in range(largest(rows)):
        for dw in range(largest(columns)):
            ok = (dh < rows) & (dw < columns)
            v = tl.load(plane + (h0 + dh) * s_h + (w0 + dw) * s_w, mask=ok, other=0).to(F)
            acc = acc + tl.where(ok, v, tl.full([], 0, F))
    empty = (rows == 0) | (columns == 0)
    area = tl.where(empty, 1, rows * columns).to(F)
    value = tl.where(empty, tl.full([], 0, F), div(acc, area))
    tl.store(out_ptr + k * channels + channel, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "g_k", "g_c", "g_h", "g_w"])
def _grad_input_kernel(grads_ptr, rois_ptr, order_ptr, starts_ptr, out_ptr, scale_bits,
                       channels, height, width, pooled_h, pooled_w, g_k, g_c, g_h, g_w,
                       END_LIMIT: tl.constexpr, ROUND_IN_FLOAT32: tl.constexpr,
                       FLOAT64: tl.constexpr, BLOCK: tl.constexpr):
    plane_id = tl.program_id(0).to(tl.int64)  # image * channels + channel
    b = plane_id // channels
    c = plane_id % channels
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    w64 = i64(width)
    pixel = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = pixel < i64(height) * w64
    row = pixel // w64
    column = pixel % w64
    bins = i64(pooled_h) * pooled_w
    c_out = c // bins
    ph = (c // pooled_w) % pooled_h
    pw = c % pooled_w
    acc = tl.full([BLOCK], 0, F)
    for r in range(tl.load(starts_ptr + b), tl.load(starts_ptr + b + 1)):
        k = tl.load(order_ptr + r)
        h0, h1 = _bin(rois_ptr, k, 2, 4, scale, pooled_h, i64(ph), i64(height), END_LIMIT,
                      ROUND_IN_FLOAT32)
        w0, w1 = _bin(rois_ptr, k, 1, 3, scale, pooled_w, i64(pw), w64, END_LIMIT,
                      ROUND_IN_FLOAT32)
        if (h1 > h0) & (w1 > w0):
            g = tl.load(grads_ptr + k * g_k + c_out * g_c + ph * g_h + pw * g_w).to(F)
            share = div(g, ((h1 - h0) * (w1 - w0)).to(F))
            inside = (row >= h0) & (row < h1) & (column >= w0) & (column < w1)
            acc = tl.where(inside, acc + share, acc)
    tl.store(out_ptr + plane_id * i64(height) * w64 + pixel, acc, mask=mask)


def _switches(bins, F):
    return dict(END_LIMIT=bins.end_limit, ROUND_IN_FLOAT32=bins.round_in_float32,
                FLOAT64=F == torch.float64, enable_fp_fusion=False)


def forward(input, rois, indices, options):
    """``[K, C / (PH*PW), PH, PW]`` of ``input.dtype`` (torchvision's forward bins)."""
    num_rois = rois.shape[0]
    _, channels, height, width = input.shape
    ph, pw = options.pooled_height, options.pooled_width
    store_dtype = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    out = torch.empty((num_rois, channels // (ph * pw), ph, pw), dtype=store_dtype,
                      device=input.device)
    if out.numel() == 0:
        return out.to(input.dtype)
    F = compute_dtype(input.dtype)
    rois_f = rois.to(dtype=F).contiguous()
    indices = indices.to(torch.int64).contiguous()
    launch = dict(LAUNCH["forward"])
    block = min(launch.pop("BLOCK"), triton.next_power_of_2(channels))
    _forward_kernel[(num_rois, triton.cdiv(channels, block))](
        input, rois_f, indices, out, float_bits(options.spatial_scale, F), channels, height,
        width, ph, pw, *input.stride(), BLOCK=block, **launch, **_switches(FORWARD, F))
    return out.to(input.dtype)


def grad_input(grads, rois, indices, input_shape, options):
    """``input_shape`` of ``grads.dtype`` (torchvision's backward bins), the CPU's bits."""
    batch, channels, height, width = input_shape
    F = compute_dtype(grads.dtype)
    total = torch.empty(input_shape, dtype=F, device=grads.device)
    if total.numel():
        rois_f = rois.to(dtype=F).contiguous()
        indices = indices.to(torch.int64).contiguous()
        order = torch.argsort(indices, stable=True)
        starts = torch.searchsorted(indices[order], torch.arange(
            batch + 1, dtype=indices.dtype, device=indices.device))
        launch = dict(LAUNCH["grad_input"])
        block = min(launch.pop("BLOCK"), triton.next_power_of_2(height * width))
        _grad_input_kernel[(batch * channels, triton.cdiv(height * width, block))](
            grads, rois_f, order, starts, total, float_bits(options.spatial_scale, F),
            channels, height, width, options.pooled_height, options.pooled_width,
            *grads.stride(), BLOCK=block, **launch, **_switches(BACKWARD, F))
    return total.to(grads.dtype)
