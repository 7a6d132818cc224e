"""roi_align vs torchvision's CPU kernels, side by side, float32, 2 threads.

    .peers/tv/bin/pip install -e .            # roiops into torchvision's venv, once
    .peers/tv/bin/python benchmarks/bench_roi_align.py [--threads 2] [--repeats 15]

Input [2,256,100,152] (an FPN level of an 800x1216 image), spatial_scale 1/8,
sampling_ratio 2, aligned=True; boxes x1~U(0,973), y1~U(0,640), w,h~U(16,400), clipped.
forward+backward is torchvision's autograd forward and backward (input gradient) against
roiops.roi_align followed by roiops.roi_align_grad_input.
"""
import numpy as np
import torch
import torchvision
from torchvision.ops import roi_align as tv_roi_align

import roiops
from harness import machine, median_seconds, parse_args, report

WORKLOADS = [("512 rois, 7x7", 512, 7), ("256 rois, 14x14", 256, 14)]
SCALE, SAMPLING_RATIO = 0.125, 2


def make_rois(count, rng):
    x1 = rng.uniform(0, 973, count)
    y1 = rng.uniform(0, 640, count)
    x2 = np.minimum(x1 + rng.uniform(16, 400, count), 1216)
    y2 = np.minimum(y1 + rng.uniform(16, 400, count), 800)
    index = rng.integers(0, 2, count)
    return np.stack([index, x1, y1, x2, y2], axis=1).astype(np.float32)


def main():
    args = parse_args(__doc__)
    rng = np.random.default_rng(0)
    print(f"## roi_align, float32, {args.threads} threads\n")
    print(f"{machine()}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"roiops {roiops.__version__}")
    features = rng.standard_normal((2, 256, 100, 152), dtype=np.float32)
    t_features = torch.from_numpy(features)
    for title, count, pooled in WORKLOADS:
        rois = make_rois(count, rng)
        t_rois = torch.from_numpy(rois)
        grads = rng.standard_normal((count, 256, pooled, pooled), dtype=np.float32)
        t_grads = torch.from_numpy(grads)
        options = dict(spatial_scale=SCALE, sampling_ratio=SAMPLING_RATIO, aligned=True)

        def tv_forward():
            with torch.no_grad():
                tv_roi_align(t_features, t_rois, pooled, SCALE, SAMPLING_RATIO, True)

        def tv_forward_backward():
            leaf = t_features.detach().requires_grad_()
            tv_roi_align(leaf, t_rois, pooled, SCALE, SAMPLING_RATIO, True).backward(t_grads)

        def roiops_forward_backward():
            roiops.roi_align(features, rois, pooled, **options)
            roiops.roi_align_grad_input(grads, rois, features.shape, pooled, **options)

        forward = median_seconds({
            "torchvision": tv_forward,
            "roiops": lambda: roiops.roi_align(features, rois, pooled, **options),
        }, args.repeats)
        report(f"forward: {title}", forward, ["torchvision"])
        both = median_seconds({
            "torchvision": tv_forward_backward,
            "roiops": roiops_forward_backward,
        }, args.repeats)
        report(f"forward+backward: {title}", both, ["torchvision"])


if __name__ == "__main__":
    main()
