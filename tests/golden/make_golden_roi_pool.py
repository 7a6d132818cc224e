"""Generate ``tests/golden/torchvision_roi_pool.npz``: torchvision's ``roi_pool`` on adversarial
inputs, forward (with the argmax torchvision saves) and input gradient.

Run from the repository root with torchvision's interpreter (never the roiops venv)::

    .peers/tv/bin/python tests/golden/make_golden_roi_pool.py   # torch 2.13.0 + torchvision 0.28.0

The file has the format of ``make_golden.py`` (its ``Store``); a rerun with the same peer
versions gives the same file (fixed seed). Cases: float32, float64 and float16 (the dtypes
torchvision's CPU kernel dispatches; bfloat16 is refused there), ties (maps of a few values),
NaN and +-inf pixels, values below -FLT_MAX (float64), empty bins (rois off the map, reversed
or degenerate rois), coordinates at exact halves after scaling (C ``round``), coordinates
whose scaled value leaves the int32 range or overflows (the x86 integer conversion), batch
indices with a fraction, boxes as a ``[K, 5]`` tensor or a list of ``[L, 4]`` tensors. Every
backward runs twice and must agree bit for bit.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import HERE, Store, bits_equal, coarse

SEED = 20260416
SCALES = [1.0, 0.5, 0.25, 0.0625, 0.3, 1.7]
COMMAND = ".peers/tv/bin/python tests/golden/make_golden_roi_pool.py"


def feature_map(rng, dtype, shape, family):
    """Maps of a few values (ties) or of normal values, with special pixels by family."""
    if family == "ties":
        x = rng.integers(-2, 3, shape).astype(dtype)
    else:
        x = coarse(rng, rng.standard_normal(shape)).astype(dtype)
    if family == "special":
        specials = [np.nan, np.inf, -np.inf, -1.0]
        if dtype == "float64":
            specials += [-1e300, -3.5e38, float(np.finfo(np.float32).min)]
        if dtype == "float16":
            specials += [-65504.0, 65504.0]
        mask = rng.random(shape) < 0.3
        x[mask] = rng.choice(specials, int(mask.sum())).astype(dtype)
        x[0, 0] = np.nan  # a whole NaN plane: no pixel ever wins
    if family == "negative":
        x = -np.abs(x) - np.asarray(1e30 if dtype != "float16" else 6e4, dtype)
    return x


def roi_rows(rng, count, N, H, W, scale, dtype):
    """``[count, 5]`` rois in image coordinates mixing the adversarial families."""
    rows = []
    top = np.finfo(dtype).max
    for _ in range(count):
        family = rng.choice(["inside", "around", "halves", "reversed", "outside", "huge",
                             "point"], p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.1])
        b = float(rng.integers(0, N)) + (0.7 if rng.random() < 0.2 else 0.0)
        b = min(b, N - 0.5)
        Wi, Hi = W / scale, H / scale
        if family == "inside":
            x1, x2 = np.sort(rng.uniform(0, Wi, 2))
            y1, y2 = np.sort(rng.uniform(0, Hi, 2))
        elif family == "around":
            x1, x2 = np.sort(rng.uniform(-0.5 * Wi, 1.5 * Wi, 2))
            y1, y2 = np.sort(rng.uniform(-0.5 * Hi, 1.5 * Hi, 2))
        elif family == "halves":  # scaled coordinates at exact halves: C round goes away
            x1, y1, x2, y2 = ((rng.integers(-2, max(W, H) + 2, 4) + 0.5) / scale)
        elif family == "reversed":
            x2, x1 = np.sort(rng.uniform(0, Wi, 2))
            y2, y1 = np.sort(rng.uniform(0, Hi, 2))
        elif family == "outside":
            x1 = rng.uniform(Wi + 2 / scale, 3 * Wi)
            y1 = rng.uniform(-3 * Hi, -2 / scale)
            x2, y2 = x1 + rng.uniform(0, Wi), y1 + rng.uniform(0, Hi)
        elif family == "huge":  # beyond int32 after scaling, or overflowing the type
            big = min(float(top), 4e9)
            x1, y1 = -big * rng.uniform(0.5, 1), rng.uniform(0, Hi)
            x2, y2 = big * rng.uniform(0.5, 1), rng.uniform(Hi, 2 * Hi)
        else:  # a single point: a malformed roi of one pixel
            x1 = x2 = rng.uniform(0, Wi)
            y1 = y2 = rng.uniform(0, Hi)
        rows.append([b, x1, y1, x2, y2])
    with np.errstate(over="ignore"):
        return np.array(rows).astype(dtype)


def gen(store, rng):
    import torch
    import torchvision
    from torchvision.ops import roi_pool
    torch.set_num_threads(1)

    combos = [(dt, sc) for dt in ("float32", "float64", "float16") for sc in SCALES]
    for dtype, scale in combos:
        for rep in range(8):
            N, C = int(rng.integers(1, 3)), int(rng.integers(1, 4))
            H, W = int(rng.integers(1, 9)), int(rng.integers(1, 11))
            ph, pw = (int(v) for v in rng.integers(1, 6, 2))
            osize = ph if (ph == pw or rng.random() < 0.2) else [ph, pw]
            if isinstance(osize, int):
                pw = ph
            family = ["normal", "ties", "special", "negative"][rep % 4]
            feat = feature_map(rng, dtype, (N, C, H, W), family)
            rois = roi_rows(rng, int(rng.integers(1, 7)), N, H, W, scale, dtype)
            as_list = rng.random() < 0.25
            if as_list:
                rois[:, 0] = np.trunc(rois[:, 0].astype(np.float64)).astype(dtype)
                rois = rois[np.argsort(rois[:, 0], kind="stable")]
                blist = [rois[rois[:, 0] == i][:, 1:] for i in range(N)]
                tboxes = [torch.from_numpy(b.copy()) for b in blist]
            else:
                tboxes = torch.from_numpy(rois.copy())
            x = torch.from_numpy(feat.copy()).requires_grad_(True)
            out = roi_pool(x, tboxes, osize, scale)
            size = (ph, pw)
            t_rois = torch.from_numpy(rois.copy())
            _, argmax = torch.ops.torchvision.roi_pool(x.detach(), t_rois, scale, *size)
            go = torch.from_numpy(coarse(rng, rng.standard_normal(tuple(out.shape))
                                         ).astype(dtype))
            out.backward(go)
            gin = x.grad.numpy().copy()
            x2 = torch.from_numpy(feat.copy()).requires_grad_(True)
            roi_pool(x2, tboxes, osize, scale).backward(go)
            assert bits_equal(gin, x2.grad.numpy())
            arrays = dict(input=feat, out=out.detach().numpy(), argmax=argmax.numpy(),
                          grad_output=go.numpy(), grad_input=gin)
            if as_list:
                for i, b in enumerate(blist):
                    arrays["boxes%d" % i] = b
            else:
                arrays["boxes"] = rois
            store.add("roi_pool", dict(dtype=dtype, output_size=osize, spatial_scale=scale,
                                       boxes_list=len(blist) if as_list else 0,
                                       family=family), arrays)
    return "torch %s, torchvision %s" % (torch.__version__, torchvision.__version__)


def main():
    rng = np.random.default_rng(SEED)
    store = Store()
    version = gen(store, rng)
    path = os.path.join(HERE, "torchvision_roi_pool.npz")
    store.save(path, version, COMMAND)
    print("%d cases, %d raw bytes -> %s (%d bytes)" % (
        len(store.cases), store.nbytes, path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
