"""Tests of the roi_align Numba kernels (``roiops.roi_align.cpu``), called directly.

Peer values were produced by torchvision 0.28 and MindSpore 2.10 (CPU) and are written here as
literals; float32/float64 bit-exactness is checked against the sequential float64-capable
reference ``roiops.roi_align.reference``. Both kernel paths are exercised: a few rois run in place
on the NCHW maps, dense rois through the internal channels-last copy.
"""
import numba
import numpy as np
import pytest
from exact import assert_same_bits

from roiops.roi_align import conventions, cpu, reference

F32, F64 = np.float32, np.float64


def _forward(x, rois, output_size, *, scale=1.0, sampling_ratio=2, aligned=False,
             mindspore=False, roi_end_mode=1, F=F32, half=False):
    """Run the forward kernel with the batch index of the chosen convention."""
    indices = _indices(rois, mindspore)
    out = np.zeros((rois.shape[0], x.shape[1]) + tuple(output_size), np.uint16 if half else F)
    cpu.forward(x.astype(F, copy=False), rois.astype(F), indices, F(scale), sampling_ratio,
                _geometry(aligned, mindspore, roi_end_mode), half, out, half, F)
    return out


def _grad_input(grads, rois, input_shape, *, scale=1.0, sampling_ratio=2, aligned=False,
                mindspore=False, roi_end_mode=1, F=F32, half=False):
    out = np.zeros(input_shape, F)
    cpu.grad_input(grads.astype(F, copy=False), rois.astype(F), _indices(rois, mindspore),
                   F(scale), sampling_ratio, _geometry(aligned, mindspore, roi_end_mode), half,
                   out, np.empty((0, 0, 0, 0), F), F)  # no channels-last alias: the temporary path
    return out


def _grad_boxes(grads, x, rois, *, scale=1.0, sampling_ratio=2, aligned=False, mindspore=False,
                roi_end_mode=1, F=F64):
    out = np.zeros((rois.shape[0], 5), F)
    cpu.grad_boxes(grads.astype(F), x.astype(F), rois.astype(F), _indices(rois, mindspore),
                   F(scale), sampling_ratio, _geometry(aligned, mindspore, roi_end_mode), out,
                   F)
    return out


def _geometry(aligned, mindspore, roi_end_mode):
    """The kernels' switches of the convention these options select."""
    name = "mindspore" if mindspore else "torchvision"
    return conventions.convention(name, aligned, roi_end_mode).geometry


def _indices(rois, mindspore):
    if mindspore:
        return np.rint(rois[:, 0].astype(F32) + F32(7e-5)).astype(np.int64)
    return np.trunc(rois[:, 0]).astype(np.int64)


def _random_rois(rng, count, batch, height, width, scale):
    """Boxes inside, across the border of and reversed on an image of the map's size."""
    x1 = rng.uniform(-0.2, 1.0, count) * width / scale
    y1 = rng.uniform(-0.2, 1.0, count) * height / scale
    x2 = x1 + rng.uniform(-0.2, 0.8, count) * width / scale
    y2 = y1 + rng.uniform(-0.2, 0.8, count) * height / scale
    return np.stack([rng.integers(0, batch, count), x1, y1, x2, y2], 1)


# -- peers' documented examples ----------------------------------------------------------------

def test_mindspore_documented_example():
    x = np.array([[[[1, 2], [3, 4]]]], F32)
    rois = np.array([[0, 0.2, 0.3, 0.2, 0.3]], F32)
    out = _forward(x, rois, (2, 2), scale=0.5, mindspore=True, roi_end_mode=1)
    assert out[0, 0, 0, 0] == F32(1.7749999)  # one ulp below float32(1.775), as MindSpore
    assert out[0, 0, 0, 0] != F32(1.775)
    out = _forward(x, rois, (2, 2), scale=0.5, mindspore=True, roi_end_mode=0)
    np.testing.assert_array_equal(out[0, 0], np.array([[2.15, 2.65], [3.125, 3.625]], F32))


def test_torchvision_documented_check():
    x = np.arange(16, dtype=F32).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0.5, 0.5, 2.5, 2.5]], F32)
    out = _forward(x, rois, (2, 2), aligned=True)
    np.testing.assert_array_equal(out.ravel(), [2.5, 3.5, 6.5, 7.5])


