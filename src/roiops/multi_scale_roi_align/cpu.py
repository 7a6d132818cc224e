"""Numba CPU kernels of multi-scale RoI Align: one fused call over every roi and level.

Every roi reads the map of its own level, at that level's scale; the per-roi arithmetic is
roi_align's, called, not copied: the plan of valid samples (``roiops.roi_align.plan``, each
roi on its own scale and map size), and from ``roiops.roi_align.cpu`` the per-roi forward in
place or from a channels-last copy, the per-roi input-gradient scatter and the per-roi box
gradient. The levels travel as a tuple of arrays, indexed by each roi's level inside the
kernels: no Python loop over levels, no gather or scatter of rois per level.

- Forward: parallel over (roi, block of channels); a roi without a level (``-1``) gets zeros.
- Input gradient: parallel over (image, block of channels, level), each task walking the rois
  of its level and image in ascending order, so every element receives its adds in the order
  torchvision's per-level backward gives them, whatever the thread count (no atomics).
- Box gradient: parallel over rois, each row written by one thread.
"""
import numba
import numpy as np
from numba import njit

from .._threads import run_tasks
from ..roi_align.cpu import (
    _CHANNEL_BLOCK,
    _CHANNELS_LAST_MIN_RATIO,
    _channels_last,
    _forward_channels_last,
    _forward_in_place,
    _grad_input_channels_last,
    _grad_input_in_place,
    _vector_blocks,
    grad_boxes_roi,
)
from ..roi_align.plan import plan


def _plan(half, rois, levels, scales, shapes, sampling_ratio, geometry, pooled_height,
          pooled_width, F):
    """roi_align's plan with every roi on its level's map (a roi without a level is planned
    on level 0 and never read)."""
    level = np.maximum(levels, 0)
    heights = np.array([s[2] for s in shapes], np.int64)[level]
    widths = np.array([s[3] for s in shapes], np.int64)[level]
    roi_scales = np.array(scales, F)[level]
    return plan(rois, roi_scales, heights, widths, sampling_ratio, geometry, pooled_height,
                pooled_width, half, F)


def _use_channels_last(plan, shapes):
    """roi_align's rule over all levels: the taps outnumber the maps' elements a few times."""
    y_first, x_first = plan.ys.first, plan.xs.first
    samples = int(((y_first[:, -1] - y_first[:, 0]) * (x_first[:, -1] - x_first[:, 0])).sum())
    elements = sum(s[0] * s[2] * s[3] for s in shapes)
    return 4 * samples >= _CHANNELS_LAST_MIN_RATIO * elements


