"""Rotated RoI Align vs mmcv's CPU kernel, side by side, float32; roiops's roi_align on the
same (axis-aligned) boxes for scale.

    .peers/tv/bin/pip install numba && .peers/tv/bin/pip install --no-deps -e .   # once
    .peers/tv/bin/python benchmarks/bench_rotated.py [--threads 2] [--repeats 15]

mmcv 2.2.0's rotated RoI Align CPU sources are compiled from its sdist by
tests/golden/make_rotated_golden.py (``build``; its first run downloads the sdist). A
detection workload: [2, 256, 100, 152] feature maps (an 800x1216 image at stride 8), 512 rois,
7x7 bins, spatial_scale 1/8, mmcv's convention (aligned, angles in radians); boxes with
centres over the image, w,h~U(16,400), angles U(-pi/2, pi/2); sampling_ratio 2 and 0
(adaptive). forward+backward is mmcv's forward then its backward (input gradient, into a
zeroed buffer as its autograd function allocates) against roiops's forward then its input
gradient; roi_align runs torchvision's aligned convention on the boxes' axis-aligned
extents (x1, y1, x2, y2) with the same sampling ratio.
"""
import math
import os
import sys

import numpy as np
import torch

import roiops
from harness import machine, median_seconds, parse_args, report

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "golden"))
from make_rotated_golden import MMCV_VERSION, build

CHANNELS, POOLED, ROIS, SCALE = 256, 7, 512, 0.125


def make_rois(count, rng):
    cx = rng.uniform(0, 1216, count)
    cy = rng.uniform(0, 800, count)
    w = rng.uniform(16, 400, count)
    h = rng.uniform(16, 400, count)
    angle = rng.uniform(-math.pi / 2, math.pi / 2, count)
    index = rng.integers(0, 2, count)
    return np.stack([index, cx, cy, w, h, angle], axis=1).astype(np.float32)


def main():
    args = parse_args(__doc__)
    ext = build()
    rng = np.random.default_rng(0)
    print(f"## Rotated RoI Align, float32, {args.threads} threads\n")
    print(f"{machine()}; torch {torch.__version__}, mmcv {MMCV_VERSION} CPU op (sdist), "
          f"roiops {roiops.__version__}; load {os.getloadavg()[0]:.2f} at start")
    features = rng.standard_normal((2, CHANNELS, 100, 152), dtype=np.float32)
    rois = make_rois(ROIS, rng)
    boxes = np.stack([rois[:, 0], rois[:, 1] - rois[:, 3] / 2, rois[:, 2] - rois[:, 4] / 2,
                      rois[:, 1] + rois[:, 3] / 2, rois[:, 2] + rois[:, 4] / 2], axis=1)
    grads = rng.standard_normal((ROIS, CHANNELS, POOLED, POOLED), dtype=np.float32)
    t_features, t_rois, t_grads = (torch.from_numpy(a) for a in (features, rois, grads))
    for ratio in (2, 0):
        def mmcv_forward(ratio=ratio):
            out = t_features.new_zeros(ROIS, CHANNELS, POOLED, POOLED)
            ext.forward(t_features, t_rois, out, POOLED, POOLED, SCALE, ratio, True, False)
            return out

        def mmcv_forward_backward(ratio=ratio):
            mmcv_forward(ratio)
            grad_input = t_features.new_zeros(t_features.shape)
            ext.backward(t_grads, t_rois, grad_input, POOLED, POOLED, SCALE, ratio, True,
                         False)

        kw = dict(spatial_scale=SCALE, sampling_ratio=ratio, convention="mmcv")

        def rotated_forward(kw=kw):
            return roiops.roi_align_rotated(features, rois, POOLED, **kw)

        def rotated_forward_backward(kw=kw):
            rotated_forward(kw)
            roiops.roi_align_rotated_grad_input(grads, rois, features.shape, POOLED, **kw)

        aligned = dict(spatial_scale=SCALE, sampling_ratio=ratio if ratio else -1,
                       aligned=True)

        def aligned_forward(aligned=aligned):
            return roiops.roi_align(features, boxes, POOLED, **aligned)

        def aligned_forward_backward(aligned=aligned):
            aligned_forward(aligned)
            roiops.roi_align_grad_input(grads, boxes, features.shape, POOLED, **aligned)

        np.testing.assert_array_equal(rotated_forward(), mmcv_forward().numpy())
        title = (f"{ROIS} rois, {POOLED}x{POOLED}, {CHANNELS} channels, sampling_ratio "
                 f"{ratio}")
        medians = median_seconds({"mmcv": mmcv_forward, "roiops rotated": rotated_forward,
                                  "roiops roi_align (axis-aligned)": aligned_forward},
                                 args.repeats)
        report(f"forward: {title}", medians, ["mmcv"])
        medians = median_seconds({"mmcv": mmcv_forward_backward,
                                  "roiops rotated": rotated_forward_backward,
                                  "roiops roi_align (axis-aligned)": aligned_forward_backward},
                                 args.repeats)
        report(f"forward+backward: {title}", medians, ["mmcv"])
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
