"""Bit-for-bit comparison of the compat layers with outputs recorded from the real peers.

The golden files ``tests/golden/{tensorflow,mindspore,torchvision}.npz`` come from
``tests/golden/make_golden.py`` (its docstring says how to regenerate them and which peer
versions made them). Every case is one test, named after its id, op and options. A case passes
when the result has the recorded dtype and shape and the same bits, with any NaN equal to any
NaN. Each case also checks that the compat call left its inputs unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from exact import assert_same_bits

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PEERS = ("tensorflow", "mindspore", "torchvision")


# --------------------------------------------------------------------------------------------
# loading

_FILES: dict[str, dict] = {}


def _load(peer):
    if peer not in _FILES:
        path = GOLDEN / f"{peer}.npz"
        if not path.exists():
            _FILES[peer] = {"cases": [], "blob": None, "meta": {}}
        else:
            with np.load(path, allow_pickle=False) as z:
                _FILES[peer] = {
                    "cases": json.loads(str(z["cases"])),
                    "blob": z["blob"].tobytes(),
                    "meta": {k: str(z[k]) for k in ("version", "command", "numpy")},
                }
    return _FILES[peer]


def _arrays(peer, case):
    """The case's arrays: fresh, aligned, writeable copies."""
    blob = _load(peer)["blob"]
    out = {}
    for name, (dt, shape, off) in case["arrays"].items():
        dt = np.dtype(dt)
        n = math.prod(shape)
        out[name] = np.frombuffer(blob, dtype=dt, count=n, offset=off).reshape(shape).copy()
    return out


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return str(v)


def _case_id(case):
    keys = ("dtype", "T", "method", "extrapolation_value", "crop_size", "pooled_height",
            "pooled_width", "output_size", "spatial_scale", "sampling_ratio", "sample_num",
            "roi_end_mode", "aligned", "boxes_list")
    short = {"extrapolation_value": "ev", "crop_size": "crop", "pooled_height": "ph",
             "pooled_width": "pw", "output_size": "out", "spatial_scale": "scale",
             "sampling_ratio": "sr", "sample_num": "sn", "roi_end_mode": "mode",
             "boxes_list": "list"}
    parts = [case["id"], case["op"]]
    for k in keys:
        if k in case:
            v = case[k]
            if k == "boxes_list" and not v:
                continue
            parts.append(f"{short.get(k, '')}{'=' if k in short else ''}{_fmt(v)}")
    return "-".join(parts)


def _params(peer, ops=None):
    return [pytest.param(c, id=_case_id(c)) for c in _load(peer)["cases"]
            if ops is None or c["op"] in ops]


# --------------------------------------------------------------------------------------------
# comparison


def _snapshot(arrays, names):
    return {n: arrays[n].copy() for n in names}


def _assert_unchanged(before, arrays):
    for n, a in before.items():
        assert_same_bits(arrays[n], a, what=f"input {n!r} was modified")


# --------------------------------------------------------------------------------------------
# TensorFlow

@pytest.fixture(scope="module")
def tfc():
    from roiops.compat import tensorflow
    return tensorflow


@pytest.mark.parametrize("case", _params("tensorflow", {"CropAndResize"}))
def test_tensorflow_crop_and_resize(tfc, case):
    a = _arrays("tensorflow", case)
    keep = _snapshot(a, ("image", "boxes", "box_ind"))
    crop = list(case["crop_size"])
    got = tfc.raw_ops.CropAndResize(image=a["image"], boxes=a["boxes"], box_ind=a["box_ind"],
                                    crop_size=crop, method=case["method"],
                                    extrapolation_value=case["extrapolation_value"])
    assert_same_bits(got, a["out"], "raw_ops.CropAndResize")
    got = tfc.crop_and_resize(a["image"], a["boxes"], a["box_ind"], crop, method=case["method"],
                              extrapolation_value=case["extrapolation_value"])
    assert_same_bits(got, a["out"], "crop_and_resize")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("tensorflow", {"CropAndResizeGradImage"}))
def test_tensorflow_crop_and_resize_grad_image(tfc, case):
    a = _arrays("tensorflow", case)
    keep = _snapshot(a, ("grads", "boxes", "box_ind"))
    got = tfc.raw_ops.CropAndResizeGradImage(
        grads=a["grads"], boxes=a["boxes"], box_ind=a["box_ind"],
        image_size=np.array(case["image_size"], np.int32), T=np.dtype(case["T"]),
        method=case["method"])
    assert_same_bits(got, a["out"], "raw_ops.CropAndResizeGradImage")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("tensorflow", {"CropAndResizeGradBoxes"}))
def test_tensorflow_crop_and_resize_grad_boxes(tfc, case):
    a = _arrays("tensorflow", case)
    keep = _snapshot(a, ("grads", "image", "boxes", "box_ind"))
    got = tfc.raw_ops.CropAndResizeGradBoxes(grads=a["grads"], image=a["image"], boxes=a["boxes"],
                                             box_ind=a["box_ind"], method=case["method"])
    assert_same_bits(got, a["out"], "raw_ops.CropAndResizeGradBoxes")
    _assert_unchanged(keep, a)


