"""The plain reference of multi-scale RoI Align: roi_align's plain reference, level by level.

Slow and obviously correct, for tests: roi ``k`` is the reference roi_align of
``features[levels[k]]`` at ``scales[levels[k]]`` (torchvision's convention); the input
gradient of a level is the reference gradient of that level's rois in ascending order (the
order of torchvision's per-level backward); the box gradient is roi_align's, roi by roi.
Not imported by ``import roiops``.
"""
import numpy as np

from ..roi_align import reference


def multi_scale_roi_align(features, rois, levels, scales, output_size, sampling_ratio=-1,
                          aligned=False, F=np.float32):
    """``[K, C, PH, PW]`` of ``F``; a roi of level ``-1`` gives zeros."""
    PH, PW = reference._opts(output_size)
    out = np.zeros((rois.shape[0], features[0].shape[1], PH, PW), F)
    for k, level in enumerate(levels):
        if level >= 0:
            out[k] = reference.roi_align(features[level], rois[k:k + 1], (PH, PW),
                                         scales[level], sampling_ratio, aligned, F=F)[0]
    return out


def multi_scale_roi_align_grad_input(grads, rois, levels, level_shapes, scales, output_size,
                                     sampling_ratio=-1, aligned=False, F=np.float32):
    """One array of ``F`` per level shape."""
    result = []
    for level, shape in enumerate(level_shapes):
        rows = np.flatnonzero(np.asarray(levels) == level)
        result.append(reference.roi_align_grad_input(grads[rows], rois[rows], shape,
                                                     output_size, scales[level],
                                                     sampling_ratio, aligned, F=F))
    return result


def multi_scale_roi_align_grad_boxes(grads, features, rois, levels, scales, output_size,
                                     sampling_ratio=-1, aligned=False, F=np.float64):
    """``[K, 5]`` of ``F``."""
    out = np.zeros((rois.shape[0], 5), F)
    for k, level in enumerate(levels):
        if level >= 0:
            out[k] = reference.roi_align_grad_boxes(grads[k:k + 1], features[level],
                                                    rois[k:k + 1], output_size, scales[level],
                                                    sampling_ratio, aligned, F=F)[0]
    return out
