"""Kernel calls that ``test_boundscheck.py`` runs in a child process under NUMBA_BOUNDSCHECK=1.

Every Numba kernel of crop_and_resize and roi_align, and each of their internal paths, runs on
small edge-case inputs: boxes that touch the edges, flipped, degenerate or outside the image,
maps one pixel high or wide, crop and output sizes of one. Zero-stride views add images 2**24 + 4
pixels high or wide (float32 rounds ``size - 1`` up to ``size`` there) for a few bytes of memory.
With bounds checking compiled in, any index outside its axis raises IndexError and this script
exits non-zero.

Compiling under bounds checking is slow, so each kernel is compiled once: float32 only, float
outputs only (the half paths run through the same indices), and every image a non-contiguous
view, strided or zero-stride, which Numba types alike; the index arithmetic does not depend on
the layout.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

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


if __name__ == "__main__":
    crop_and_resize_calls()
    roi_align_calls()
