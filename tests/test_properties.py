"""Property tests: the roiops native API (docs/api.md) against the plain-loop reference.

float32 inputs are computed in float32 exactly as the peers do, so the native results must equal
``reference`` with ``F=np.float32`` bit for bit (NaN == NaN); float64 inputs must equal the
``F=np.float64`` reference bit for bit; a float16 forward is the float32 result rounded once.
The box gradients (roi_align's, ps_roi_align's, multi-scale's and rotated RoI Align's) have no
peer and no prescribed summation order, so they are compared with a tolerance. Boxes are drawn
inside, outside, flipped, degenerate, on the pixel lattice and one ulp off it; the RoI family
(roi_pool, the position-sensitive ops, multi-scale and rotated RoI Align) draws its boxes the
same way, roi_pool on maps with ties.
"""

import numpy as np
import pytest
from exact import assert_same_bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roiops.crop_and_resize import reference as crop_reference
from roiops.multi_scale_roi_align import reference as multi_scale_reference
from roiops.ps_roi_align import reference as ps_align_reference
from roiops.ps_roi_pool import reference as ps_pool_reference
from roiops.roi_align import reference as roi_reference
from roiops.roi_align_rotated import reference as rotated_reference
from roiops.roi_pool import reference as pool_reference

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


def _map_coord(extent):
    """A roi coordinate on a map ``extent`` pixels wide (in image units): anywhere around it,
    on the quarter-pixel lattice, or on its edges and half a pixel past them."""
    return st.one_of(
        st.floats(-0.5 * extent - 1, 1.5 * extent + 1).map(lambda v: float(np.float32(v))),
        st.integers(-4, int(4 * extent) + 4).map(lambda k: k / 4),  # on the lattice
        st.sampled_from([-1.0, 0.0, extent - 1, extent, -0.5, extent + 0.5]),
    )


def _draw_roi_rows(draw, count, extent_y, extent_x, batch_values):
    """``count`` rows ``[batch, x1, y1, x2, y2]``: free, ordered, tiny or degenerate boxes."""
    rows = []
    for _ in range(count):
        x1, y1 = draw(_map_coord(extent_x)), draw(_map_coord(extent_y))
        family = draw(st.sampled_from(["free", "ordered", "tiny", "degenerate"]))
        if family == "degenerate":
            x2, y2 = x1, y1
        elif family == "tiny":
            x2 = x1 + draw(st.sampled_from([0.0, 0.01, 0.3, 0.9]))
            y2 = y1 + draw(st.sampled_from([0.0, 0.05, 0.5]))
        else:
            x2, y2 = draw(_map_coord(extent_x)), draw(_map_coord(extent_y))
            if family == "ordered":
                x1, x2 = min(x1, x2), max(x1, x2)
                y1, y2 = min(y1, y2), max(y1, y2)
        rows.append([draw(st.sampled_from(batch_values)), x1, y1, x2, y2])
    return rows


def _torchvision_batch_values(batch):
    """Batch indices as torchvision reads them (truncated), fractions and -0.5 included."""
    return [0.0, 0.3, 0.999, -0.5, batch - 1.0, batch - 0.25]


SCALES = [1.0, 0.5, 0.25, 2.0, 0.3]
SAMPLING_RATIOS = [-1, 0, 1, 2, 3]


@st.composite
def roi_cases(draw, dtypes=(np.float32, np.float64)):
    opts = dict(draw(st.sampled_from(CONVENTIONS)))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    K = draw(st.integers(1, 3))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from(SCALES))
    sr = draw(st.sampled_from(SAMPLING_RATIOS))
    dtype = draw(st.sampled_from(dtypes))
    if opts["convention"] == "torchvision":
        batch_values = _torchvision_batch_values(N)
    else:
        batch_values = [0.0, float(N - 1), 0.49993 if N > 1 else 0.0]
    rois = _draw_roi_rows(draw, K, H / scale, W / scale, batch_values)
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
    assert_box_gradient_close(got, want, g, [x], c["options"]["spatial_scale"])


def assert_box_gradient_close(got, want, grads, maps, spatial_scale, lever=1.0):
    """A box gradient against the reference's: no prescribed summation order, so a tolerance
    from a bound on the terms' magnitude (``maps``: the input maps, one or a pyramid;
    ``lever``: how far a coordinate's change moves a sample, a rotation's radius); the batch
    column is zero."""
    dtype = maps[0].dtype
    assert got.shape == want.shape and got.dtype == dtype
    assert not np.asarray(got)[:, 0].any()
    largest = max(np.abs(m).max() for m in maps)
    bound = np.abs(grads).sum() * 2 * (largest + 1) * max(spatial_scale, 1.0)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol,
                               atol=rtol * bound * lever)


# --------------------------------------------------------------------------------------------
# the RoI family: roi_pool, ps_roi_align, ps_roi_pool, multi-scale and rotated RoI Align
# --------------------------------------------------------------------------------------------


