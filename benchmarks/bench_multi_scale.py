"""MultiScaleRoIAlign vs torchvision's module, side by side, float32, 2 threads.

    PYTHONPATH=src .peers/tv/bin/python benchmarks/bench_multi_scale.py [--threads 2] [--repeats 15]

An FPN pyramid of an 800x1216 image: 4 levels of 256 channels, strides 4, 8, 16, 32
([1,256,200,304] .. [1,256,25,38]); 1000 boxes, sides log-uniform in [16, 600] pixels so that
every level gets boxes; 7x7 bins, sampling_ratio 2. Contenders: torchvision's
``MultiScaleRoIAlign`` (one roi_align per level and an index scatter), roiops's
``compat.torchvision.MultiScaleRoIAlign`` on NumPy arrays (one fused call), and the same
module on tensors (the custom op, with autograd). forward+backward: torchvision's autograd
backward of the maps against roiops's forward then ``multi_scale_roi_align_grad_input``
(NumPy) or autograd (tensors). Inputs are NumPy-backed (torch.from_numpy) for all. The
results are checked equal bit for bit before timing.

--cpu-time: on a loaded machine wall times mostly measure the other processes (and 2 threads
suffer more from them than torchvision's single-threaded kernel). This switch times every
contender on ONE thread by that thread's CPU time, alternating rounds, medians: the work
each does, not what 2 threads give.
"""
import statistics
import time
from collections import OrderedDict

import numba
import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign as TvMultiScaleRoIAlign

import roiops
from harness import machine, median_seconds, parse_args, report
from roiops.compat.torchvision import MultiScaleRoIAlign
from roiops.multi_scale_roi_align.api import numpy_levels

NAMES = ["p2", "p3", "p4", "p5"]
COUNT, POOLED, SAMPLING = 1000, 7, 2
IMAGE = (800, 1216)


def make_boxes(rng, count):
    side = np.exp(rng.uniform(np.log(16), np.log(600), (count, 2)))
    x1 = rng.uniform(0, IMAGE[1] - side[:, 0])
    y1 = rng.uniform(0, IMAGE[0] - side[:, 1])
    return np.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], axis=1).astype(np.float32)


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
    print(f"## MultiScaleRoIAlign, float32, {args.threads} threads, {clock}\n")
    print(f"{machine()}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"roiops {roiops.__version__}")
    maps = OrderedDict((name, rng.standard_normal(
        (1, 256, IMAGE[0] // stride, IMAGE[1] // stride), dtype=np.float32))
        for name, stride in zip(NAMES, (4, 8, 16, 32)))
    tensors = OrderedDict((k, torch.from_numpy(v)) for k, v in maps.items())
    boxes = make_boxes(rng, COUNT)
    t_boxes = torch.from_numpy(boxes)
    grads = rng.standard_normal((COUNT, 256, POOLED, POOLED), dtype=np.float32)
    t_grads = torch.from_numpy(grads)
    shapes = [(IMAGE[0], IMAGE[1])]
    tv_pool = TvMultiScaleRoIAlign(NAMES, POOLED, SAMPLING)
    pool = MultiScaleRoIAlign(NAMES, POOLED, SAMPLING)
    pool(maps, [boxes], shapes)  # scales set up, kernels compiled
    rois = np.concatenate([np.zeros((COUNT, 1), np.float32), boxes], axis=1)
    levels = numpy_levels(rois, pool.scales, 224, 4)
    print(f"\nboxes per level: {np.bincount(levels, minlength=4).tolist()}")

    def tv_forward():
        with torch.no_grad():
            return tv_pool(tensors, [t_boxes], shapes)

    def tv_forward_backward():
        leaves = OrderedDict((k, v.detach().requires_grad_()) for k, v in tensors.items())
        tv_pool(leaves, [t_boxes], shapes).backward(t_grads)
        return [v.grad for v in leaves.values()]

    def numpy_forward():
        return pool(maps, [boxes], shapes)

    def numpy_forward_backward():
        pool(maps, [boxes], shapes)
        return roiops.multi_scale_roi_align_grad_input(
            grads, rois, levels, [m.shape for m in maps.values()], POOLED, pool.scales,
            sampling_ratio=SAMPLING)

    def tensor_forward():
        with torch.no_grad():
            return pool(tensors, [t_boxes], shapes)

    def tensor_forward_backward():
        leaves = OrderedDict((k, v.detach().requires_grad_()) for k, v in tensors.items())
        pool(leaves, [t_boxes], shapes).backward(t_grads)
        return [v.grad for v in leaves.values()]

    expected = tv_forward().numpy()
    assert np.array_equal(numpy_forward(), expected)
    assert np.array_equal(tensor_forward().numpy(), expected)
    expected_grads = tv_forward_backward()
    for got, want in zip(numpy_forward_backward(), expected_grads):
        assert np.array_equal(got, want.numpy())
    for got, want in zip(tensor_forward_backward(), expected_grads):
        assert torch.equal(got.contiguous(), want)

    forward = timer({"torchvision": tv_forward, "roiops NumPy": numpy_forward,
                              "roiops tensors": tensor_forward}, args.repeats)
    report(f"forward: {COUNT} rois, 4 levels, {POOLED}x{POOLED}", forward, ["torchvision"])
    both = timer({"torchvision": tv_forward_backward,
                           "roiops NumPy": numpy_forward_backward,
                           "roiops tensors": tensor_forward_backward}, args.repeats)
    report(f"forward+backward: {COUNT} rois, 4 levels, {POOLED}x{POOLED}", both,
           ["torchvision"])


if __name__ == "__main__":
    main()
