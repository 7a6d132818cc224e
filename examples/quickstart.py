"""roiops in one minute: crops and RoI features from a generated scene.

    pip install . && python examples/quickstart.py [--out DIR]

Draws a small scene of coloured rectangles, cuts every object out with crop_and_resize (the
three methods) and pools a feature map with roi_align (both conventions), checks that the
compatibility layers give the same bits as the native API, and writes the crops to
``DIR/crops.npz`` (default: ./roiops-quickstart).
"""
import argparse
import time
from pathlib import Path

import numpy as np

import roiops
from roiops.compat import mindspore as ms
from roiops.compat import tensorflow as tf
from roiops.compat import torchvision as tv


def scene(height=240, width=320, seed=0):
    """A float32 RGB image with rectangles, and their boxes (pixels, x1 y1 x2 y2)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    image[:] = np.linspace(0.1, 0.3, width, dtype=np.float32)[None, :, None]
    objects = []
    for _ in range(8):
        w, h = rng.integers(24, 96, 2)
        x1, y1 = rng.integers(0, width - w), rng.integers(0, height - h)
        image[y1:y1 + h, x1:x1 + w] = rng.uniform(0.4, 1.0, 3)
        objects.append((x1, y1, x1 + w - 1, y1 + h - 1))
    return image, np.array(objects, np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("roiops-quickstart"))
    args = parser.parse_args()

    image, objects = scene()
    height, width = image.shape[:2]
    batch = image[None]                                             # [1, H, W, 3]
    # crop_and_resize boxes: [y1, x1, y2, x2] normalized so that 0 and 1 are the edge pixels.
    boxes = (objects[:, [1, 0, 3, 2]] / np.float32([height - 1, width - 1] * 2)).astype(np.float32)
    box_indices = np.zeros(len(boxes), np.int32)

    start = time.perf_counter()
    crops = {method: roiops.crop_and_resize(batch, boxes, box_indices, (64, 64), method=method)
             for method in ("bilinear", "nearest", "bilinear_v2")}
    elapsed = time.perf_counter() - start
    print(f"crop_and_resize: {len(boxes)} objects -> {crops['bilinear'].shape} per method "
          f"({elapsed:.2f} s including the first-call compile)")

    same_tf = np.array_equal(tf.crop_and_resize(batch, boxes, box_indices, (64, 64)),
                             crops["bilinear"])
    same_ms = np.array_equal(ms.CropAndResize("bilinear_v2")(batch, boxes, box_indices, (64, 64)),
                             crops["bilinear_v2"])
    print(f"  TensorFlow layer identical: {same_tf}; MindSpore bilinear_v2 identical: {same_ms}")

    grads = np.ones_like(crops["bilinear"])
    box_grad = roiops.crop_and_resize_grad_boxes(grads, batch, boxes, box_indices)
    print(f"  d(sum of crops)/d(box) of object 0: {np.round(box_grad[0], 2).tolist()}")

    # A feature map at 1/8 of the image, pooled at 7x7 for every object.
    features = np.ascontiguousarray(batch[:, ::8, ::8].transpose(0, 3, 1, 2))  # [1, 3, 30, 40]
    rois = np.concatenate([np.zeros((len(objects), 1), np.float32), objects], axis=1)
    pooled = roiops.roi_align(features, rois, 7, spatial_scale=1 / 8, sampling_ratio=2,
                              aligned=True)
    same_tv = np.array_equal(tv.roi_align(features, [objects], 7, 1 / 8, 2, True), pooled)
    ms_pooled = roiops.roi_align(features, rois, 7, spatial_scale=1 / 8, sampling_ratio=2,
                                 convention="mindspore", roi_end_mode=1)
    print(f"roi_align: {pooled.shape}; torchvision layer identical: {same_tv}; "
          f"mean |torchvision - mindspore convention| = {np.abs(pooled - ms_pooled).mean():.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "crops.npz"
    np.savez_compressed(target, boxes=boxes, pooled=pooled, **crops)
    print(f"wrote {target.resolve()}")


if __name__ == "__main__":
    main()