def test_mindspore_empty_grids_give_nan_and_negative_zero():
    x = np.ones((1, 1, 8, 8), F32)
    rois = np.array([
        [0, 1.0, 1.0, 1.5, 1.5],    # smaller than the 2x2 output: floor grid 0 -> 0/0
        [0, 6.0, 1.0, 1.0, 7.0],    # reversed in x only: grids 3 and -3 -> +0 / -9 = -0.0
        [0, 6.0, 6.0, 1.0, 1.0],    # reversed in both: count +9 -> +0
    ], F32)
    out = _forward(x, rois, (2, 2), sampling_ratio=0, mindspore=True, roi_end_mode=1)
    assert np.isnan(out[0]).all()
    assert (out[1] == 0).all() and np.signbit(out[1]).all()
    assert (out[2] == 0).all() and not np.signbit(out[2]).any()
    # the gradient of an empty bin is zero, not NaN
    grads = np.ones(out.shape, F32)
    assert (_grad_input(grads, rois, x.shape, sampling_ratio=0, mindspore=True) == 0).all()
    assert (_grad_boxes(grads, x, rois, sampling_ratio=0, mindspore=True) == 0).all()
    # in half, MindSpore stores x86's negative NaN: 0xfe00
    half = _forward(x, rois[:1], (2, 2), sampling_ratio=0, mindspore=True, half=True)
    assert (half == 0xFE00).all()


def test_torchvision_reversed_adaptive_box_gives_zeros():
    # torchvision raises "cannot create std::vector" here; roiops returns zeros
    # (docs/decisions.md#reversed-aligned-boxes)
    x = np.ones((1, 2, 6, 6), F32)
    rois = np.array([[0, 5.0, 1.0, 0.0, 5.0]], F32)
    out = _forward(x, rois, (2, 2), sampling_ratio=0, aligned=True)
    assert (out == 0).all()


# -- float32 / float64 against the sequential reference --------------------------------------

CONFIGS = [
    dict(sampling_ratio=2, aligned=True),
    dict(sampling_ratio=0, aligned=False),
    dict(sampling_ratio=-1, mindspore=True, roi_end_mode=1),
    dict(sampling_ratio=3, mindspore=True, roi_end_mode=0),
]


def _reference_options(options):
    return dict(sampling_ratio=options["sampling_ratio"],
                aligned=options.get("aligned", False),
                convention="mindspore" if options.get("mindspore") else "torchvision",
                roi_end_mode=options.get("roi_end_mode", 1))


@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize("F", [F32, F64])
@pytest.mark.parametrize("num_rois", [3, 60])  # in place / channels-last
def test_matches_reference_bit_for_bit(options, F, num_rois):
    rng = np.random.default_rng(num_rois)
    x = rng.standard_normal((2, 3, 7, 9)).astype(F)
    rois = _random_rois(rng, num_rois, 2, 7, 9, 0.5).astype(F)
    grads = rng.standard_normal((num_rois, 3, 2, 3)).astype(F)
    out = _forward(x, rois, (2, 3), scale=0.5, F=F, **options)
    expected = reference.roi_align(x, rois, (2, 3), 0.5, F=F, **_reference_options(options))
    assert_same_bits(out, expected)
    gradient = _grad_input(grads, rois, x.shape, scale=0.5, F=F, **options)
    expected = reference.roi_align_grad_input(grads, rois, x.shape, (2, 3), 0.5, F=F,
                                              **_reference_options(options))
    assert_same_bits(gradient, expected)


# -- layouts and threads ---------------------------------------------------------------------

@pytest.mark.parametrize("num_rois", [2, 80])
def test_strided_and_permuted_input_equals_contiguous(num_rois):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 8)).astype(F32)
    rois = _random_rois(rng, num_rois, 2, 6, 8, 1.0).astype(F32)
    expected = _forward(x, rois, (3, 2), aligned=True)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    reversed_width = np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    padded = np.zeros((2, 10, 6, 8), F32)
    padded[:, ::2] = x
    for view in (channels_last, reversed_width, padded[:, ::2]):
        np.testing.assert_array_equal(_forward(view, rois, (3, 2), aligned=True), expected)