def _same_layout(maps):
    """The maps as one Numba type: a tuple of arrays is indexed at run time only when they
    share one (layout, read-only flag, alignment). Maps that do are passed as they are;
    otherwise every map that is not a writeable, aligned, C-contiguous array is copied to
    one."""
    if len({numba.typeof(m) for m in maps}) == 1:
        return tuple(maps)
    return tuple(m if m.flags.c_contiguous and m.flags.writeable and m.flags.aligned
                 else np.array(m, order="C") for m in maps)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_channels_last_tasks(maps, out, out_half, batch_indices, levels, block, num_blocks,
                                 plan, F, task_begin, task_end):
    """roi_align's channels-last forward of the (roi, channel block) tasks given, each roi
    from its level's ``[N, H, W, C]`` map."""
    channels = out.shape[1]
    acc = np.empty((out.shape[2] * out.shape[3], block), F)
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * block
        stop_channel = min(first_channel + block, channels)
        level = levels[k]
        if level < 0:
            out[k, first_channel:stop_channel] = 0
            continue
        _forward_channels_last(maps[level], out, out_half, k, batch_indices[k], first_channel,
                               stop_channel, plan.count[k], plan.ys, plan.xs, acc, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_in_place_tasks(maps, out, out_half, batch_indices, levels, num_blocks, plan, half,
                            F, task_begin, task_end):
    """roi_align's in-place forward of the (roi, ``_CHANNEL_BLOCK`` channels) tasks given."""
    channels = out.shape[1]
    for task in range(task_begin, task_end):
        k = task // num_blocks
        first_channel = (task % num_blocks) * _CHANNEL_BLOCK
        stop_channel = min(first_channel + _CHANNEL_BLOCK, channels)
        level = levels[k]
        if level < 0:
            out[k, first_channel:stop_channel] = 0
            continue
        _forward_in_place(maps[level], out, out_half, k, batch_indices[k], first_channel,
                          stop_channel, plan.count[k], plan.ys, plan.xs, half, F)


def forward(maps, rois, batch_indices, levels, scales, sampling_ratio, geometry,
            half_arithmetic, out, out_half, F):
    """Multi-scale RoI Align into ``out`` ``[K, C, PH, PW]`` (``F``, or half bits when
    ``out_half``): roi ``k`` is roi_align of ``maps[levels[k]]`` at ``scales[levels[k]]``."""
    shapes = [m.shape for m in maps]
    num_rois, channels, pooled_height, pooled_width = out.shape
    plan = _plan(half_arithmetic, rois, levels, scales, shapes, sampling_ratio, geometry,
                 pooled_height, pooled_width, F)
    if not half_arithmetic and _use_channels_last(plan, shapes):
        block, num_blocks = _vector_blocks(channels, num_rois)
        run_tasks(_forward_channels_last_tasks, num_rois * num_blocks,
                  tuple(_channels_last(m) for m in maps), out, out_half, batch_indices, levels,
                  block, num_blocks, plan, F)
    else:
        num_blocks = (channels + _CHANNEL_BLOCK - 1) // _CHANNEL_BLOCK
        run_tasks(_forward_in_place_tasks, num_rois * num_blocks, _same_layout(maps), out,
                  out_half, batch_indices, levels, num_blocks, plan, half_arithmetic, F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_input_tasks(grads, gradients, batch_indices, levels, block, num_blocks, plan,
                      largest_plane, half, F, task_begin, task_end):
    """The input gradient of the (image, channel block, level) tasks given, the level
    fastest (so that every thread's chunk mixes big and small levels): every roi of the
    level and image in ascending order. ``gradients`` are the levels' ``[N, C, H, W]``
    results, each element written by one task. The half path scatters into them channel by
    channel; the float path scatters over channel vectors into a channels-last buffer of the
    task's own (``largest_plane`` pixels of ``block`` channels, reused from task to task),
    then writes it out channels first: no channels-last copy of the whole gradient."""
    num_levels = len(gradients)
    channels = gradients[0].shape[1]
    g = np.empty(block, F)
    buffer = np.empty(0 if half else largest_plane * block, F)
    for task in range(task_begin, task_end):
        level = task % num_levels
        rest = task // num_levels
        b = rest // num_blocks
        first_channel = (rest % num_blocks) * block
        stop_channel = min(first_channel + block, channels)
        lanes = stop_channel - first_channel
        result = gradients[level][b, first_channel:stop_channel]
        height, width = result.shape[1], result.shape[2]
        if half:
            result[:] = 0
            for k in range(grads.shape[0]):
                if levels[k] == level and batch_indices[k] == b:
                    _grad_input_in_place(grads, gradients[level], k, b, first_channel,
                                         stop_channel, plan.count[k], plan.ys, plan.xs, True,
                                         F)
            continue
        image = buffer[:height * width * lanes].reshape((height, width, lanes))
        touched = False
        for k in range(grads.shape[0]):
            if levels[k] == level and batch_indices[k] == b:
                if not touched:
                    image[:] = 0
                    touched = True
                _grad_input_channels_last(grads, image, 0, k, first_channel, stop_channel,
                                          plan.count[k], plan.ys, plan.xs, g)
        if touched:
            _write_channels_first(result, image)
        else:
            result[:] = 0


@njit(cache=True, error_model="numpy")
def _write_channels_first(result, image):
    """``result[c, y, x] = image[y, x, c]``, row by row: the reads stream, and each
    channel's output row stays in L1 across consecutive x."""
    channels, height, width = result.shape
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                result[c, y, x] = image[y, x, c]


def grad_input(grads, rois, batch_indices, levels, scales, sampling_ratio, geometry,
               half_arithmetic, gradients, F):
    """The input gradient of every level into the ``[N, C, H, W]`` arrays ``gradients``
    (``F``, C-contiguous, any content: every element is written): the adjoint of
    :func:`forward`, each element receiving ``(g * w) / count`` in the sequential order
    (roi, ph, pw, iy, ix, corner) of its level's rois, bit-identical to torchvision's
    per-level CPU backward."""
    shapes = [g.shape for g in gradients]
    batch, channels = shapes[0][0], shapes[0][1]
    plan = _plan(half_arithmetic, rois, levels, scales, shapes, sampling_ratio, geometry,
                 grads.shape[2], grads.shape[3], F)
    if half_arithmetic:
        block = _CHANNEL_BLOCK
        num_blocks = (channels + block - 1) // block
    else:
        block, num_blocks = _vector_blocks(channels, batch * len(gradients))
    largest_plane = max(s[2] * s[3] for s in shapes)
    run_tasks(_grad_input_tasks, batch * num_blocks * len(gradients), grads, tuple(gradients),
              batch_indices, levels, block, num_blocks, plan, largest_plane, half_arithmetic,
              F)


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_boxes_tasks(grads, maps, batch_indices, levels, scales, plan, out, F, roi_begin,
                      roi_end):
    for k in range(roi_begin, roi_end):
        level = levels[k]
        if level >= 0:
            grad_boxes_roi(grads, maps[level], k, batch_indices[k], scales[level], plan, out, F)


def grad_boxes(grads, maps, rois, batch_indices, levels, scales, sampling_ratio, geometry,
               out, F):
    """roi_align's box gradient of every roi on its level, into the zeroed ``[K, 5]`` ``out``
    (a roi without a level keeps zeros; docs/arithmetic.md#roi_align-box-gradient)."""
    shapes = [m.shape for m in maps]
    plan = _plan(False, rois, levels, scales, shapes, sampling_ratio, geometry,
                 grads.shape[2], grads.shape[3], F)
    run_tasks(_grad_boxes_tasks, grads.shape[0], grads, _same_layout(maps), batch_indices,
              levels, np.array(scales, F), plan, out, F)
