"""JIT cost: what a fresh install pays before its first results, and a warm cache's first calls.

    python benchmarks/bench_jit.py [--skip-operators]

Every measurement is a new Python process with NUMBA_CACHE_DIR pointing at a new, empty
directory (a fresh install), except the warm column, which reuses the cold column's.

- First calls (issue 14's targets): a uint8 `crop_and_resize`, a float32 `roi_align`, and
  the README's NumPy example block, each alone in its own process and cache, timed from
  before `import roiops` to the end of the call (the block: to its end).
- Operators: `import roiops`, then the first float32 call of each operator in turn on a small
  input, into an empty cache (cold) and again into the filled one (warm).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

FIRST_CROP = r"""
import numpy as np
import roiops
image = np.zeros((1, 480, 640, 3), np.uint8)
boxes = np.array([[0.1, 0.2, 0.6, 0.7]], np.float32)
roiops.crop_and_resize(image, boxes, np.zeros(1, np.int64), (64, 64))
"""

FIRST_ROI_ALIGN = r"""
import numpy as np
import roiops
features = np.zeros((2, 256, 50, 76), np.float32)
rois = np.array([[0, 16.0, 24.0, 200.0, 180.0]], np.float32)
roiops.roi_align(features, rois, 7, spatial_scale=1 / 8, sampling_ratio=2, aligned=True)
"""

OPERATORS = r"""
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

TIMED = "import time\n_start = time.perf_counter()\n{code}\nprint(time.perf_counter() - _start)\n"


def readme_block():
    """The README's first ``python`` block: the NumPy example."""
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


def run(code, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    output = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                            capture_output=True, text=True).stdout
    return output.strip().splitlines()[-1]


def first_call(code):
    """Seconds from before ``import roiops`` to the end of ``code``, into an empty cache."""
    with tempfile.TemporaryDirectory() as cache_dir:
        return float(run(TIMED.format(code=code), cache_dir))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-operators", action="store_true",
                        help="only the first calls, not the per-operator table")
    args = parser.parse_args()
    print("| first call, fresh install (empty cache) | seconds | target |")
    print("|---|---|---|")
    for name, code, target in [
        ("uint8 crop_and_resize ([1,480,640,3] to 64x64)", FIRST_CROP, 3),
        ("float32 roi_align ([2,256,50,76], 7x7)", FIRST_ROI_ALIGN, 3),
        ("README NumPy example block", readme_block(), 15),
    ]:
        print(f"| {name} | {first_call(code):.2f} | <= {target} |", flush=True)
    if args.skip_operators:
        return
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = json.loads(run(OPERATORS, cache_dir))
        warm = json.loads(run(OPERATORS, cache_dir))
    print("\n| step | cold cache (s) | warm cache (s) |")
    print("|---|---|---|")
    for name in cold:
        print(f"| {name} | {cold[name]:.2f} | {warm[name]:.3f} |")
    print(f"| total | {sum(cold.values()):.1f} | {sum(warm.values()):.2f} |")


if __name__ == "__main__":
    main()
