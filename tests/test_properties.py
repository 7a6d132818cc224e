"""Property tests: the roiops native API (docs/api.md) against the plain-loop reference.

float32 inputs are computed in float32 exactly as the peers do, so the native results must equal
``reference`` with ``F=np.float32`` bit for bit (NaN == NaN); float64 inputs must equal the
``F=np.float64`` reference bit for bit.  roi_align_grad_boxes has no peer and no prescribed
summation order, so it is compared with a tolerance.  Boxes are drawn inside, outside, flipped,
degenerate, on the pixel lattice and one ulp off it.
"""

import numpy as np
import pytest
from exact import assert_same_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roiops.crop_and_resize import reference as crop_reference
from roiops.roi_align import reference as roi_reference

roiops = pytest.importorskip("roiops")

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _values(rng, shape, dtype):
    kind = rng.integers(3)
    if kind == 0:
        v = rng.integers(-9, 10, size=shape).astype(np.float64)
    elif kind == 1:
        v = rng.normal(size=shape) * 10
    else:
        v = rng.uniform(0, 255, size=shape)
    return v.astype(dtype)


# --------------------------------------------------------------------------------------------
# crop_and_resize
# --------------------------------------------------------------------------------------------


def _coord(size):
    """A normalized coordinate: anywhere, on the lattice k/(size-1) or k/8, 0/1 and their
    float32 neighbours."""
    f = np.float32
    special = [0.0, 1.0, 0.5, 0.49999997, float(np.nextafter(f(1), f(2))),
               float(np.nextafter(f(1), f(0))), float(np.nextafter(f(0), f(1)) * 2**30)]
    den = max(size - 1, 1)
    return st.one_of(
        st.floats(-0.5, 1.5, width=32),
        st.integers(-2, 2 * den + 2).map(lambda k: k / den),
        st.integers(-4, 12).map(lambda k: k / 8),
        st.sampled_from(special),
    )


@st.composite
def crop_cases(draw, image_dtypes=(np.float32, np.float64)):
    B = draw(st.integers(1, 2))
    H, W, D = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 2))
    N = draw(st.integers(1, 3))
    ch, cw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(image_dtypes))
    boxes = []
    for _ in range(N):
        y1, x1 = draw(_coord(H)), draw(_coord(W))
        family = draw(st.sampled_from(["free", "degenerate", "flipped"]))
        if family == "degenerate":
            y2, x2 = y1, x1
        else:
            y2, x2 = draw(_coord(H)), draw(_coord(W))
            if family == "flipped":
                y1, y2 = max(y1, y2), min(y1, y2)
        boxes.append([y1, x1, y2, x2])
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    box_dtype = np.float64 if dtype == np.float64 else np.float32
    return dict(
        image=_values(rng, (B, H, W, D), dtype),
        boxes=np.array(boxes, box_dtype),
        box_indices=rng.integers(0, B, N).astype(np.int32),
        crop_size=(ch, cw),
        grads=_values(rng, (N, ch, cw, D), np.float64 if dtype == np.float64 else np.float32),
        extrapolation_value=draw(st.sampled_from([0.0, -1.0, 0.5, 7.25])),
    )