@pytest.mark.parametrize("F", [F32, F64])
def test_channels_last_copy_in_blocks_and_a_remainder_matches_reference(F):
    """37 channels: two whole blocks of the copy (``_COPY_BLOCK``) and a remainder of 5,
    and a vector chunk of the kernel cut short; dense rois (the channels-last path); the
    output filled with NaN first, so that an element left unwritten shows."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 37, 6, 8)).astype(F)
    rois = _random_rois(rng, 70, 2, 6, 8, 0.5).astype(F)
    out = np.full((70, 37, 3, 2), np.nan, F)
    cpu.forward(x, rois, _indices(rois, False), F(0.5), 2, _geometry(False, False, 1), False,
                out, False, F)
    assert_same_bits(out, reference.roi_align(x, rois, (3, 2), 0.5, sampling_ratio=2, F=F))


@pytest.mark.parametrize("num_rois", [4, 300])
def test_grad_input_does_not_depend_on_thread_count(num_rois):
    rng = np.random.default_rng(4)
    x_shape = (2, 66, 6, 7)  # 66 channels: a whole vector chunk and a remainder
    # many overlapping rois: every pixel receives adds from many rois
    rois = _random_rois(rng, num_rois, 2, 6, 7, 1.0)
    grads = rng.standard_normal((num_rois, 66, 2, 2)).astype(F32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _grad_input(grads, rois, x_shape, sampling_ratio=0)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        multi = _grad_input(grads, rois, x_shape, sampling_ratio=0)
    finally:
        numba.set_num_threads(previous)
    assert_same_bits(single, multi)


# -- gradients as derivatives ----------------------------------------------------------------

@pytest.mark.parametrize("options", CONFIGS[:2] + [dict(sampling_ratio=2, mindspore=True),
                                                   dict(sampling_ratio=2, mindspore=True,
                                                        roi_end_mode=0)])
def test_grad_boxes_matches_finite_differences(options):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11))
    # coordinates chosen away from kinks (no sample on an integer or a clamp boundary)
    rois = np.array([[0, 1.3, 2.2, 7.7, 6.1], [1, -3.3, 0.6, 20.1, 5.1],
                     [1, 4.1, 3.3, 4.6, 3.5], [0, 10.23, 2.13, 3.31, 8.97]])
    grads = rng.standard_normal((4, 3, 2, 3))

    def loss(boxes):
        return (grads * _forward(x, boxes, (2, 3), scale=0.75, F=F64, **options)).sum()

    gradient = _grad_boxes(grads, x, rois, scale=0.75, **options)
    step = 1e-6
    numeric = np.zeros_like(gradient)
    for k in range(rois.shape[0]):
        for column in range(1, 5):
            up, down = rois.copy(), rois.copy()
            up[k, column] += step
            down[k, column] -= step
            numeric[k, column] = (loss(up) - loss(down)) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-7)
    assert (gradient[:, 0] == 0).all()
    assert np.abs(gradient).max() > 0.1  # the check has something to check


def test_grad_boxes_zero_where_forward_is_constant():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 5, 5))
    grads = rng.standard_normal((2, 2, 2, 2))
    rois = np.array([[0, 10.0, 10.0, 14.0, 14.0],   # entirely outside: no valid sample
                     [0, 1.2, 1.4, 1.3, 1.5]])      # clamped to size 1: x2, y2 do not matter
    gradient = _grad_boxes(grads, x, rois, sampling_ratio=2, aligned=False)
    assert (gradient[0] == 0).all()
    assert gradient[1, 3] == 0 and gradient[1, 4] == 0
    assert gradient[1, 1] != 0 and gradient[1, 2] != 0


@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize("num_rois", [3, 60])
def test_grad_input_is_the_adjoint_of_forward(options, num_rois):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 6, 7))
    rois = _random_rois(rng, num_rois, 2, 6, 7, 1.0)
    grads = rng.standard_normal((num_rois, 4, 3, 2))
    out = _forward(x, rois, (3, 2), F=F64, **options)
    finite = np.isfinite(out)  # MindSpore's empty bins are NaN; their gradient is zero
    lhs = (grads * np.where(finite, out, 0)).sum()
    rhs = (_grad_input(grads, rois, x.shape, F=F64, **options) * x).sum()
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


# -- half arithmetic against the peers -------------------------------------------------------

# Outputs of torchvision 0.28 (roi_align + backward) and MindSpore 2.10 (ROIAlign, ROIAlignGrad)
# on float16 tensors, as hex float16 bits, for the case built by _half_case.
TV_FWD_SR2_ALIGNED = (
    "b222ac752b4b27b730dc3474340735f936f7311f32aeac57b57ab1ae289827163226367e34ac374da5b02ed8"
    "3076a1fc2baa25e2a300a88baca1aef8336c323f311430de2f642d06"
)
TV_GRAD_SR2_ALIGNED = (
    "b558b37ca93f959e00000000acbe2e5fb54aa86d000000002edb3111b142a4bb000000000000000000000000"
    "00000000000000000000000000000000b158a72c30112252000000003103b551b0829fcd000000003121b176"
    "b04aa0f40000000000000000000000000000000000000000000000000000000034ac34932a8a2c4319880000"
    "244034693281344921900000b9e0b10aa7882a1917e90000b2ebacdca8669e788c3200000000000000000000"
    "00000000aa2a3513a1deacb69a1e00002d3a2dfaa9a6b4aea2140000b512b8122ae62b8a18e40000aef4a0f5"
    "27642b4818b90000000000000000000000000000"
)
TV_FWD_SR0 = (
    "34dc36e33874b42cb0489f78a8fe2d9c31af393e2b30b6f9b08a2b6e3458b1b8257232c73382369cace3374c"
    "a8f0b235b261b0dcaeaa325933dd34b3b1a5b8a5b84320a0b1d8b053"
)
TV_GRAD_SR0 = (
    "a2cba862a215925b00000000b2dcb82cb2d9ab3c000000002db236acaa98b415000000000000000000000000"
    "000000000000000000000000000000009f1ea32420521f2700000000ada8b3492bca2e490000000032032d04"
    "b808b04600000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "a24b2a35302032a12dae0000b0bda8cf2a8331f32d400000b575a95ab427aac29e510000a6cea59034e42f85"
    "8fe000000000000000000000000000002f1530fa315cb2eaae470000285a2f3e30a4b0fbac8e0000b1b8b374"
    "b92ca5cc2b1c0000a32028a231e2aea41c6e0000"
)
MS_FWD_SN2_MODE1 = (
    "301a349d372ca554307632cb31f42c3c292c37feae64b024a8ce326635c2ab8c31b6299031c33388249c36fa"
    "ac1d9ac0344334353427a5f6a6d8a7ae2b042bf62c7537663759374c"
)
MS_FWD_SN0_MODE0 = (
    "fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00b0f62b7a3458b464abcc30e0331136f2b1073833"
    "ae2cb46bfe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00"
)
MS_GRAD_SN2 = (
    "a470ab2aa71d9d7d8fb80000afd4b64fb245a8d59ace000020572d6d3152b4a7ac1b000027753023307fb17c"
    "a8f80000000000000000000000000000a0a6a6bb11d0254e1c580000ac19b1ef1d1e30ac27a800002d173074"
    "b54db0eca60700002bdf2fcbb28eafe2a5340000000000000000000000000000000000000000000000000000"
    "a00a3495351b2ec7304f25afa894288c3050312d32c02875b42db433b18ea9dd188a0e01b118af9daccca868"
    "9ef894990000000000000000000000002c8b308f32f0a856b0c3a6492e60b27eb048aa33b335a8c1b024b357"
    "b1482a9f2d792338ad56aa829ef828502bd8212d"
)


def _half_case():
    x = (np.arange(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) % 11 / 7 - 0.6).astype(np.float16)
    rois = np.array([[0, 0.3, 0.7, 4.1, 3.3], [1, -0.8, 1.2, 5.6, 4.9],
                     [1, 2.2, 3.9, 1.1, 0.4]], np.float16)
    grads = (np.arange(3 * 2 * 2 * 3).reshape(3, 2, 2, 3) % 5 / 3 - 0.7).astype(np.float16)
    # the peers convert spatial_scale 0.7 through float32 to half
    scale = F32(np.float16(F32(0.7)))
    return x.astype(F32), rois.astype(F32), grads.astype(F32), scale


def _half_bits(hex_string):
    return np.frombuffer(bytes.fromhex(hex_string), ">u2").astype(np.uint16)


@pytest.mark.parametrize("sampling_ratio, aligned, forward_bits, grad_bits", [
    (2, True, TV_FWD_SR2_ALIGNED, TV_GRAD_SR2_ALIGNED),
    (0, False, TV_FWD_SR0, TV_GRAD_SR0),
])
def test_half_arithmetic_matches_torchvision(sampling_ratio, aligned, forward_bits, grad_bits):
    x, rois, grads, scale = _half_case()
    out = _forward(x, rois, (2, 3), scale=scale, sampling_ratio=sampling_ratio,
                   aligned=aligned, half=True)
    np.testing.assert_array_equal(out.ravel(), _half_bits(forward_bits))
    gradient = _grad_input(grads, rois, x.shape, scale=scale, sampling_ratio=sampling_ratio,
                           aligned=aligned, half=True)
    np.testing.assert_array_equal(gradient.astype(np.float16).view(np.uint16).ravel(),
                                  _half_bits(grad_bits))


def test_half_arithmetic_matches_mindspore():
    x, rois, grads, scale = _half_case()
    out = _forward(x, rois, (2, 3), scale=scale, sampling_ratio=2, mindspore=True,
                   roi_end_mode=1, half=True)
    np.testing.assert_array_equal(out.ravel(), _half_bits(MS_FWD_SN2_MODE1))
    out = _forward(x, rois, (2, 3), scale=scale, sampling_ratio=0, mindspore=True,
                   roi_end_mode=0, half=True)
    np.testing.assert_array_equal(out.ravel(), _half_bits(MS_FWD_SN0_MODE0))
    gradient = _grad_input(grads, rois, x.shape, scale=scale, sampling_ratio=2, mindspore=True,
                           roi_end_mode=1, half=True)
    np.testing.assert_array_equal(gradient.astype(np.float16).view(np.uint16).ravel(),
                                  _half_bits(MS_GRAD_SN2))
