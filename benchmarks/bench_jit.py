"""JIT cost: the cold compile, and the first call in a fresh process with a warm cache.

    python benchmarks/bench_jit.py

Each measurement is a new Python process with NUMBA_CACHE_DIR pointing at an empty (cold) or
already filled (warm) directory; it times `import roiops` and then the first float32 call of
each operator on a small input.
"""
import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import json, time
start = time.perf_counter()
import numpy as np
import roiops
times = {"import roiops": time.perf_counter() - start}
image = np.zeros((1, 8, 8, 3), np.float32)
boxes = np.array([[0.1, 0.1, 0.9, 0.9]], np.float32)
index = np.zeros(1, np.int64)
grads = np.ones((1, 4, 4, 3), np.float32)
features = np.zeros((1, 3, 8, 8), np.float32)
rois = np.array([[0, 1, 1, 6, 6]], np.float32)
pooled = np.ones((1, 3, 2, 2), np.float32)
calls = {
    "crop_and_resize": lambda: roiops.crop_and_resize(image, boxes, index, (4, 4)),
    "crop_and_resize_grad_image": lambda: roiops.crop_and_resize_grad_image(grads, boxes, index,
                                                                            image.shape),
    "crop_and_resize_grad_boxes": lambda: roiops.crop_and_resize_grad_boxes(grads, image, boxes,
                                                                            index),
    "roi_align": lambda: roiops.roi_align(features, rois, 2),
    "roi_align_grad_input": lambda: roiops.roi_align_grad_input(pooled, rois, features.shape, 2),
    "roi_align_grad_boxes": lambda: roiops.roi_align_grad_boxes(pooled, features, rois, 2),
}
for name, call in calls.items():
    start = time.perf_counter()
    call()
    times[name] = time.perf_counter() - start
print(json.dumps(times))
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    output = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run(cache_dir)
        warm = run(cache_dir)
    print("| step | cold cache (s) | warm cache (s) |")
    print("|---|---|---|")
    for name in cold:
        print(f"| {name} | {cold[name]:.2f} | {warm[name]:.3f} |")
    print(f"| total | {sum(cold.values()):.1f} | {sum(warm.values()):.2f} |")


if __name__ == "__main__":
    main()
