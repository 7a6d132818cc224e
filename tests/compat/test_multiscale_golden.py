"""compat.torchvision.MultiScaleRoIAlign against torchvision's own, bit for bit.

The golden file ``tests/golden/torchvision_multiscale.npz`` is made by
``tests/golden/make_multiscale_golden.py`` with torchvision 0.28 (float16, float32, float64
pyramids, boxes on level boundaries, a reversed box). Each case checks the levels, the
output on NumPy arrays and on tensors, and every map's gradient (tensors).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from exact import assert_same_bits

from roiops.compat.torchvision import MultiScaleRoIAlign
from roiops.multi_scale_roi_align import levels as level_mapper

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "torchvision_multiscale.npz"

with np.load(GOLDEN, allow_pickle=False) as _z:
    CASES = json.loads(str(_z["cases"]))
    ARRAYS = {key: _z[key] for key in _z.files if "/" in key}


def _case(i):
    spec = CASES[i]
    arrays = {name: ARRAYS[f"c{i}/{name}"] for name in spec["arrays"]}
    x = OrderedDict((name, arrays[f"x_{name}"]) for name in spec["names"])
    boxes = [arrays[f"boxes_{j}"] for j in range(spec["num_images"])]
    image_shapes = [tuple(s) for s in spec["image_shapes"]]
    pool = MultiScaleRoIAlign(spec["featmap_names"], spec["output_size"],
                              spec["sampling_ratio"], **spec["mapper"])
    return spec, arrays, x, boxes, image_shapes, pool


def _ids():
    return [f"c{i}-{c['dtype']}-{len(c['featmap_names'])}levels" for i, c in enumerate(CASES)]


def _expected_levels(arrays, num_levels):
    """torchvision's levels, a box with no level (NaN area, a huge int64) as -1."""
    levels = arrays["levels"]
    return np.where((levels >= 0) & (levels < num_levels), levels, -1)


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_numpy_forward(i):
    spec, arrays, x, boxes, image_shapes, pool = _case(i)
    before = [b.copy() for b in boxes]
    out = pool(x, boxes, image_shapes)
    assert pool.scales == spec["scales"]
    assert_same_bits(out, arrays["out"])
    for b, copy in zip(boxes, before):
        assert_same_bits(b, copy)


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_numpy_levels(i):
    spec, arrays, x, boxes, image_shapes, pool = _case(i)
    if len(spec["featmap_names"]) == 1:
        pytest.skip("one level: torchvision maps nothing")
    pool(x, boxes, image_shapes)
    levels = level_mapper.fpn_levels(level_mapper.NUMPY, np.concatenate(boxes), pool.k_min,
                                     pool.k_max, len(pool.scales), **spec["mapper"])
    np.testing.assert_array_equal(levels, _expected_levels(arrays, pool.k_max - pool.k_min + 1))


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_tensor_forward_and_gradients(i):
    torch = pytest.importorskip("torch")
    spec, arrays, x, boxes, image_shapes, pool = _case(i)
    tx = OrderedDict((k, torch.from_numpy(v.copy()).requires_grad_()) for k, v in x.items())
    out = pool(tx, [torch.from_numpy(b) for b in boxes], image_shapes)
    assert isinstance(pool, torch.nn.Module)
    assert_same_bits(out.detach().numpy(), arrays["out"])
    out.backward(torch.from_numpy(arrays["grad"]))
    for name, value in tx.items():
        if f"grad_{name}" in arrays:
            assert_same_bits(np.ascontiguousarray(value.grad.numpy()), arrays[f"grad_{name}"])
        else:
            assert value.grad is None


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_scripted_module(i):
    torch = pytest.importorskip("torch")
    spec, arrays, x, boxes, image_shapes, pool = _case(i)
    scripted = torch.jit.script(pool)
    out = scripted(OrderedDict((k, torch.from_numpy(v)) for k, v in x.items()),
                   [torch.from_numpy(b) for b in boxes], image_shapes)
    assert scripted.scales == spec["scales"]
    assert_same_bits(out.numpy(), arrays["out"])
