"""Triton kernels of roi_pool for CUDA tensors: the forward and a deterministic input gradient.

Both reproduce the Numba CPU kernels (``roiops.roi_pool.cpu``) operation for operation, so the
results are bit-identical to the CPU's (checked under the Triton interpreter,
``TRITON_INTERPRET=1``, in tests/torch_ops/test_roi_pool.py):

- **Forward**: one program per (roi, bin) and block of channels. The bin's edges are scalars
  computed as the CPU plan does (C ``round`` halves away from zero, ``floor``/``ceil``, the
  x86 integer conversion and int32 wrap-around, every geometry operation rounded to half for
  torchvision's float16 kernel); the lanes (channels) scan the bin row by row, left to right,
  and take a pixel only when it is strictly greater: ties keep the first pixel, NaN never
  wins. A maximum is exact in any type, so the result has the CPU's bits.
- **Input gradient**, without atomics: every bin with an argmax is a record whose key is the
  input element it feeds, ``(image * C + c) * H * W + argmax``, in the order of the flat
  ``[K, C, PH, PW]`` grads; a stable sort by key keeps each element's records in the CPU's
  order (roi, ph, pw), and one lane per input element sums its records in that order
  (rounded to half after every add when summing in half).

Compute type ``F``: float32 for float16/bfloat16/float32 storage, float64 for float64 (rois
cast to ``F`` on the host; ``spatial_scale`` travels as its bit pattern in ``F``). Launched
with ``enable_fp_fusion=False``; the one division is ``div`` (IEEE, not the approximate float32
``/`` of NVIDIA GPUs).
"""
import torch
import triton
import triton.language as tl

from .._triton import compute_dtype, div, float_arg, float_bits, i64, largest
from .cpu import LOWEST

_LOWEST = tl.constexpr(LOWEST)

__all__ = ["forward", "grad_input"]

# Channels per forward program, input elements per gradient program.
LAUNCH = {"forward": {"BLOCK_C": 64, "num_warps": 2}, "grad_input": {"BLOCK": 256,
                                                                      "num_warps": 4}}


@triton.jit
def _h(x, HALF: tl.constexpr):
    """``x`` rounded to binary16 when computing in half (one c10::Half operation)."""
    if HALF:
        return x.to(tl.float16).to(tl.float32)
    else:
        return x


@triton.jit
def _trunc(x):
    """``x`` rounded toward zero, as a float (values of 2**52 and beyond are whole already)."""
    small = tl.abs(x) < 4503599627370496.0
    whole = tl.where(small, x, 0.0).to(tl.int64).to(x.dtype)
    return tl.where(small, whole, x)


@triton.jit
def _int32(x):
    """C's float-to-int conversion on x86-64, as int64: truncation, ``-2**31`` outside the
    int32 range (and for NaN)."""
    ok = (x >= -2147483648.0) & (x < 2147483648.0)
    return tl.where(ok, tl.where(ok, x, 0.0).to(tl.int64), -2147483648)


@triton.jit
def _wrap(v):
    """An int64 as an int32 sum wraps."""
    return ((v + 2147483648) & 4294967295) - 2147483648


@triton.jit
def _edge(coordinate, scale, HALF: tl.constexpr):
    """``(int) round(coordinate * scale)`` with C ``round`` (halves away from zero)."""
    scaled = _h(coordinate * scale, HALF)
    whole = _trunc(scaled)
    one = tl.where(scaled > 0, 1.0, -1.0).to(scaled.dtype)
    rounded = tl.where(tl.abs(scaled - whole) >= 0.5, whole + one, whole)
    return _int32(tl.where(tl.abs(scaled) < 2147483648.0, rounded, scaled))


@triton.jit
def _bin(low, high, scale, p, pooled, size, HALF: tl.constexpr):
    """``[start, end)`` of bin ``p`` of one roi axis, clipped to ``[0, size]`` (the CPU's
    ``_axis``)."""
    F = scale.dtype
    start = _edge(low, scale, HALF)
    length = tl.maximum(_wrap(_edge(high, scale, HALF) - start + 1), 1)
    bin_size = _h(div(_h(length.to(F), HALF), _h(i64(pooled).to(F), HALF)), HALF)
    first_f = _h(_h(i64(p).to(F), HALF) * bin_size, HALF)
    stop_f = _h(_h((i64(p) + 1).to(F), HALF) * bin_size, HALF)
    first_t = _trunc(first_f)
    stop_t = _trunc(stop_f)
    first = _int32(tl.where(first_t > first_f, first_t - 1, first_t))  # floor
    stop = _int32(tl.where(stop_t < stop_f, stop_t + 1, stop_t))  # ceil
    zero = tl.full([], 0, tl.int64)
    return (tl.minimum(tl.maximum(_wrap(first + start), zero), size),
            tl.minimum(tl.maximum(_wrap(stop + start), zero), size))


@triton.jit(do_not_specialize=["scale_bits", "channels", "height", "width", "pooled_h",
                               "pooled_w", "s_n", "s_c", "s_h", "s_w"])
