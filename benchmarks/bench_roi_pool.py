"""roi_pool vs torchvision's CPU kernels, side by side, float32, 2 threads.

    PYTHONPATH=src .peers/tv/bin/python benchmarks/bench_roi_pool.py [--threads 2] [--repeats 15]

Input [2,256,100,152] (an FPN level of an 800x1216 image), spatial_scale 1/8, 7x7 bins;
512 boxes x1~U(0,973), y1~U(0,640), w,h~U(16,400), clipped (bench_roi_align.py's boxes).
forward+backward is torchvision's autograd forward and backward (input gradient) against
roiops.roi_pool(..., return_argmax=True) followed by roiops.roi_pool_grad_input. Both
contenders take NumPy-backed memory (torch.from_numpy), so neither pays a copy.

--cpu-time: on a loaded machine wall times mostly measure the other processes. This switch
times both on ONE thread by the CPU time of that thread (time.thread_time), alternating
rounds, medians: what each costs in work, not what 2 threads give.
"""
import statistics
import time

import numba
import numpy as np
import torch
import torchvision
from bench_roi_align import make_rois
from torchvision.ops import roi_pool as tv_roi_pool

import roiops
from harness import machine, median_seconds, parse_args, report

SCALE, POOLED, COUNT = 0.125, 7, 512


def cpu_time_medians(contenders, repeats):
    """Median CPU seconds of the calling thread per call, contenders alternating."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.thread_time()
            fn()
            times[name].append(time.thread_time() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    args = parse_args(__doc__, [("--cpu-time", "one thread, CPU time of the thread")])
    timer = median_seconds
    if args.cpu_time:
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        args.threads, timer = 1, cpu_time_medians
    rng = np.random.default_rng(0)
    clock = "CPU time of the thread" if args.cpu_time else "wall time"
    print(f"## roi_pool, float32, {args.threads} threads, {clock}\n")
    print(f"{machine()}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"roiops {roiops.__version__}")
    features = rng.standard_normal((2, 256, 100, 152), dtype=np.float32)
    t_features = torch.from_numpy(features)
    rois = make_rois(COUNT, rng)
    t_rois = torch.from_numpy(rois)
    grads = rng.standard_normal((COUNT, 256, POOLED, POOLED), dtype=np.float32)
    t_grads = torch.from_numpy(grads)

    def tv_forward():
        with torch.no_grad():
            tv_roi_pool(t_features, t_rois, POOLED, SCALE)

    def tv_forward_backward():
        leaf = t_features.detach().requires_grad_()
        tv_roi_pool(leaf, t_rois, POOLED, SCALE).backward(t_grads)

    def roiops_forward_backward():
        _, argmax = roiops.roi_pool(features, rois, POOLED, spatial_scale=SCALE,
                                    return_argmax=True)
        roiops.roi_pool_grad_input(grads, argmax, rois, features.shape)

    # the same bits before any timing
    expected = tv_roi_pool(t_features, t_rois, POOLED, SCALE).numpy()
    assert np.array_equal(roiops.roi_pool(features, rois, POOLED, spatial_scale=SCALE),
                          expected)
    forward = timer({
        "torchvision": tv_forward,
        "roiops": lambda: roiops.roi_pool(features, rois, POOLED, spatial_scale=SCALE),
    }, args.repeats)
    report(f"forward: {COUNT} rois, {POOLED}x{POOLED}", forward, ["torchvision"])
    both = timer({
        "torchvision": tv_forward_backward,
        "roiops": roiops_forward_backward,
    }, args.repeats)
    report(f"forward+backward: {COUNT} rois, {POOLED}x{POOLED}", both, ["torchvision"])


if __name__ == "__main__":
    main()
