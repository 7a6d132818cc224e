"""ps_roi_align and ps_roi_pool vs torchvision's CPU kernels, side by side, float32.

    .peers/tv/bin/pip install numba && .peers/tv/bin/pip install --no-deps -e .   # once
    .peers/tv/bin/python benchmarks/bench_ps_roi.py [--threads 2] [--repeats 15]

R-FCN's position-sensitive score maps: 21 classes x 7 x 7 = 1029 channels over
[2, 1029, 100, 152] (an 800x1216 image at stride 8), 512 rois, 7x7 bins, spatial_scale 1/8;
ps_roi_align with sampling_ratio 2. Boxes x1~U(0,973), y1~U(0,640), w,h~U(16,400), clipped.
forward+backward is torchvision's autograd forward and backward (input gradient) against
roiops's forward followed by its input gradient. The forward+backward tables add the floor of
any input gradient: a fresh array of the maps' size (125 MB), written once.
"""
import numpy as np
import torch
import torchvision
from torchvision.ops import ps_roi_align as tv_ps_roi_align
from torchvision.ops import ps_roi_pool as tv_ps_roi_pool

import roiops
from harness import fresh_floor, machine, median_seconds, parse_args, report

CLASSES, POOLED, ROIS = 21, 7, 512
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
    print(f"## ps_roi_align and ps_roi_pool, float32, {args.threads} threads\n")
    print(f"{machine()}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"roiops {roiops.__version__}")
    channels = CLASSES * POOLED * POOLED
    features = rng.standard_normal((2, channels, 100, 152), dtype=np.float32)
    rois = make_rois(ROIS, rng)
    grads = rng.standard_normal((ROIS, CLASSES, POOLED, POOLED), dtype=np.float32)
    t_features, t_rois, t_grads = (torch.from_numpy(a) for a in (features, rois, grads))
    contenders = {
        "ps_roi_align": (
            lambda x: tv_ps_roi_align(x, t_rois, POOLED, SCALE, SAMPLING_RATIO),
            lambda: roiops.ps_roi_align(features, rois, POOLED, spatial_scale=SCALE,
                                        sampling_ratio=SAMPLING_RATIO),
            lambda: roiops.ps_roi_align_grad_input(grads, rois, features.shape, POOLED,
                                                   spatial_scale=SCALE,
                                                   sampling_ratio=SAMPLING_RATIO)),
        "ps_roi_pool": (
            lambda x: tv_ps_roi_pool(x, t_rois, POOLED, SCALE),
            lambda: roiops.ps_roi_pool(features, rois, POOLED, spatial_scale=SCALE),
            lambda: roiops.ps_roi_pool_grad_input(grads, rois, features.shape, POOLED,
                                                  spatial_scale=SCALE)),
    }
    for name, (tv_call, forward, backward) in contenders.items():
        def tv_forward(tv_call=tv_call):
            with torch.no_grad():
                tv_call(t_features)

        def tv_forward_backward(tv_call=tv_call):
            leaf = t_features.detach().requires_grad_()
            tv_call(leaf).backward(t_grads)

        def roiops_forward_backward(forward=forward, backward=backward):
            forward()
            backward()

        title = f"{ROIS} rois, {POOLED}x{POOLED}, {channels} channels"
        medians = median_seconds({"torchvision": tv_forward, "roiops": forward}, args.repeats)
        report(f"{name} forward: {title}", medians, ["torchvision"])
        medians = median_seconds({"torchvision": tv_forward_backward,
                                  "roiops": roiops_forward_backward,
                                  "floor: a fresh gradient": fresh_floor(features.shape)},
                                 args.repeats)
        report(f"{name} forward+backward: {title}", medians, ["torchvision"])


if __name__ == "__main__":
    main()
