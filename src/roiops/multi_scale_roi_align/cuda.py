"""Triton kernels of multi-scale RoI Align for CUDA tensors: one fused launch over every roi.

The levels are concatenated into one flat buffer (contiguous NCHW, one after the other); each
roi reads its level's offset, size and scale from per-roi tables, so one launch serves every
roi of every level. The per-roi arithmetic is roi_align's Triton helpers
(``roiops.roi_align.cuda``: the roi geometry, the valid samples by bisection, the taps), called,
not copied, so the results equal the CPU kernels bit for bit (float32, float64; float16 and
bfloat16 computed in float32 and rounded once).

- Plan: one program per roi, its valid samples per row and column of bins, on its level.
- Forward: one program per (roi, block of channels, block of bins), as roi_align's.
- Input gradient (deterministic, no atomics): every corner add becomes a record (pixel of the
  concatenated levels, weight, bin) in the CPU's order; a stable sort by pixel and roi_align's
  record-summing kernel give each element its adds in the order of its level's rois.
- The box gradient and torchvision's half arithmetic run the CPU kernels on host copies.
"""
import torch
import triton
import triton.language as tl

from .._triton import compute_dtype
from ..roi_align import cuda as roi_cuda
from ..roi_align.cuda import (
    _bin_bases,
    _forward_tile,
    _roi_geometry,
    _valid_samples,
    _write_records,
)

__all__ = ["forward", "grad_input"]


@triton.jit(do_not_specialize=["pooled_h", "pooled_w", "sampling_ratio"])
def _plan_kernel(rois_ptr, scale_ptr, height_ptr, width_ptr, y_first_ptr, y_count_ptr,
                 x_first_ptr, x_count_ptr, divisor_ptr, pooled_h, pooled_w, sampling_ratio,
                 OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                 MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                 COUNT_PRODUCT: tl.constexpr, BLOCK_P: tl.constexpr):
    # roi_align's plan with the roi's own scale and map size (its level's).
    k = tl.program_id(0).to(tl.int64)
    scale = tl.load(scale_ptr + k)
    F = scale.dtype
    height = tl.load(height_ptr + k)
    width = tl.load(width_ptr + k)
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    p = tl.arange(0, BLOCK_P).to(tl.int64)
    y_first, y_count = _valid_samples(_bin_bases(y_start, y_bin, p), y_bin, grid_h.to(F),
                                      grid_h, height.to(F))
    x_first, x_count = _valid_samples(_bin_bases(x_start, x_bin, p), x_bin, grid_w.to(F),
                                      grid_w, width.to(F))
    tl.store(y_first_ptr + k * pooled_h + p, y_first, mask=p < pooled_h)
    tl.store(y_count_ptr + k * pooled_h + p, y_count, mask=p < pooled_h)
    tl.store(x_first_ptr + k * pooled_w + p, x_first, mask=p < pooled_w)
    tl.store(x_count_ptr + k * pooled_w + p, x_count, mask=p < pooled_w)
    tl.store(divisor_ptr + k, count)


@triton.jit(do_not_specialize=["channels", "pooled_h", "pooled_w", "sampling_ratio"])
def _forward_kernel(flat_ptr, rois_ptr, index_ptr, out_ptr, scale_ptr, height_ptr, width_ptr,
                    base_ptr, y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr,
                    channels, pooled_h, pooled_w, sampling_ratio,
                    OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr, BLOCK_C: tl.constexpr,
                    BLOCK_BINS: tl.constexpr):
    # roi_align's forward tile (roi, block of channels, block of bins) on the roi's level: a
    # contiguous [N, C, H, W] map starting at base_ptr[k] in the flat buffer.
    k = tl.program_id(0).to(tl.int64)
    scale = tl.load(scale_ptr + k)
    h64 = tl.load(height_ptr + k)
    w64 = tl.load(width_ptr + k)
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, count, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    image = flat_ptr + tl.load(base_ptr + k) + tl.load(index_ptr + k) * channels * h64 * w64
    _forward_tile(out_ptr, image, h64 * w64, w64, 1, k, channels, count, y_start, y_bin, grid_h,
                  x_start, x_bin, grid_w, h64, w64, y_first_ptr, y_count_ptr, x_first_ptr,
                  x_count_ptr, pooled_h, pooled_w, BLOCK_C, BLOCK_BINS)


