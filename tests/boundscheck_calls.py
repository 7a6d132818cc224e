"""Kernel calls that ``test_boundscheck.py`` runs in a child process under NUMBA_BOUNDSCHECK=1.

Every Numba kernel, and each of its internal paths, runs on small edge-case inputs: boxes that
touch the edges, flipped, degenerate or outside the image, rotated boxes around the corners,
maps one pixel high or wide, crop and output sizes of one. Zero-stride views add images
2**24 + 4 pixels high or wide (float32 rounds ``size - 1`` up to ``size`` there) for a few
bytes of memory. With bounds checking compiled in, any index outside its axis raises
IndexError and this script exits non-zero.

Compiling under bounds checking is slow, so each kernel is compiled for few types.
crop_and_resize and roi_align are called kernel by kernel: float32 only, float outputs only
(their half paths run through the same indices), and every image a non-contiguous view,
strided or zero-stride, which Numba types alike; the index arithmetic does not depend on the
layout. The RoI family (roi_pool, the position-sensitive ops, multi-scale and rotated RoI
Align) is called through the public API, which picks each path from the inputs: float32
strided views through the native functions, float16 through the compatibility layers, whose
half arithmetic rounds the geometry to half and so can place bins differently.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

import roiops
from roiops.compat import mmcv, torchvision, torchvision_multiscale
from roiops.crop_and_resize import cpu as crop
from roiops.roi_align import api as align_api
from roiops.roi_align import cpu as align

F32 = np.float32
HUGE = 2 ** 24 + 4

# Normalised [y1, x1, y2, x2]: the whole image, flipped, past every edge, on the far edge,
# a point on the near edge, a thin strip on the far column, wholly outside.
CROP_BOXES = np.array([
    [0, 0, 1, 1], [1, 1, 0, 0], [-0.5, -0.5, 1.5, 1.5], [1, 1, 1, 1], [0, 0, 0, 0],
    [0.3, 1, 0.7, 1], [2, 2, 3, 3], [-1, -1, -0.5, -0.5],
], F32)
CROP_SIZES = [(1, 1), (1, 4), (4, 1), (5, 6)]


def ramp(shape):
    return np.arange(np.prod(shape), dtype=F32).reshape(shape)


def strided(array):
    """``array`` as a view with a gap after every element of its last axis: never
    C-contiguous (unless every axis has one element), so all calls share one compilation."""
    spread = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
    spread[..., ::2] = array
    return spread[..., ::2]


def huge_view(array, axis):
    """``array`` (one pixel along ``axis``) stretched to ``HUGE`` pixels there by a zero
    stride: every pixel of the axis is the same memory, so the view costs nothing."""
    shape, strides = list(array.shape), list(array.strides)
    shape[axis], strides[axis] = HUGE, 0
    return as_strided(array, shape=shape, strides=strides)


def crop_forward(image, boxes, crop_size, method):
    out = np.empty((len(boxes), *crop_size, image.shape[3]), F32)
    crop.forward(image, boxes, np.arange(len(boxes)) % image.shape[0], method, F32(-1), out,
                 False, F32)


def crop_grad_image(out, boxes, crop_size, method, half_accumulate):
    grads = ramp((len(boxes), *crop_size, out.shape[3]))
    crop.grad_image(grads, boxes, np.arange(len(boxes)) % out.shape[0], method, out,
                    half_accumulate, F32)


def crop_grad_boxes(image, boxes, crop_size, crop1_in_double):
    grads = ramp((len(boxes), *crop_size, image.shape[3]))
    out = np.zeros((len(boxes), 4), F32)
    crop.grad_boxes(grads, image, boxes, np.arange(len(boxes)) % image.shape[0],
                    crop1_in_double, out, F32)


def crop_and_resize_calls():
    # Depth 3 and 2 (the bands and the depth-3 paths), 20 (the per-row path), one pixel high
    # or wide; batch 2 takes grad_image's whole-row fast path, batch 1 its column tiles.
    for shape in [(2, 5, 7, 3), (2, 4, 6, 2), (1, 3, 40, 20), (1, 1, 6, 3), (1, 4, 1, 1)]:
        image = strided(ramp(shape))
        for crop_size in CROP_SIZES:
            for method in (crop.BILINEAR, crop.NEAREST, crop.BILINEAR_V2):
                crop_forward(image, CROP_BOXES, crop_size, method)
                for half in (False, True):
                    crop_grad_image(strided(np.zeros(shape, F32)), CROP_BOXES,
                                    crop_size, method, half)
            crop_grad_boxes(image, CROP_BOXES, crop_size, True)
            crop_grad_boxes(image, CROP_BOXES, crop_size, False)
    # Streaming stores: a 16 MiB output of 32 channels, from a 1x1 image.
    crop_forward(strided(ramp((1, 1, 1, 32))), CROP_BOXES[:1], (512, 256),
                 crop.BILINEAR)
    # The far edge of a huge axis: its float coordinate rounds to the size itself. Batch 2
    # takes grad_image's whole-row fast path.
    edge = np.array([[1, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]], F32)
    for huge_axis in (1, 2):
        image = huge_view(ramp((2, 2, 1, 1)), huge_axis)
        for crop_size in [(1, 1), (2, 2)]:
            for method in (crop.BILINEAR, crop.NEAREST, crop.BILINEAR_V2):
                crop_forward(image, edge, crop_size, method)
                crop_grad_image(huge_view(np.zeros((2, 2, 1, 1), F32), huge_axis), edge,
                                crop_size, method, False)
            crop_grad_boxes(image, edge, crop_size, True)


def align_args(rois, input_shape, output_size, options):
    """(rois, batch indices, the convention's kernel arguments) for ``options``, a dict of
    ``roi_align`` keywords; the arguments come from the API's own ``Options``."""
    indices = np.trunc(rois[:, 0]).astype(np.int64) % input_shape[0]
    kernel_args = align_api.Options(output_size, options.get("spatial_scale", 1.0),
                                    options["sampling_ratio"], options.get("aligned", False),
                                    options.get("convention", "torchvision"),
                                    options.get("roi_end_mode", 1)).kernel_args(F32)
    return (rois, indices, *kernel_args)


def align_calls(input, gradient, rois, output_size, options):
    """Forward, input gradient and box gradient, in float and in half arithmetic.

    ``gradient`` is the zeroed channels-last ``[N, H, W, C]`` the input gradient accumulates
    into; when C-contiguous it is also passed as the alias the dense path writes through,
    as the API does, and otherwise that path allocates its own temporary.
    """
    args = align_args(rois, input.shape, output_size, options)
    out = np.empty((len(rois), input.shape[1], *output_size), F32)
    grads = ramp(out.shape)
    alias = gradient if gradient.flags.c_contiguous else np.empty((0, 0, 0, 0), F32)
    for half in (False, True):
        align.forward(input, *args, half, out, False, F32)
        align.grad_input(grads, *args, half, gradient.transpose(0, 3, 1, 2), alias, F32)
    align.grad_boxes(grads, input, *args, np.zeros((len(rois), 5), F32), F32)


def roi_align_rois(height, width, count):
    """``count`` rois (image coordinates) cycling through edge cases on a ``height x width``
    map: whole map, past every edge, flipped, on the far edge, degenerate, outside."""
    cases = [
        [0, 0, 0, width, height], [0, -1, -1, width + 1, height + 1],
        [0, width, height, 0, 0], [0, width, height, width, height], [0, 0, 0, 0, 0],
        [0, 2 * width, 2 * height, 3 * width, 3 * height], [0, -5, -5, -2, -2],
        [0, width - 1, 0, width, height],
    ]
    rois = np.array([cases[k % len(cases)] for k in range(count)], F32)
    rois[:, 0] = np.arange(count) % 2
    return rois


ALIGN_OPTIONS = [
    dict(sampling_ratio=2, aligned=False), dict(sampling_ratio=-1, aligned=True),
    dict(sampling_ratio=0, aligned=False, spatial_scale=0.5),
    dict(sampling_ratio=-1, convention="mindspore", roi_end_mode=1),
    dict(sampling_ratio=2, convention="mindspore", roi_end_mode=0),
]


def roi_align_calls():
    # Few rois gather in place, many (dense) through the channels-last copy.
    for batch, channels, height, width in [(2, 3, 5, 7), (2, 2, 1, 6), (2, 2, 4, 1)]:
        input = strided(ramp((batch, channels, height, width)))
        for count in (8, 80):
            rois = roi_align_rois(height, width, count)
            for output_size in [(1, 1), (2, 3)]:
                for options in ALIGN_OPTIONS:
                    gradient = np.zeros((batch, height, width, channels), F32)
                    align_calls(input, gradient, rois, output_size, options)
    # The far edge of a huge axis (coordinates up to float32(size), which rounds up).
    edge = F32(HUGE - 1)
    rois = np.array([[0, edge, 0, HUGE, 1], [0, 0, edge, 1, HUGE]], F32)
    for huge_axis in (2, 3):
        input = huge_view(ramp((1, 1, 2, 2)), huge_axis)
        gradient = huge_view(np.zeros((1, 2, 2, 1), F32), huge_axis - 1)
        for options in (ALIGN_OPTIONS[0], ALIGN_OPTIONS[3]):
            align_calls(input, gradient, rois, (2, 2), options)


# --- the RoI family, through the public API ----------------------------------------------
# float32 strided views through the native API (the float kernels), float16 through the
# compatibility layers (torchvision's and mmcv's half arithmetic: geometry rounded to half,
# the float16 writes). Few rois take the in-place paths, many (dense) the channels-last ones.
# Scale 1 puts bins on the maps' far edges, scale 1/2 elsewhere.

def family_inputs(shape):
    """``shape`` maps as a strided float32 view and as a float16 array."""
    return strided(ramp(shape)), ramp(shape).astype(np.float16)


def roi_pool_calls():
    # 3 channels: the in-place scan and the channels-last copy of the maps; 128 channels:
    # each thread's own channel-block buffer (a block of 64 or more per thread).
    for batch, channels, height, width in [(2, 3, 5, 7), (2, 2, 1, 6), (2, 2, 4, 1),
                                           (2, 128, 3, 4)]:
        shape = (batch, channels, height, width)
        for input in family_inputs(shape):
            for count in (8, 80):
                rois = roi_align_rois(height, width, count).astype(input.dtype)
                for output_size, scale in [((1, 1), 1.0), ((2, 3), 0.5)]:
                    out, argmax = roiops.roi_pool(input, rois, output_size, spatial_scale=scale,
                                                  return_argmax=True)
                    grads = ramp(out.shape).astype(input.dtype)
                    if input.dtype == F32:
                        roiops.roi_pool_grad_input(grads, argmax, rois, shape)
                    else:
                        torchvision.roi_pool(input, rois, output_size, scale)
                        torchvision.roi_pool_backward(grads, rois, argmax, shape)


def position_sensitive_calls():
    # 2 output channels of 2x3 bins: 12 input channels.
    for batch, height, width in [(2, 5, 7), (2, 1, 6), (2, 4, 1)]:
        shape = (batch, 12, height, width)
        for input in family_inputs(shape):
            for count in (8, 80):
                rois = roi_align_rois(height, width, count).astype(input.dtype)
                grads = ramp((count, 2, 2, 3)).astype(input.dtype)
                for ratio, scale in [(-1, 1.0), (2, 0.5)]:
                    if input.dtype == F32:
                        options = dict(spatial_scale=scale, sampling_ratio=ratio)
                        roiops.ps_roi_align(input, rois, (2, 3), **options)
                        roiops.ps_roi_align_grad_input(grads, rois, shape, (2, 3), **options)
                        roiops.ps_roi_align_grad_boxes(grads, input, rois, (2, 3), **options)
                        roiops.ps_roi_pool(input, rois, (2, 3), spatial_scale=scale)
                        roiops.ps_roi_pool_grad_input(grads, rois, shape, (2, 3),
                                                      spatial_scale=scale)
                        # 18 output channels: two of the forward's channel blocks, the
                        # second ending in a partial group
                        roiops.ps_roi_pool(np.tile(input, (1, 9, 1, 1)), rois, (2, 3),
                                           spatial_scale=scale)
                    else:
                        torchvision.ps_roi_align(input, rois, (2, 3), scale, ratio)
                        torchvision.ps_roi_align_backward(grads, rois, shape, (2, 3), scale,
                                                          ratio)
                        torchvision.ps_roi_pool(input, rois, (2, 3), scale)
                        torchvision.ps_roi_pool_backward(grads, rois, shape, (2, 3), scale)


def multi_scale_calls():
    # Two levels at scales 1 and 1/2 of a 10x14 image; the mapper's levels and given ones,
    # -1 (no level) included.
    shapes = [(2, 3, 10, 14), (2, 3, 5, 7)]
    scales = [1.0, 0.5]
    for count in (8, 80):
        rois = roi_align_rois(10, 14, count)
        given = (np.arange(count) % 3 - 1).astype(np.int64)
        grads = ramp((count, 3, 2, 3))
        maps = [strided(ramp(s)) for s in shapes]
        half_maps = [ramp(s).astype(np.float16) for s in shapes]
        for ratio, aligned in [(-1, True), (2, False)]:
            options = dict(sampling_ratio=ratio, aligned=aligned)
            roiops.multi_scale_roi_align(maps, rois, (2, 3), scales, **options)
            roiops.multi_scale_roi_align(maps, rois, (2, 3), scales, levels=given, **options)
            roiops.multi_scale_roi_align_grad_input(grads, rois, given, shapes, (2, 3), scales,
                                                    **options)
            roiops.multi_scale_roi_align_grad_boxes(grads, maps, rois, given, (2, 3), scales,
                                                    **options)
            torchvision_multiscale.multi_scale_roi_align(
                half_maps, rois.astype(np.float16), (2, 3), ratio, scales, 0, 1)


def rotated_rois(height, width, count):
    """``count`` rotated rois ``(batch, cx, cy, w, h, angle)`` cycling through edge cases:
    the whole map at several angles (degrees or radians alike), centred on each corner,
    larger than the map, degenerate, outside."""
    cases = [
        [0, width / 2, height / 2, width, height, 0],
        [0, width / 2, height / 2, width, height, 90],
        [0, width / 2, height / 2, 2 * width, 2 * height, 180],
        [0, 0, 0, width, height, -45], [0, width, height, width, height, 30],
        [0, width, 0, 1, 1, 45], [0, 0, height, 0, 0, 0],
        [0, 3 * width, 3 * height, width, height, 10], [0, -width, -height, 2, 2, -90],
    ]
    rois = np.array([cases[k % len(cases)] for k in range(count)], F32)
    rois[:, 0] = np.arange(count) % 2
    return rois


def rotated_calls():
    # 9 rois on the 12x16 map gather in place, 90 on the small maps channels last.
    for batch, channels, height, width, count in [(2, 3, 5, 7, 90), (2, 2, 1, 6, 90),
                                                  (2, 2, 4, 1, 90), (2, 2, 12, 16, 9)]:
        shape = (batch, channels, height, width)
        for input in family_inputs(shape):
            rois = rotated_rois(height, width, count).astype(input.dtype)
            grads = ramp((count, channels, 2, 3)).astype(input.dtype)
            for ratio, scale in [(0, 1.0), (2, 0.5)]:
                if input.dtype == F32:
                    for options in [dict(), dict(convention="mmcv", aligned=False,
                                                 clockwise=True)]:
                        options.update(spatial_scale=scale, sampling_ratio=ratio)
                        roiops.roi_align_rotated(input, rois, (2, 3), **options)
                        roiops.roi_align_rotated_grad_input(grads, rois, shape, (2, 3),
                                                            **options)
                        roiops.roi_align_rotated_grad_boxes(grads, input, rois, (2, 3),
                                                            **options)
                else:
                    mmcv.roi_align_rotated(input, rois, (2, 3), scale, ratio)
                    mmcv.roi_align_rotated_backward(grads, rois, shape, (2, 3), scale, ratio)
    # The far edge of a huge axis: float32 rounds its last coordinates up to the size.
    edge = F32(HUGE - 1)
    for huge_axis, rois in [(2, [[0, 1, edge, 2, 2, 0], [0, 1, HUGE, 1, 1, 45]]),
                            (3, [[0, edge, 1, 2, 2, 0], [0, HUGE, 1, 1, 1, 45]])]:
        input = huge_view(ramp((1, 1, 2, 2)), huge_axis)
        rois = np.array(rois, F32)
        grads = ramp((2, 1, 2, 2))
        roiops.roi_align_rotated(input, rois, 2)
        roiops.roi_align_rotated_grad_input(grads, rois, input.shape, 2)
        roiops.roi_align_rotated_grad_boxes(grads, input, rois, 2)

if __name__ == "__main__":
    crop_and_resize_calls()
    roi_align_calls()
    roi_pool_calls()
    position_sensitive_calls()
    multi_scale_calls()
    rotated_calls()