@st.composite
def family_cases(draw, position_sensitive=False, dtypes=(np.float32, np.float64),
                 ties=False):
    """roi_cases' maps and boxes in torchvision's convention; position-sensitive maps hold
    ``C_out * PH * PW`` channels; ``ties``: half the maps hold only -1, 0 and 1, so that a
    bin's maximum is often reached more than once."""
    N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    K = draw(st.integers(1, 3))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    C_out = draw(st.integers(1, 2))
    C = C_out * PH * PW if position_sensitive else C_out
    scale = draw(st.sampled_from(SCALES))
    dtype = draw(st.sampled_from(dtypes))
    rois = _draw_roi_rows(draw, K, H / scale, W / scale, _torchvision_batch_values(N))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if ties and draw(st.booleans()):
        input = rng.integers(-1, 2, (N, C, H, W)).astype(dtype)
    else:
        input = _values(rng, (N, C, H, W), dtype)
    return dict(
        input=input,
        rois=np.array(rois, dtype),
        output_size=(PH, PW),
        grads=_values(rng, (K, C_out, PH, PW), dtype),
        spatial_scale=scale,
        sampling_ratio=draw(st.sampled_from(SAMPLING_RATIOS)),
    )


@SETTINGS
@given(c=family_cases(dtypes=(np.float32, np.float64, np.float16), ties=True))
def test_roi_pool_matches_reference(c):
    x, rois = c["input"], c["rois"]
    got, got_argmax = roiops.roi_pool(x, rois, c["output_size"],
                                      spatial_scale=c["spatial_scale"], return_argmax=True)
    F = _F(x.dtype)  # float16 maps: float32 geometry, and a maximum is exact in any type
    want, want_argmax = pool_reference.roi_pool(x, rois.astype(F), c["output_size"],
                                                c["spatial_scale"])
    assert_same_bits(got, want)
    assert_same_bits(got_argmax, want_argmax)
    grads = c["grads"]
    assert_same_bits(roiops.roi_pool_grad_input(grads, got_argmax, rois, x.shape),
                     pool_reference.roi_pool_grad_input(grads, want_argmax, rois, x.shape))


@SETTINGS
@given(c=family_cases(position_sensitive=True, dtypes=(np.float32, np.float64, np.float16)))
def test_ps_roi_align_matches_reference(c):
    x, rois, size = c["input"], c["rois"], c["output_size"]
    options = dict(spatial_scale=c["spatial_scale"], sampling_ratio=c["sampling_ratio"])
    F = _F(x.dtype)
    want = ps_align_reference.ps_roi_align(x.astype(F), rois.astype(F), size, F=F, **options)
    assert_same_bits(roiops.ps_roi_align(x, rois, size, **options), want.astype(x.dtype))


@SETTINGS
@given(c=family_cases(position_sensitive=True))
def test_ps_roi_align_gradients_match_reference(c):
    x, rois, size, g = c["input"], c["rois"], c["output_size"], c["grads"]
    options = dict(spatial_scale=c["spatial_scale"], sampling_ratio=c["sampling_ratio"])
    F = _F(x.dtype)
    assert_same_bits(roiops.ps_roi_align_grad_input(g, rois, x.shape, size, **options),
                     ps_align_reference.ps_roi_align_grad_input(g, rois, x.shape, size, F=F,
                                                                **options))
    got = roiops.ps_roi_align_grad_boxes(g, x, rois, size, **options)
    want = ps_align_reference.ps_roi_align_grad_boxes(g, x, rois, size, F=F, **options)
    assert_box_gradient_close(got, want.astype(np.float64), g, [x], c["spatial_scale"])


@SETTINGS
@given(c=family_cases(position_sensitive=True, dtypes=(np.float32, np.float64, np.float16)))
def test_ps_roi_pool_matches_reference(c):
    x, rois, size, scale = c["input"], c["rois"], c["output_size"], c["spatial_scale"]
    F = _F(x.dtype)
    want = ps_pool_reference.ps_roi_pool(x.astype(F), rois.astype(F), size, scale, F=F)
    assert_same_bits(roiops.ps_roi_pool(x, rois, size, spatial_scale=scale),
                     want.astype(x.dtype))
    if x.dtype != np.float16:
        g = c["grads"]
        assert_same_bits(
            roiops.ps_roi_pool_grad_input(g, rois, x.shape, size, spatial_scale=scale),
            ps_pool_reference.ps_roi_pool_grad_input(g, rois, x.shape, size, scale, F=F))


@st.composite
def multi_scale_cases(draw, dtypes=(np.float32, np.float64)):
    """Two or three levels of an image up to 16 pixels a side, at scales 1/2, 1/4, 1/8 (a
    level at least one pixel), and each roi's level given, -1 (none) included."""
    N, K = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    H, W = draw(st.integers(2, 16)), draw(st.integers(2, 16))
    C = draw(st.integers(1, 2))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    scales = [0.5, 0.25, 0.125][:draw(st.integers(2, 3))]
    dtype = draw(st.sampled_from(dtypes))
    shapes = [(N, C, max(1, int(H * s)), max(1, int(W * s))) for s in scales]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(
        features=[_values(rng, shape, dtype) for shape in shapes],
        shapes=shapes,
        rois=np.array(_draw_roi_rows(draw, K, H, W, _torchvision_batch_values(N)), dtype),
        levels=np.array([draw(st.integers(-1, len(scales) - 1)) for _ in range(K)], np.int64),
        scales=scales,
        output_size=(PH, PW),
        grads=_values(rng, (K, C, PH, PW), dtype),
        options=dict(sampling_ratio=draw(st.sampled_from(SAMPLING_RATIOS)),
                     aligned=draw(st.booleans())),
    )


