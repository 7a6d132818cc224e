"""roiops.compat.mmcv and roiops.compat.detectron2 against mmcv's real CPU kernel.

``tests/golden/mmcv_rotated.npz`` comes from mmcv 2.2.0's rotated RoI Align sources compiled
from its sdist (tests/golden/make_rotated_golden.py): forward and input gradient, float16,
float32 and float64. detectron2's cases are mmcv's kernel run on detectron2's angle (degrees
converted in double, as its kernel does) and, for float16, in float32 as its module does.
Every case must match bit for bit (float16 of the mmcv convention in half arithmetic).
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from roiops.compat import detectron2, mmcv

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mmcv_rotated.npz"


def _cases():
    with np.load(GOLDEN, allow_pickle=False) as z:
        cases = json.loads(str(z["cases"]))
        blob = z["blob"].tobytes()
    for case in cases:
        arrays = {}
        for name, (dt, shape, offset) in case["arrays"].items():
            arrays[name] = np.frombuffer(blob, np.dtype(dt), math.prod(shape),
                                         offset).reshape(shape).copy()
        yield case, arrays


CASES = list(_cases())


def _run(case, a):
    if case["convention"] == "detectron2":
        return detectron2.roi_align_rotated(a["input"], a["rois"], case["output_size"],
                                            case["spatial_scale"], case["sampling_ratio"])
    return mmcv.roi_align_rotated(a["input"], a["rois"], tuple(case["output_size"]),
                                  case["spatial_scale"], case["sampling_ratio"],
                                  case["aligned"], case["clockwise"])


def _grad(case, a):
    if case["convention"] == "mmcv":
        return mmcv.roi_align_rotated_backward(
            a["grads"], a["rois"], a["input"].shape, tuple(case["output_size"]),
            case["spatial_scale"], case["sampling_ratio"], case["aligned"], case["clockwise"])
    # detectron2's backward is the native input gradient at its float32 scale
    import roiops
    return roiops.roi_align_rotated_grad_input(
        a["grads"], a["rois"], a["input"].shape, case["output_size"],
        spatial_scale=float(np.float32(case["spatial_scale"])),
        sampling_ratio=case["sampling_ratio"])


def _check(result, expected, case):
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result.view(f"u{result.itemsize}"),
                                  expected.view(f"u{expected.itemsize}"))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["id"] for c, _ in CASES])
def test_golden(index):
    case, a = CASES[index]
    _check(_run(case, a), a["out"], case)
    _check(_grad(case, a), a["grad_input"], case)