@triton.jit(do_not_specialize=["pooled_h", "pooled_w", "sampling_ratio"])
def _records_kernel(rois_ptr, index_ptr, scale_ptr, height_ptr, width_ptr, pixel_base_ptr,
                    y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr, offset_ptr, pixel_ptr,
                    weight_ptr, bin_ptr, pooled_h, pooled_w, sampling_ratio,
                    OFFSET: tl.constexpr, ADD_END: tl.constexpr, END_EXTRA: tl.constexpr,
                    MIN_SIZE: tl.constexpr, GRID_FLOOR: tl.constexpr,
                    COUNT_PRODUCT: tl.constexpr, BLOCK_BINS: tl.constexpr):
    # roi_align's records (pixel, weight, bin) in the CPU's order, the pixel flat over the
    # concatenated levels' [N, H, W] pixels.
    k = tl.program_id(0).to(tl.int64)
    scale = tl.load(scale_ptr + k)
    h64 = tl.load(height_ptr + k)
    w64 = tl.load(width_ptr + k)
    y_start, y_bin, grid_h, x_start, x_bin, grid_w, _, _, _ = _roi_geometry(
        rois_ptr, k, scale, pooled_h, pooled_w, sampling_ratio, OFFSET, ADD_END, END_EXTRA,
        MIN_SIZE, GRID_FLOOR, COUNT_PRODUCT)
    bin_id = tl.program_id(1).to(tl.int64) * BLOCK_BINS + tl.arange(0, BLOCK_BINS).to(tl.int64)
    image = tl.load(pixel_base_ptr + k) + tl.load(index_ptr + k) * h64 * w64
    _write_records(k, bin_id, image, h64, w64, y_start, y_bin, grid_h, x_start, x_bin, grid_w,
                   y_first_ptr, y_count_ptr, x_first_ptr, x_count_ptr, offset_ptr, pixel_ptr,
                   weight_ptr, bin_ptr, pooled_h, pooled_w)

def _switches(options, F):
    return {k: v for k, v in roi_cuda._switches(options, F).items() if k != "FLOAT64"}


def _tables(rois, indices, levels, shapes, scales, F, per_image):
    """Per-roi (rois in F, batch indices, scale, height, width, base): ``base`` is where the
    roi's level starts in the flat buffer, counting ``per_image(shape)`` elements per image
    of a level (its NCHW values, or its H*W pixels)."""
    device = rois.device
    level = levels.clamp(min=0)
    bases, total = [], 0
    for shape in shapes:
        bases.append(total)
        total += shape[0] * per_image(shape)
    table = torch.tensor([[s[2], s[3], b] for s, b in zip(shapes, bases)], dtype=torch.int64,
                         device=device)[level]
    scale = torch.tensor([float(s) for s in scales], dtype=F, device=device)[level]
    rois_f = rois.to(dtype=F).contiguous()
    return (rois_f, indices.contiguous(), scale.contiguous(), table[:, 0].contiguous(),
            table[:, 1].contiguous(), table[:, 2].contiguous(), total)


def _plan(rois_f, scale, height, width, levels, options, F):
    num_rois = rois_f.shape[0]
    ph, pw = options.pooled_height, options.pooled_width
    device = rois_f.device
    y_first = torch.empty((num_rois, ph), dtype=torch.int64, device=device)
    y_count = torch.empty_like(y_first)
    x_first = torch.empty((num_rois, pw), dtype=torch.int64, device=device)
    x_count = torch.empty_like(x_first)
    divisor = torch.empty(num_rois, dtype=F, device=device)
    _plan_kernel[(num_rois,)](rois_f, scale, height, width, y_first, y_count, x_first,
                              x_count, divisor, ph, pw, options.sampling_ratio,
                              BLOCK_P=triton.next_power_of_2(max(ph, pw)),
                              **_switches(options, F))
    # a roi without a level samples nothing: zeros, no gradient
    none = (levels < 0)[:, None]
    return y_first, y_count.masked_fill(none, 0), x_first, x_count.masked_fill(none, 0), divisor


