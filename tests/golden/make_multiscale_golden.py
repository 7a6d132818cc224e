"""Generate tests/golden/torchvision_multiscale.npz: torchvision's MultiScaleRoIAlign, recorded.

Run from the repository root with the peer's interpreter (never the roiops venv)::

    .peers/tv/bin/python tests/golden/make_multiscale_golden.py   # torch 2.13 + torchvision 0.28

Each case builds ``torchvision.ops.MultiScaleRoIAlign`` and records, for small feature
pyramids of every dtype torchvision's CPU kernel takes (float16, float32, float64): the
levels its level mapper gives the boxes, the output, and the gradient of every map for a
random output gradient (torchvision has no box gradient). The boxes include ones on the level
boundaries (sides ``224 * 2**n`` exactly, one ulp either side, and at the mapper's ``1e-6``
offset), a zero-area box and a reversed one (NaN area: no level, zeros). Seeded: a rerun with
the same versions gives the same file.

Format: ``cases`` a JSON list (options, image shapes, the names of the maps in ``x``'s order,
the array names of each case); every array is a member ``c<i>/<name>``; ``version`` the
torch and torchvision versions.
"""
import json
import os
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20251216


def boxes_for(rng, n, height, width, dtype):
    """Random boxes plus boundary boxes (square sides around 224 * 2**n) inside the image."""
    rows = []
    for _ in range(n):
        w, h = rng.uniform(2, width * 0.9), rng.uniform(2, height * 0.9)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        rows.append([x1, y1, x1 + w, y1 + h])
    np_dtype = np.dtype(dtype)
    for side in (28.0, 56.0, 112.0, 224.0):
        s = np_dtype.type(side)
        for value in (s, np.nextafter(s, np_dtype.type(0)), np.nextafter(s, np_dtype.type(np.inf)),
                      np_dtype.type(side * 2 ** -1.5e-6), np_dtype.type(side * 2 ** -0.5e-6)):
            rows.append([1.0, 2.0, 1.0 + float(value), 2.0 + float(value)])
    rows.append([5.0, 5.0, 5.0, 9.0])    # zero area
    rows.append([9.0, 5.0, 4.0, 12.0])   # reversed: NaN area, no level
    return np.array(rows, np_dtype)


def case(rng, store, dtype, image_shapes, channels, names, featmap_names, output_size,
         sampling_ratio, strides, **mapper):
    height = max(s[0] for s in image_shapes)
    width = max(s[1] for s in image_shapes)
    x = OrderedDict()
    for name, stride in zip(names, strides):
        shape = (len(image_shapes), channels, -(-height // stride), -(-width // stride))
        x[name] = torch.from_numpy(rng.standard_normal(shape).astype(dtype)).requires_grad_()
    boxes = [torch.from_numpy(boxes_for(rng, 6, h, w, dtype)) for h, w in image_shapes]
    pool = MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio, **mapper)
    out = pool(x, boxes, image_shapes)
    kept = [v for k, v in x.items() if k in featmap_names]
    levels = (pool.map_levels(boxes) if len(kept) > 1
              else torch.zeros(out.shape[0], dtype=torch.int64))
    grad = torch.from_numpy(rng.standard_normal(tuple(out.shape)).astype(dtype))
    out.backward(grad)
    i = len(store["cases"])
    arrays = {"out": out.detach().numpy(), "grad": grad.numpy(), "levels": levels.numpy()}
    for name, value in x.items():
        arrays[f"x_{name}"] = value.detach().numpy()
        if value.grad is not None:
            arrays[f"grad_{name}"] = value.grad.numpy()
    for j, b in enumerate(boxes):
        arrays[f"boxes_{j}"] = b.numpy()
    for key, value in arrays.items():
        store["arrays"][f"c{i}/{key}"] = value
    store["cases"].append({
        "dtype": dtype, "image_shapes": image_shapes, "names": names,
        "featmap_names": featmap_names, "output_size": output_size,
        "sampling_ratio": sampling_ratio, "mapper": mapper, "num_images": len(boxes),
        "scales": pool.scales, "arrays": sorted(arrays)})


def main():
    rng = np.random.default_rng(SEED)
    store = {"cases": [], "arrays": {}}
    fpn = ["p2", "p3", "p4", "p5"]
    for dtype in ("float32", "float64", "float16"):
        case(rng, store, dtype, [(250, 300), (256, 320)], 1, fpn, fpn, 3, 2, (4, 8, 16, 32))
        case(rng, store, dtype, [(200, 200)], 2, fpn, fpn, (2, 3), -1, (4, 8, 16, 32))
    # x's order differs from featmap_names, one map left out, other mapper constants
    case(rng, store, "float32", [(256, 256), (192, 240)], 2, ["p5", "p3", "p2", "p4"],
         ["p2", "p3", "p4"], 2, 1, (32, 8, 4, 16), canonical_scale=112, canonical_level=3)
    # maps whose size is not an exact power of two of the image's (rounded scales)
    case(rng, store, "float32", [(300, 260)], 2, ["a", "b"], ["a", "b"], 2, 2, (5, 9))
    # one level: every box pooled from it, no mapping (the reversed box is computed)
    case(rng, store, "float32", [(128, 128)], 2, ["p3"], ["p3"], 2, 2, (8,))
    version = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    np.savez_compressed(os.path.join(HERE, "torchvision_multiscale.npz"),
                        cases=json.dumps(store["cases"]), version=version, **store["arrays"])
    print(f"{len(store['cases'])} cases, {version}")


if __name__ == "__main__":
    main()