# --------------------------------------------------------------------------------------------
# MindSpore

@pytest.fixture(scope="module")
def msc():
    from roiops.compat import mindspore
    return mindspore


@pytest.mark.parametrize("case", _params("mindspore", {"CropAndResize"}))
def test_mindspore_crop_and_resize(msc, case):
    a = _arrays("mindspore", case)
    keep = _snapshot(a, ("image", "boxes", "box_ind"))
    op = msc.CropAndResize(method=case["method"], extrapolation_value=case["extrapolation_value"])
    got = op(a["image"], a["boxes"], a["box_ind"], tuple(case["crop_size"]))
    assert_same_bits(got, a["out"], "CropAndResize")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("mindspore", {"CropAndResizeGradImage"}))
def test_mindspore_crop_and_resize_grad_image(msc, case):
    a = _arrays("mindspore", case)
    keep = _snapshot(a, ("grads", "boxes", "box_ind"))
    op = msc.CropAndResizeGradImage(T=np.dtype(case["T"]), method=case["method"])
    got = op(a["grads"], a["boxes"], a["box_ind"], np.array(case["image_size"], np.int32))
    assert_same_bits(got, a["out"], "CropAndResizeGradImage")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("mindspore", {"CropAndResizeGradBoxes"}))
def test_mindspore_crop_and_resize_grad_boxes(msc, case):
    a = _arrays("mindspore", case)
    keep = _snapshot(a, ("grads", "image", "boxes", "box_ind"))
    op = msc.CropAndResizeGradBoxes(method=case["method"])
    got = op(a["grads"], a["image"], a["boxes"], a["box_ind"])
    assert_same_bits(got, a["out"], "CropAndResizeGradBoxes")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("mindspore", {"ROIAlign"}))
def test_mindspore_roi_align(msc, case):
    a = _arrays("mindspore", case)
    keep = _snapshot(a, ("features", "rois"))
    op = msc.ROIAlign(pooled_height=case["pooled_height"], pooled_width=case["pooled_width"],
                      spatial_scale=case["spatial_scale"], sample_num=case["sample_num"],
                      roi_end_mode=case["roi_end_mode"])
    got = op(a["features"], a["rois"])
    assert_same_bits(got, a["out"], "ROIAlign")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("mindspore", {"ROIAlignGrad"}))
def test_mindspore_roi_align_grad(msc, case):
    a = _arrays("mindspore", case)
    keep = _snapshot(a, ("dy", "rois"))
    op = msc.ROIAlignGrad(pooled_height=case["pooled_height"], pooled_width=case["pooled_width"],
                          spatial_scale=case["spatial_scale"], sample_num=case["sample_num"])
    got = op(a["dy"], a["rois"], tuple(case["xdiff_shape"]))
    assert_same_bits(got, a["out"], "ROIAlignGrad")
    _assert_unchanged(keep, a)


# --------------------------------------------------------------------------------------------
# torchvision

@pytest.fixture(scope="module")
def tvc():
    from roiops.compat import torchvision
    return torchvision


def _tv_boxes(case, a):
    """The boxes as the peer got them: a [K,5] array, or a list of [L,4] arrays (one per image)."""
    if case["boxes_list"]:
        return [a[f"boxes{i}"] for i in range(case["boxes_list"])]
    return a["boxes"]


def _tv_output_size(case):
    s = case["output_size"]
    return s if isinstance(s, int) else tuple(s)


@pytest.mark.parametrize("case", _params("torchvision"))
def test_torchvision_roi_align(tvc, case):
    a = _arrays("torchvision", case)
    keep = _snapshot(a, [n for n in a if n.startswith("boxes") or n == "input"])
    got = tvc.roi_align(a["input"], _tv_boxes(case, a), _tv_output_size(case),
                        case["spatial_scale"], case["sampling_ratio"], case["aligned"])
    assert_same_bits(got, a["out"], "roi_align")
    _assert_unchanged(keep, a)


@pytest.mark.parametrize("case", _params("torchvision"))
def test_torchvision_roi_align_backward(tvc, case):
    a = _arrays("torchvision", case)
    keep = _snapshot(a, [n for n in a if n.startswith("boxes") or n == "grad_output"])
    got = tvc.roi_align_backward(a["grad_output"], _tv_boxes(case, a), tuple(a["input"].shape),
                                 _tv_output_size(case), case["spatial_scale"],
                                 case["sampling_ratio"], case["aligned"])
    assert_same_bits(got, a["grad_input"], "roi_align_backward")
    _assert_unchanged(keep, a)


# --------------------------------------------------------------------------------------------
# the files themselves

@pytest.mark.parametrize("peer", PEERS)
def test_golden_file_metadata(peer):
    if not (GOLDEN / f"{peer}.npz").exists():
        pytest.skip(f"no golden file for {peer}")
    f = _load(peer)
    assert f["meta"]["version"] and f["meta"]["command"].endswith(f"make_golden.py {peer}")
    assert len(f["cases"]) >= 300
    ids = [c["id"] for c in f["cases"]]
    assert len(set(ids)) == len(ids)