def forward(features, rois, indices, levels, scales, options):
    """``[K, C, PH, PW]`` of the features' dtype; ``indices`` and ``levels`` checked."""
    dtype = features[0].dtype
    channels = features[0].shape[1]
    ph, pw = options.pooled_height, options.pooled_width
    store_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    out = torch.empty((rois.shape[0], channels, ph, pw), dtype=store_dtype,
                      device=rois.device)
    if out.numel() == 0:
        return out.to(dtype)
    F = compute_dtype(dtype)
    shapes = [tuple(f.shape) for f in features]
    flat = torch.cat([f.contiguous().reshape(-1) for f in features])
    rois_f, indices, scale, height, width, base, _ = _tables(
        rois, indices, levels, shapes, scales, F, lambda s: s[1] * s[2] * s[3])
    y_first, y_count, x_first, x_count, _ = _plan(rois_f, scale, height, width, levels,
                                                  options, F)
    launch = dict(roi_cuda.LAUNCH["forward"])
    block_c, block_bins = roi_cuda._bin_blocks(ph * pw, launch.pop("LANES"))
    grid = (rois.shape[0], triton.cdiv(channels, block_c), triton.cdiv(ph * pw, block_bins))
    _forward_kernel[grid](flat, rois_f, indices, out, scale, height, width, base, y_first,
                          y_count, x_first, x_count, channels, ph, pw, options.sampling_ratio,
                          BLOCK_C=block_c, BLOCK_BINS=block_bins, **launch,
                          **_switches(options, F))
    return out.to(dtype)


def grad_input(grads, rois, indices, levels, shapes, scales, options):
    """One contiguous ``[N, C, H, W]`` gradient per level shape, of ``grads.dtype``."""
    F = compute_dtype(grads.dtype)
    channels = shapes[0][1]
    ph, pw = options.pooled_height, options.pooled_width
    rois_f, indices, scale, height, width, pixel_base, pixels = _tables(
        rois, indices, levels, shapes, scales, F, lambda s: s[2] * s[3])
    total = torch.zeros((pixels, channels), dtype=F, device=grads.device)
    if grads.numel() and total.numel():
        y_first, y_count, x_first, x_count, divisor = _plan(rois_f, scale, height, width,
                                                            levels, options, F)
        samples = (y_count[:, :, None] * x_count[:, None, :]).flatten()
        offsets = torch.cumsum(samples, 0) - samples
        count = int(samples.sum())
        pixel = torch.full((4 * count,), pixels, dtype=torch.int64, device=grads.device)
        weight = torch.empty(4 * count, dtype=F, device=grads.device)
        flat_bin = torch.empty(4 * count, dtype=torch.int64, device=grads.device)
        if count:
            block_bins = min(triton.next_power_of_2(ph * pw), 128)
            _records_kernel[(rois.shape[0], triton.cdiv(ph * pw, block_bins))](
                rois_f, indices, scale, height, width, pixel_base, y_first, y_count, x_first,
                x_count, offsets, pixel, weight, flat_bin, ph, pw, options.sampling_ratio,
                BLOCK_BINS=block_bins, **_switches(options, F))
            pixel, order = torch.sort(pixel, stable=True)
            starts = torch.searchsorted(pixel, torch.arange(pixels + 1, dtype=pixel.dtype,
                                                            device=pixel.device))
            rows = grads.permute(0, 2, 3, 1).contiguous()
            launch = dict(roi_cuda.LAUNCH["grad_input"])
            block_c = min(launch.pop("BLOCK_C"), triton.next_power_of_2(channels))
            roi_cuda._sum_records_kernel[(pixels, triton.cdiv(channels, block_c))](
                starts, weight[order], flat_bin[order], divisor, rows, total, channels,
                ph * pw, BLOCK_C=block_c, **launch, enable_fp_fusion=False)
    result, start = [], 0
    for n, c, h, w in shapes:
        part = total[start:start + n * h * w].reshape(n, h, w, c)
        result.append(part.permute(0, 3, 1, 2).contiguous().to(grads.dtype))
        start += n * h * w
    return result