@SETTINGS
@given(c=multi_scale_cases())
def test_multi_scale_roi_align_matches_reference(c):
    maps, rois, levels, scales, size = (c["features"], c["rois"], c["levels"], c["scales"],
                                        c["output_size"])
    options, g = c["options"], c["grads"]
    F = _F(rois.dtype)
    assert_same_bits(
        roiops.multi_scale_roi_align(maps, rois, size, scales, levels=levels, **options),
        multi_scale_reference.multi_scale_roi_align(maps, rois, levels, scales, size, F=F,
                                                    **options))
    got = roiops.multi_scale_roi_align_grad_input(g, rois, levels, c["shapes"], size, scales,
                                                  **options)
    want = multi_scale_reference.multi_scale_roi_align_grad_input(
        g, rois, levels, c["shapes"], scales, size, F=F, **options)
    for level_got, level_want in zip(got, want, strict=True):
        assert_same_bits(level_got, level_want)
    got = roiops.multi_scale_roi_align_grad_boxes(g, maps, rois, levels, size, scales,
                                                  **options)
    want = multi_scale_reference.multi_scale_roi_align_grad_boxes(g, maps, rois, levels,
                                                                  scales, size, F=F, **options)
    assert_box_gradient_close(got, want.astype(np.float64), g, maps, max(scales))


# (convention, aligned, clockwise, the angles drawn: degrees for detectron2, radians for mmcv)
ROTATED_CONVENTIONS = [
    ("detectron2", True, False, [0.0, 90.0, -45.0, 30.5, 180.0, 1e-3]),
    ("mmcv", True, False, [0.0, np.pi / 2, -np.pi / 4, 0.3, np.pi, 1e-5]),
    ("mmcv", True, True, [0.0, np.pi / 2, -np.pi / 4, 0.3]),
    ("mmcv", False, False, [0.0, np.pi / 2, -np.pi / 4, 0.3]),
]


@st.composite
def rotated_cases(draw, dtypes=(np.float32, np.float64)):
    """Rotated rois ``[batch, cx, cy, w, h, angle]``: centres anywhere around the map, sizes
    from 0 to twice the map (negative too in mmcv's legacy mode, which holds them at 1)."""
    convention, aligned, clockwise, angles = draw(st.sampled_from(ROTATED_CONVENTIONS))
    N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    K, C = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    PH, PW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    scale = draw(st.sampled_from(SCALES))
    dtype = draw(st.sampled_from(dtypes))
    Hs, Ws = H / scale, W / scale
    sizes = [0.0, 0.3, 1.0, 2.5]
    if not aligned:
        sizes.append(-1.5)
    rows = []
    for _ in range(K):
        width = draw(st.sampled_from(sizes + [Ws, 2 * Ws]))
        height = draw(st.sampled_from(sizes + [Hs, 2 * Hs]))
        rows.append([draw(st.sampled_from(_torchvision_batch_values(N))),
                     draw(_map_coord(Ws)), draw(_map_coord(Hs)), width, height,
                     draw(st.sampled_from(angles))])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(
        input=_values(rng, (N, C, H, W), dtype),
        rois=np.array(rows, dtype),
        output_size=(PH, PW),
        grads=_values(rng, (K, C, PH, PW), dtype),
        options=dict(spatial_scale=scale, sampling_ratio=draw(st.sampled_from([0, 1, 2, 3])),
                     aligned=aligned, clockwise=clockwise, convention=convention),
    )


@SETTINGS
@given(c=rotated_cases())
def test_roi_align_rotated_matches_reference(c):
    x, rois, size, g, options = (c["input"], c["rois"], c["output_size"], c["grads"],
                                 c["options"])
    F = _F(x.dtype)
    assert_same_bits(roiops.roi_align_rotated(x, rois, size, **options),
                     rotated_reference.roi_align_rotated(x, rois, size, F=F, **options))
    assert_same_bits(roiops.roi_align_rotated_grad_input(g, rois, x.shape, size, **options),
                     rotated_reference.roi_align_rotated_grad_input(g, rois, x.shape, size,
                                                                    F=F, **options))
    got = roiops.roi_align_rotated_grad_boxes(g, x, rois, size, **options)
    want = rotated_reference.roi_align_rotated_grad_boxes(g, x, rois, size, F=F, **options)
    # the angle's derivative is a sample's move per radian: up to the roi's half-diagonal
    radius = 1.0 + np.abs(rois[:, 3:5]).max() * options["spatial_scale"]
    assert_box_gradient_close(got, want.astype(np.float64), g, [x], options["spatial_scale"],
                              lever=radius)