def _forward_kernel(input_ptr, rois_ptr, index_ptr, out_ptr, argmax_ptr, scale_bits, channels,
                    height, width, pooled_h, pooled_w, s_n, s_c, s_h, s_w,
                    HALF: tl.constexpr, FLOAT64: tl.constexpr, BLOCK_C: tl.constexpr):
    # One program per (roi, bin) and block of channels; every lane is a channel.
    task = tl.program_id(0).to(tl.int64)
    bins = i64(pooled_h) * pooled_w
    k = task // bins
    ph = (task % bins) // pooled_w
    pw = task % pooled_w
    scale = float_arg(scale_bits, FLOAT64)
    F = scale.dtype
    roi = rois_ptr + k * 5
    h0, h1 = _bin(tl.load(roi + 2), tl.load(roi + 4), scale, ph, pooled_h, i64(height), HALF)
    w0, w1 = _bin(tl.load(roi + 1), tl.load(roi + 3), scale, pw, pooled_w, i64(width), HALF)
    channel = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    mask = channel < channels
    plane = input_ptr + tl.load(index_ptr + k) * s_n + channel * s_c
    empty = (h1 <= h0) | (w1 <= w0)
    best = tl.full([BLOCK_C], _LOWEST, F)
    best = tl.where(empty, tl.full([BLOCK_C], 0, F), best)
    best_index = tl.full([BLOCK_C], -1, tl.int64)
    for h in range(h0, h1):
        for w in range(w0, w1):
            value = tl.load(plane + h * s_h + w * s_w, mask=mask, other=0).to(F)
            greater = value > best
            best = tl.where(greater, value, best)
            best_index = tl.where(greater, i64(h) * width + w, best_index)
    at = (k * channels + channel) * bins + ph * pooled_w + pw
    tl.store(out_ptr + at, best.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(argmax_ptr + at, best_index.to(tl.int32), mask=mask)


@triton.jit(do_not_specialize=["elements"])
def _sum_records_kernel(start_ptr, order_ptr, grads_ptr, out_ptr, elements,
                        HALF: tl.constexpr, BLOCK: tl.constexpr):
    # One lane per input element: its records (sorted, in the CPU's order) summed in turn.
    element = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = element < elements
    first = tl.load(start_ptr + element, mask=mask, other=0)
    stop = tl.load(start_ptr + element + 1, mask=mask, other=0)
    F = out_ptr.dtype.element_ty
    acc = tl.full([BLOCK], 0, F)
    steps = largest(stop - first)
    for t in range(0, steps):
        j = first + t
        ok = j < stop
        source = tl.load(order_ptr + j, mask=ok, other=0)
        g = tl.load(grads_ptr + source, mask=ok, other=0).to(F)
        acc = tl.where(ok, _h(acc + g, HALF), acc)
    tl.store(out_ptr + element, acc, mask=mask)


def forward(input, rois, indices, call):
    """``(output, argmax)``: ``[K, C, PH, PW]`` of ``input.dtype`` and int32; ``indices`` are
    the checked batch indices, ``call`` the checked record (options, half arithmetic)."""
    num_rois = rois.shape[0]
    _, channels, height, width = input.shape
    ph, pw = call.options.output_size
    store_dtype = torch.float32 if input.dtype == torch.bfloat16 else input.dtype
    out = torch.empty((num_rois, channels, ph, pw), dtype=store_dtype, device=input.device)
    argmax = torch.empty(out.shape, dtype=torch.int32, device=input.device)
    if out.numel():
        F = compute_dtype(input.dtype)
        rois_f = rois.to(device=input.device, dtype=F).contiguous()
        launch = dict(LAUNCH["forward"])
        block_c = min(launch.pop("BLOCK_C"), triton.next_power_of_2(channels))
        grid = (num_rois * ph * pw, triton.cdiv(channels, block_c))
        _forward_kernel[grid](input, rois_f, indices.contiguous(), out, argmax,
                              float_bits(call.options.spatial_scale, F), channels, height,
                              width, ph, pw, *input.stride(), HALF=call.half_arithmetic,
                              FLOAT64=F == torch.float64, BLOCK_C=block_c, **launch,
                              enable_fp_fusion=False)
    return out.to(input.dtype), argmax


def grad_input(grads, argmax, indices, call):
    """``input_shape`` of ``grads.dtype``: every bin's gradient added at its argmax, each
    element's adds in the CPU's order, without atomics."""
    batch, channels, height, width = call.input_shape
    plane = height * width
    F = compute_dtype(grads.dtype)
    total = torch.zeros(call.input_shape, dtype=F, device=grads.device)
    if grads.numel() and total.numel():
        elements = total.numel()
        channel = torch.arange(channels, device=grads.device).view(1, channels, 1, 1)
        position = argmax.to(torch.int64)
        keys = (indices.view(-1, 1, 1, 1) * channels + channel) * plane + position
        keys = torch.where((position >= 0) & (position < plane), keys, elements).flatten()
        keys, order = torch.sort(keys, stable=True)
        starts = torch.searchsorted(keys, torch.arange(elements + 1, device=grads.device))
        launch = dict(LAUNCH["grad_input"])
        block = launch.pop("BLOCK")
        _sum_records_kernel[(triton.cdiv(elements, block),)](
            starts, order, grads.contiguous(), total, elements, HALF=call.half_arithmetic,
            BLOCK=block, **launch, enable_fp_fusion=False)
    return total.to(grads.dtype)