def _F(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


@SETTINGS
@given(c=crop_cases(image_dtypes=(np.float32, np.float64, np.uint8)),
       method=st.sampled_from(["bilinear", "nearest", "bilinear_v2"]))
def test_crop_and_resize_matches_reference(c, method):
    F = _F(c["image"].dtype)
    got = roiops.crop_and_resize(c["image"], c["boxes"], c["box_indices"], c["crop_size"],
                                 method=method, extrapolation_value=c["extrapolation_value"])
    want = crop_reference.crop_and_resize(c["image"], c["boxes"], c["box_indices"],
                                          c["crop_size"], method, c["extrapolation_value"], F=F)
    assert_same_bits(got, want)


@SETTINGS
@given(c=crop_cases(image_dtypes=(np.float32,)),
       method=st.sampled_from(["bilinear", "nearest", "bilinear_v2"]))
def test_crop_and_resize_nchw_is_a_transpose(c, method):
    nhwc = roiops.crop_and_resize(c["image"], c["boxes"], c["box_indices"], c["crop_size"],
                                  method=method)
    nchw = roiops.crop_and_resize(np.ascontiguousarray(c["image"].transpose(0, 3, 1, 2)),
                                  c["boxes"], c["box_indices"], c["crop_size"], method=method,
                                  data_format="NCHW")
    assert_same_bits(nchw, nhwc.transpose(0, 3, 1, 2))


@SETTINGS
@given(c=crop_cases(), method=st.sampled_from(["bilinear", "nearest", "bilinear_v2"]),
       out=st.sampled_from([None, np.float32, np.float64, np.float16]))
def test_crop_and_resize_grad_image_matches_reference(c, method, out):
    grads = c["grads"]
    shape = c["image"].shape
    got = roiops.crop_and_resize_grad_image(grads, c["boxes"], c["box_indices"], shape,
                                            method=method, dtype=out)
    out_dtype = np.dtype(out if out is not None else grads.dtype)
    F = _F(out_dtype)
    want = crop_reference.crop_and_resize_grad_image(grads, c["boxes"], c["box_indices"],
                                                     shape, method, accumulate=F, F=F)
    assert_same_bits(got, want.astype(out_dtype))


@SETTINGS
@given(c=crop_cases(image_dtypes=(np.float32, np.float64, np.uint8)),
       method=st.sampled_from(["bilinear", "nearest", "bilinear_v2"]))
def test_crop_and_resize_grad_boxes_matches_reference(c, method):
    F = _F(c["image"].dtype)
    grads = c["grads"].astype(F)
    got = roiops.crop_and_resize_grad_boxes(grads, c["image"], c["boxes"], c["box_indices"],
                                            method=method)
    want = crop_reference.crop_and_resize_grad_boxes(grads, c["image"], c["boxes"],
                                                     c["box_indices"], crop1_rule="tensorflow",
                                                     F=F)
    assert_same_bits(got, want)


# --------------------------------------------------------------------------------------------
# roi_align
# --------------------------------------------------------------------------------------------

CONVENTIONS = [
    dict(convention="torchvision", aligned=False),
    dict(convention="torchvision", aligned=True),
    dict(convention="mindspore", roi_end_mode=0),
    dict(convention="mindspore", roi_end_mode=1),
]


@st.composite
def roi_cases(draw, dtypes=(np.float32, np.float64)):
    opts = dict(draw(st.sampled_from(CONVENTIONS)))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    K = draw(st.integers(1, 3))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from([1.0, 0.5, 0.25, 2.0, 0.3]))
    sr = draw(st.sampled_from([-1, 0, 1, 2, 3]))
    dtype = draw(st.sampled_from(dtypes))
    Hs, Ws = H / scale, W / scale

    def coord(extent):
        return st.one_of(
            st.floats(-0.5 * extent - 1, 1.5 * extent + 1).map(lambda v: float(np.float32(v))),
            st.integers(-4, int(4 * extent) + 4).map(lambda k: k / 4),  # on the lattice
            st.sampled_from([-1.0, 0.0, extent - 1, extent, -0.5, extent + 0.5]),
        )

    rois = []
    for _ in range(K):
        x1, y1 = draw(coord(Ws)), draw(coord(Hs))
        family = draw(st.sampled_from(["free", "ordered", "tiny", "degenerate"]))
        if family == "degenerate":
            x2, y2 = x1, y1
        elif family == "tiny":
            x2 = x1 + draw(st.sampled_from([0.0, 0.01, 0.3, 0.9]))
            y2 = y1 + draw(st.sampled_from([0.0, 0.05, 0.5]))
        else:
            x2, y2 = draw(coord(Ws)), draw(coord(Hs))
            if family == "ordered":
                x1, x2 = min(x1, x2), max(x1, x2)
                y1, y2 = min(y1, y2), max(y1, y2)
        if opts["convention"] == "torchvision":
            b = draw(st.sampled_from([0.0, 0.3, 0.999, -0.5, N - 1.0, N - 0.25]))
        else:
            b = draw(st.sampled_from([0.0, float(N - 1), 0.49993 if N > 1 else 0.0]))
        rois.append([b, x1, y1, x2, y2])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(
        input=_values(rng, (N, C, H, W), dtype),
        rois=np.array(rois, dtype),
        output_size=(PH, PW),
        grads=_values(rng, (K, C, PH, PW), dtype),
        options=dict(spatial_scale=scale, sampling_ratio=sr, **opts),
    )


@SETTINGS
@given(c=roi_cases(dtypes=(np.float32, np.float64, np.float16)))
def test_roi_align_matches_reference(c):
    x, rois = c["input"], c["rois"]
    got = roiops.roi_align(x, rois, c["output_size"], **c["options"])
    F = _F(x.dtype)
    want = roi_reference.roi_align(x.astype(F), rois.astype(F), c["output_size"], F=F,
                                   **c["options"])
    assert_same_bits(got, want.astype(x.dtype))


@SETTINGS
@given(c=roi_cases())
def test_roi_align_grad_input_matches_reference(c):
    x, rois, g = c["input"], c["rois"], c["grads"]
    got = roiops.roi_align_grad_input(g, rois, x.shape, c["output_size"], **c["options"])
    want = roi_reference.roi_align_grad_input(g, rois, x.shape, c["output_size"],
                                              F=_F(g.dtype), **c["options"])
    assert_same_bits(got, want)


@SETTINGS
@given(c=roi_cases())
def test_roi_align_grad_boxes_matches_reference(c):
    x, rois, g = c["input"], c["rois"], c["grads"]
    got = roiops.roi_align_grad_boxes(g, x, rois, c["output_size"], **c["options"])
    # The reference runs in the input's compute type so that its samples sit exactly where the
    # kernel's do: a float64 reference can put a sample just off a kink (a clamp at 0, a pin
    # at H-1) that float32 rounding puts on it, and the derivative jumps there.
    F = _F(x.dtype)
    want = roi_reference.roi_align_grad_boxes(g.astype(F), x.astype(F), rois.astype(F),
                                              c["output_size"], F=F,
                                              **c["options"]).astype(np.float64)
    assert got.shape == want.shape and got.dtype == x.dtype
    assert not np.asarray(got)[:, 0].any()
    # no prescribed summation order: a tolerance from a bound on the terms' magnitude
    scale = c["options"]["spatial_scale"]
    bound = np.abs(g).sum() * 2 * (np.abs(x).max() + 1) * max(scale, 1.0)
    rtol = 1e-9 if x.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * bound)
