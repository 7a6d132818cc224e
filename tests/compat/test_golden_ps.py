"""roiops.compat.torchvision's ps_roi_align and ps_roi_pool against torchvision 0.28's own
results, bit for bit.

The golden file ``tests/golden/torchvision_ps.npz`` comes from ``tests/golden/make_golden.py
torchvision_ps`` (run with torchvision's interpreter): float16, float32 and float64 maps (some
with infinities and NaN), rois inside, across, outside and reversed, tiny and huge, on the
grid and one ulp off, as ``[K, 5]`` arrays or lists of ``[L, 4]``. The forward and the input
gradient must have the recorded bits (any NaN equal to any NaN), and the inputs must be left
unchanged.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from exact import assert_same_bits

from roiops.compat import torchvision as tvc

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "torchvision_ps.npz"

with np.load(GOLDEN, allow_pickle=False) as _file:
    CASES = json.loads(str(_file["cases"]))
    BLOB = _file["blob"].tobytes()
    META = {k: str(_file[k]) for k in ("version", "command", "numpy")}


def _arrays(case):
    """The case's arrays: fresh, aligned, writeable copies."""
    return {name: np.frombuffer(BLOB, np.dtype(dtype), math.prod(shape), offset)
            .reshape(shape).copy() for name, (dtype, shape, offset) in case["arrays"].items()}


def _params(op):
    return [pytest.param(c, id=f"{c['id']}-{c['dtype']}-scale={c['spatial_scale']}"
                         f"-sr={c.get('sampling_ratio')}") for c in CASES if c["op"] == op]


def _boxes(case, a):
    if case["boxes_list"]:
        return [a[f"boxes{i}"] for i in range(case["boxes_list"])]
    return a["boxes"]


def _output_size(case):
    size = case["output_size"]
    return size if isinstance(size, int) else tuple(size)


def _options(case):
    if case["op"] == "ps_roi_align":
        return case["spatial_scale"], case["sampling_ratio"]
    return (case["spatial_scale"],)


def _unchanged(a, before):
    for name, value in before.items():
        assert_same_bits(a[name], value, what=f"input {name!r} was modified")


@pytest.mark.parametrize("case", _params("ps_roi_align") + _params("ps_roi_pool"))
def test_forward(case):
    a = _arrays(case)
    before = {n: v.copy() for n, v in a.items() if n.startswith("boxes") or n == "input"}
    forward = getattr(tvc, case["op"])
    got = forward(a["input"], _boxes(case, a), _output_size(case), *_options(case))
    assert_same_bits(got, a["out"], case["op"])
    _unchanged(a, before)


@pytest.mark.parametrize("case", _params("ps_roi_align") + _params("ps_roi_pool"))
def test_backward(case):
    a = _arrays(case)
    before = {n: v.copy() for n, v in a.items() if n.startswith("boxes") or n == "grad_output"}
    backward = getattr(tvc, case["op"] + "_backward")
    got = backward(a["grad_output"], _boxes(case, a), a["input"].shape, _output_size(case),
                   *_options(case))
    assert_same_bits(got, a["grad_input"], case["op"] + "_backward")
    _unchanged(a, before)


def test_golden_file_metadata():
    assert "torchvision 0.28" in META["version"]
    assert META["command"].endswith("make_golden.py torchvision_ps")
    ops = [c["op"] for c in CASES]
    assert ops.count("ps_roi_align") >= 100 and ops.count("ps_roi_pool") >= 50
    assert {c["dtype"] for c in CASES} == {"float16", "float32", "float64"}
