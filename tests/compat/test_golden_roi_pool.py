"""roiops.compat.torchvision's roi_pool against torchvision 0.28's own results, bit for bit.

The golden file ``tests/golden/torchvision_roi_pool.npz`` comes from
``tests/golden/make_golden_roi_pool.py`` (run with torchvision's interpreter): float32,
float64 and float16 maps with ties, NaN and infinities, empty bins, rounding halves and
coordinates beyond int32. The forward, the argmax torchvision saves (``roiops.roi_pool``'s
``return_argmax``) and the input gradient must have the recorded bits.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from exact import assert_same_bits

import roiops
from roiops.compat import torchvision as tvc

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "torchvision_roi_pool.npz"

with np.load(GOLDEN, allow_pickle=False) as _file:
    CASES = json.loads(str(_file["cases"]))
    BLOB = _file["blob"].tobytes()
    META = {k: str(_file[k]) for k in ("version", "command", "numpy")}


def _arrays(case):
    """The case's arrays: fresh, aligned, writeable copies."""
    out = {}
    for name, (dtype, shape, offset) in case["arrays"].items():
        out[name] = np.frombuffer(BLOB, np.dtype(dtype), math.prod(shape),
                                  offset).reshape(shape).copy()
    return out


def _params():
    return [pytest.param(c, id=f"{c['id']}-{c['dtype']}-{c['family']}-scale={c['spatial_scale']}")
            for c in CASES]


def _boxes(case, a):
    if case["boxes_list"]:
        return [a[f"boxes{i}"] for i in range(case["boxes_list"])]
    return a["boxes"]


def _rois(case, a):
    """The ``[K, 5]`` rois the peer's kernel saw (a list numbered by image)."""
    if not case["boxes_list"]:
        return a["boxes"]
    boxes = _boxes(case, a)
    return np.concatenate([np.concatenate([np.full((len(b), 1), i, b.dtype), b], axis=1)
                           for i, b in enumerate(boxes)])


def _size(case):
    s = case["output_size"]
    return (s, s) if isinstance(s, int) else tuple(s)


@pytest.mark.parametrize("case", _params())
def test_roi_pool(case):
    a = _arrays(case)
    keep = {n: a[n].copy() for n in a if n.startswith("boxes") or n == "input"}
    got = tvc.roi_pool(a["input"], _boxes(case, a), case["output_size"], case["spatial_scale"])
    assert_same_bits(got, a["out"], "roi_pool")
    for name, before in keep.items():
        assert_same_bits(a[name], before, what=f"input {name!r} was modified")


@pytest.mark.parametrize("case", _params())
def test_roi_pool_argmax_and_backward(case):
    a = _arrays(case)
    rois = _rois(case, a)
    if case["dtype"] != "float16":  # the native function computes float16 geometry in float32
        out, argmax = roiops.roi_pool(a["input"], rois, _size(case),
                                      spatial_scale=case["spatial_scale"], return_argmax=True)
        assert_same_bits(out, a["out"], "roiops.roi_pool")
        np.testing.assert_array_equal(argmax, a["argmax"])
    got = tvc.roi_pool_backward(a["grad_output"], _boxes(case, a), a["argmax"],
                                a["input"].shape)
    assert_same_bits(got, a["grad_input"], "roi_pool_backward")


def test_golden_file_metadata():
    assert META["version"].startswith("torch ") and "torchvision 0.28" in META["version"]
    assert META["command"].endswith("make_golden_roi_pool.py")
    assert {c["dtype"] for c in CASES} == {"float16", "float32", "float64"}
    assert len(CASES) >= 100 and len({c["id"] for c in CASES}) == len(CASES)
