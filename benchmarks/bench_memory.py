"""Peak memory of each operator: how far the peak RSS grows beyond the inputs, per call.

    python benchmarks/bench_memory.py

Each operator runs in a fresh process: inputs are allocated and touched, the kernels are
compiled on a tiny call, then one full-size call is made. The growth of the peak resident set
is compared with the size of the result; "no temporaries the size of the output" means a ratio
close to 1 (the result itself) plus whatever input-sized copies the docs mention.
"""
import json
import subprocess
import sys

PROBE = r"""
import json, resource, sys
import numpy as np
import roiops

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

name = sys.argv[1]
rng = np.random.default_rng(0)
if name.startswith("crop"):
    image = rng.random((2, 64, 64, 256), dtype=np.float32)
    start = rng.uniform(0, 0.7, (512, 2))
    boxes = np.concatenate([start, start + 0.2], axis=1).astype(np.float32)
    index = rng.integers(0, 2, 512)
    grads = rng.random((512, 14, 14, 256), dtype=np.float32)
    calls = {
        "crop_and_resize": lambda a: roiops.crop_and_resize(image[:1, :8, :8], boxes[:a],
                                                            index[:a] * 0, (14, 14)),
        "crop_and_resize_grad_image": lambda a: roiops.crop_and_resize_grad_image(
            grads[:a], boxes[:a], index[:a], image.shape),
        "crop_and_resize_grad_boxes": lambda a: roiops.crop_and_resize_grad_boxes(
            grads[:a], image, boxes[:a], index[:a]),
    }
    full = {"crop_and_resize": lambda: roiops.crop_and_resize(image, boxes, index, (14, 14))}
else:
    features = rng.standard_normal((2, 256, 100, 152), dtype=np.float32)
    x1, y1 = rng.uniform(0, 973, 512), rng.uniform(0, 640, 512)
    rois = np.stack([rng.integers(0, 2, 512), x1, y1,
                     np.minimum(x1 + rng.uniform(16, 400, 512), 1216),
                     np.minimum(y1 + rng.uniform(16, 400, 512), 800)], axis=1).astype(np.float32)
    grads = rng.standard_normal((512, 256, 7, 7), dtype=np.float32)
    opts = dict(spatial_scale=0.125, sampling_ratio=2, aligned=True)
    calls = {
        "roi_align": lambda a: roiops.roi_align(features, rois[:a], 7, **opts),
        "roi_align_grad_input": lambda a: roiops.roi_align_grad_input(
            grads[:a], rois[:a], features.shape, 7, **opts),
        "roi_align_grad_boxes": lambda a: roiops.roi_align_grad_boxes(
            grads[:a], features, rois[:a], 7, **opts),
    }
    full = {}
call = calls[name]
call(1)                       # compile
before = peak()
result = full[name]() if name in full else call(512)
growth = peak() - before
print(json.dumps({"result_mb": result.nbytes / 1e6, "growth_mb": growth / 1e6}))
"""

NAMES = ["crop_and_resize", "crop_and_resize_grad_image", "crop_and_resize_grad_boxes",
         "roi_align", "roi_align_grad_input", "roi_align_grad_boxes"]


def main():
    print("Workloads: crop_and_resize image [2,64,64,256], 512 boxes, crop 14x14; roi_align "
          "input [2,256,100,152], 512 rois at 7x7.\n")
    print("| operator | result MB | peak RSS growth MB | growth / result |")
    print("|---|---|---|---|")
    for name in NAMES:
        out = subprocess.run([sys.executable, "-c", PROBE, name], check=True,
                             capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"| {name} | {row['result_mb']:.1f} | {row['growth_mb']:.1f} | "
              f"{row['growth_mb'] / row['result_mb']:.2f} |")


if __name__ == "__main__":
    main()
