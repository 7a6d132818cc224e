"""The Triton kernels (``roiops.<op>.cuda``) against the Numba CPU kernels.

Without a GPU they run under the Triton interpreter on CPU tensors: a private copy of each
kernel module is loaded with ``TRITON_INTERPRET=1`` set while its ``@triton.jit`` decorators
run (the knob is read at decoration time), so the rest of the process, including a real CUDA
run in the same session, is unaffected. The interpreter is slow: shapes are small.

The kernels are called through the functions that ``roiops.torch.ops`` registers for
"cuda" (``ops._cuda_*``), so the host-side checks run too. Expectation: bit-identical to the
CPU op (NaN positions equal, NaN sign free), forward and input/image gradient, float32 and
float64, both roi_align conventions, the three crop methods, both layouts; float16/bfloat16
compute in float32 and round once, like the CPU op.

The two box gradients sum in a different (fixed) order than the CPU's sequential loop, so
they are compared with a tolerance (``_close``), and bit for bit on dyadic data where every
addend and partial sum is exact in float32, so that any order gives the same bits.
"""
import importlib.util
import os
import sys
import warnings
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from exact import assert_same_bits  # noqa: E402

import roiops.torch.ops as ops  # noqa: E402 - only with torch and triton
from roiops.roi_align import conventions  # noqa: E402


def _interpreted(name, interpret=True):
    """A private copy of kernel module ``name`` whose kernels run under the interpreter (or
    compile for a GPU: ``interpret=False``), with its own copy of ``roiops._triton``, the
    helpers it calls, loaded the same way."""
    previous = os.environ.get("TRITON_INTERPRET")
    helpers = sys.modules.get("roiops._triton")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        sys.modules["roiops._triton"] = _fresh("roiops._triton")
        return _fresh(name)
    finally:
        if helpers is None:
            del sys.modules["roiops._triton"]
        else:
            sys.modules["roiops._triton"] = helpers
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


def _fresh(name):
    """A new copy of module ``name``, executed now (its decorators read the environment)."""
    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def interpreted_kernels():
    """The registered CUDA entry points (``ops._cuda_*``, with their host-side checks), made
    to run the interpreted kernels on CPU tensors."""
    patch = pytest.MonkeyPatch()
    for name in ("roiops.roi_align.cuda", "roiops.crop_and_resize.cuda"):
        module = _interpreted(name)
        patch.setitem(sys.modules, name, module)
        # The package from sys.modules: the attribute ``roiops.roi_align`` is the function of
        # that name, and an earlier import of the real kernels left them on the package.
        package = sys.modules[name.rpartition(".")[0]]
        patch.setattr(package, "cuda", module, raising=False)
    yield
    patch.undo()


def _seed(*parts):
    """A seed per test case, the same in every run (``hash`` of a str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def _cpu_and_cuda(name, *args):
    """``ops.<name>`` (the CPU op) and ``ops._cuda_<name>`` (the interpreted kernels) on
    ``args``, with NumPy's warnings about NaN/inf arithmetic (overflowing boxes, 0/0 bins)
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(ops, name)(*args), getattr(ops, f"_cuda_{name}")(*args)


def _assert_cuda_matches_cpu(name, *args):
    """``ops._cuda_<name>(*args)`` gives the CPU op's bits."""
    expected, actual = _cpu_and_cuda(name, *args)
    assert_same_bits(actual, expected)


def _rois(rng, num_rois, batch, low, high, dtype):
    rois = np.zeros((num_rois, 5))
    rois[:, 0] = rng.integers(0, batch, num_rois)
    rois[:, 1:] = rng.uniform(low, high, (num_rois, 4))  # outside the map and flipped too
    return torch.from_numpy(rois).to(dtype)


# (convention, aligned, roi_end_mode, sampling_ratio, spatial_scale)
ROI_CASES = [
    ("torchvision", False, 1, -1, 0.7),
    ("torchvision", True, 1, 2, 0.5),
    ("torchvision", True, 1, -1, 1.0),
    ("mindspore", False, 0, -1, 0.7),
    ("mindspore", False, 1, 2, 1.0),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16,
                                   torch.bfloat16])
@pytest.mark.parametrize("case", ROI_CASES, ids=lambda c: "-".join(map(str, c)))
def test_roi_align_matches_cpu(interpreted_kernels, dtype, case):
    convention, aligned, mode, ratio, scale = case
    rng = np.random.default_rng(_seed(dtype, case))
    batch, channels, height, width, pooled = 2, 3, 7, 5, (2, 3)
    x = torch.from_numpy(rng.standard_normal((batch, channels, height, width))).to(dtype)
    if dtype != torch.float64:  # non-contiguous input: strides are honoured
        x = x.contiguous(memory_format=torch.channels_last)
    rois = _rois(rng, 5, batch, -3.0, 9.0, torch.float64 if dtype == torch.float64
                 else torch.float32)
    args = (list(pooled), scale, ratio, aligned, convention, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN bins (0/0) under NumPy
        expected = ops.roi_align(x, rois, *args)
        assert_same_bits(ops._cuda_roi_align(x, rois, *args), expected)
        grads = torch.from_numpy(rng.standard_normal(expected.shape)).to(dtype)
        expected_grad = ops.roi_align_grad_input(grads, rois, list(x.shape), *args)
        actual_grad = ops._cuda_roi_align_grad_input(grads, rois, list(x.shape), *args)
    assert_same_bits(actual_grad, expected_grad)
    assert actual_grad.is_contiguous(memory_format=torch.channels_last)


def test_roi_align_edge_cases(interpreted_kernels):
    # Width and height 1, one pooled bin, a huge box with an adaptive grid (bisection keeps
    # it cheap), a box exactly on the border, pinned samples, and boxes whose arithmetic
    # overflows to inf/NaN (saturated grid, NaN coordinates).
    x = torch.arange(2 * 3 * 1 * 4, dtype=torch.float32).reshape(2, 3, 1, 4) - 5
    rois = torch.tensor([[1, -1e6, -1e6, 1e6, 1e6], [0, 0, 0, 3, 0], [1, 3, 0, 3, 0],
                         [0, 2.5, -0.5, 1.5, 0.5], [1, -3e38, 0, 3e38, 1e38],
                         [0, 3e38, 1, 3e38, 2]], dtype=torch.float32)
    for convention, aligned, mode in (("torchvision", False, 1), ("torchvision", True, 1),
                                      ("mindspore", False, 0)):
        args = ([1, 2], 1.0, -1, aligned, convention, mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = ops.roi_align(x, rois, *args)
            assert_same_bits(ops._cuda_roi_align(x, rois, *args), expected)
            grads = torch.ones_like(expected)
            assert_same_bits(ops._cuda_roi_align_grad_input(grads, rois, list(x.shape), *args),
                             ops.roi_align_grad_input(grads, rois, list(x.shape), *args))


@pytest.mark.parametrize("launch", [{"BLOCK_C": 128, "UNROLL": 4}, {"BLOCK_C": 2, "UNROLL": 3}],
                         ids=["default", "narrow"])
@pytest.mark.parametrize("case", ROI_CASES, ids=lambda c: "-".join(map(str, c)))
def test_roi_align_grad_input_hard_rois(interpreted_kernels, monkeypatch, launch, case):
    # 19 x 21 pixels. Rois straddle each other, are reversed, reach outside the map (samples
    # in the [-1, 0] margin), are pinned to the last row/column (corners that coincide), sit
    # between pixels, repeat (grads x1000: any reordering of the adds to one element would
    # show in the bits), and overflow (NaN/inf samples, none valid). Every pixel's records
    # must be summed in the CPU's order, whatever the channel block and unrolling (a channel
    # block of 2 splits the 3 channels).
    launches = sys.modules["roiops.roi_align.cuda"].LAUNCH  # the interpreted kernels'
    monkeypatch.setitem(launches, "grad_input", {**launches["grad_input"], **launch})
    convention, aligned, mode, ratio, scale = case
    rng = np.random.default_rng(_seed("hard rois", case))
    shape = [2, 3, 19, 21]
    across = [0, 6.3, 5.2, 17.7, 12.9]
    reversed_ = [1, 20.5, 18.5, 14.2, 9.1]
    boxes = [across, across, reversed_, reversed_,
             [0, -1.8, -1.5, 3.0, 2.5],  # partly outside: the [-1, 0] margin
             [1, 18.2, 16.4, 21.5, 19.6],  # the last row and column: pinned samples
             [0, 7.5, 7.9, 8.5, 8.1],  # between pixels
             [1, -5.0, 3.0, 30.0, 17.9], across]  # [batch, x1, y1, x2, y2] in map units
    rois = torch.tensor(boxes, dtype=torch.float64)
    rois[:, 1:] /= scale
    overflow = torch.tensor([[1, -3e38, 2.0, 3e38, 9.0]], dtype=torch.float64)  # inf/NaN
    rois = torch.cat([rois, overflow]).float()
    args = ([3, 2], scale, ratio, aligned, convention, mode)
    grads = torch.from_numpy(1000 * rng.standard_normal((len(rois), 3, 3, 2))).float()
    expected, actual = _cpu_and_cuda("roi_align_grad_input", grads, rois, shape, *args)
    assert_same_bits(actual, expected)


def test_checks_run_before_launch(interpreted_kernels):
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="batch index"):
        ops._cuda_roi_align(x, torch.tensor([[3.0, 0, 0, 1, 1]]), [2, 2])
    with pytest.raises(ValueError):
        ops._cuda_roi_align(x, torch.tensor([[0.0, 0, float("nan"), 1, 1]]), [2, 2])
    with pytest.raises(ValueError, match="batch index"):
        ops._cuda_roi_align_grad_input(torch.zeros(1, 1, 2, 2),
                                       torch.tensor([[-1.0, 0, 0, 1, 1]]), [1, 1, 4, 4], [2, 2])
    image = torch.zeros(1, 4, 4, 1)
    with pytest.raises(ValueError):
        ops._cuda_crop_and_resize(image, torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1]),
                                  [2, 2])
    with pytest.raises(ValueError):
        ops._cuda_crop_and_resize(image, torch.tensor([[0.0, 0, float("inf"), 1]]),
                                  torch.tensor([0]), [2, 2])
    with pytest.raises(ValueError):
        ops._cuda_crop_and_resize_grad_image(torch.zeros(1, 2, 2, 1),
                                             torch.tensor([[0.0, 0, 1, 1]]),
                                             torch.tensor([2]), [1, 4, 4, 1])


def _crop_case(rng, dtype, data_format):
    """(image [2,6,5,3] of ``dtype`` as ``data_format``, 5 boxes, int32 indices): boxes flipped
    and partly outside, box 0 a point (pixel centres and edges)."""
    values = rng.standard_normal((2, 6, 5, 3)) * 10
    if not dtype.is_floating_point:
        values = rng.integers(0, 255, (2, 6, 5, 3))
    image = torch.from_numpy(values).to(dtype)
    if data_format == "NCHW":
        image = image.permute(0, 3, 1, 2)  # a strided view: the kernels read strides
    box_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    boxes = torch.from_numpy(rng.uniform(-0.3, 1.3, (5, 4))).to(box_dtype)
    boxes[0] = torch.tensor([0.25, 0.5, 0.25, 0.5])
    indices = torch.from_numpy(rng.integers(0, 2, 5)).to(torch.int32)
    return image, boxes, indices


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.uint8])
@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_crop_and_resize_matches_cpu(interpreted_kernels, dtype, method, data_format):
    rng = np.random.default_rng(_seed(dtype, method, data_format))
    image, boxes, indices = _crop_case(rng, dtype, data_format)
    for crop in ([3, 4], [1, 1], [1, 5]):
        expected, actual = _cpu_and_cuda("crop_and_resize", image, boxes, indices, crop, method,
                                         -0.5, data_format)
        assert_same_bits(actual, expected)
        grads = torch.from_numpy(rng.standard_normal(expected.shape)).to(expected.dtype)
        _assert_cuda_matches_cpu(
            "crop_and_resize_grad_image", grads, boxes, indices, list(image.shape), method,
            expected.dtype, data_format)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crop_and_resize_tiny_and_huge_boxes(interpreted_kernels, dtype):
    # Crop size 1 takes the box centre through float64 as on the CPU: exact also when the
    # float32 centre is subnormal. Huge finite boxes overflow to inf/NaN coordinates, which
    # count as outside (extrapolated, skipped in the gradient).
    image = torch.arange(2 * 7 * 6 * 2, dtype=dtype).reshape(2, 7, 6, 2) - 40
    boxes = torch.tensor([[1e-45, 3e-45, 2e-45, 1e-44], [3e-39, 1e-40, -2e-39, 0.0],
                          [-3e38, 0.1, 3e38, 0.9], [0.2, 3e38, 0.7, -3e38]], dtype=dtype)
    indices = torch.tensor([0, 1, 1, 0])
    for method in ("bilinear", "nearest", "bilinear_v2"):
        for crop in ([1, 1], [2, 3]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = ops.crop_and_resize(image, boxes, indices, crop, method, 7.0, "NHWC")
                assert_same_bits(ops._cuda_crop_and_resize(image, boxes, indices, crop, method,
                                                           7.0, "NHWC"), expected)
                grads = torch.ones_like(expected)
                _assert_cuda_matches_cpu(
                    "crop_and_resize_grad_image", grads, boxes, indices, list(image.shape),
                    method, dtype, "NHWC")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf * 0 under NumPy
def test_crop_and_resize_gradient_propagates_inf(interpreted_kernels):
    # A zero-weight corner add must still happen: inf * 0 is NaN, as on the CPU.
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.2, 0.1, 0.9, 0.7]])
    indices = torch.tensor([0, 0])
    grads = torch.ones(2, 3, 3, 2)
    grads[0, 1, 1, 0] = float("inf")
    grads[1, 0, 2, 1] = -float("inf")
    for method in ("bilinear", "nearest", "bilinear_v2"):
        _assert_cuda_matches_cpu(
            "crop_and_resize_grad_image", grads, boxes, indices, [1, 5, 4, 2], method,
            torch.float32, "NHWC")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflowing box: inf/NaN samples
@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("tile, data_format", [((8, 8), "NHWC"), ((8, 8), "NCHW"),
                                               ((2, 4), "NHWC")],  # the layout is orthogonal
                         ids=["8x8-NHWC", "8x8-NCHW", "2x4-NHWC"])
def test_crop_and_resize_grad_image_tiles(interpreted_kernels, monkeypatch, tile, data_format,
                                          method):
    # Several tiles each way, the last ones partial (8 x 8 tiles over 19 x 21 pixels, 2 x 4
    # over 7 x 9: as many tiles as needed, since the interpreter runs one program per tile;
    # the channel block of 4 keeps them that size), each program gathering the adds of its
    # pixels. Boxes straddle tile borders, are flipped, reach outside the image (extrapolated
    # samples skipped), overflow (NaN samples), cover the whole image (samples on tile
    # borders), lie below it; box 0 recurs as boxes 6 and 7, box 6 with gradients x1000, so
    # any reordering of the adds to one element shows in the bits. No skip of a box, crop row
    # or column may drop an add.
    launches = sys.modules["roiops.crop_and_resize.cuda"].LAUNCH  # the interpreted kernels'
    monkeypatch.setitem(launches, "grad_image", {**launches["grad_image"], "BLOCK_D": 4,
                                                 "TILE_H": tile[0], "TILE_W": tile[1]})
    rng = np.random.default_rng(_seed("tiles", tile, method, data_format))
    boxes = torch.tensor([[0.3, 0.25, 0.62, 0.81],   # straddles tile rows and columns
                          [0.9, 0.85, 0.15, 0.3],    # flipped on both axes
                          [-0.3, 0.5, 0.55, 1.4],    # partly outside, top and right
                          [0.0, 0.0, 1.0, 1.0],      # the whole image
                          [0.4, 0.42, 0.4, 0.42],    # a point near tile borders
                          [0.2, -3e38, 0.7, 3e38],   # overflow: NaN/inf columns, skipped
                          [0.3, 0.25, 0.62, 0.81],
                          [0.3, 0.25, 0.62, 0.81],
                          [1.2, 0.1, 1.5, 0.9]])     # entirely below the image
    indices = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0, 1])
    height, width = (19, 21) if tile == (8, 8) else (7, 9)
    image_shape = [2, height, width, 3] if data_format == "NHWC" else [2, 3, height, width]
    for crop in ([5, 6], [1, 4], [3, 1]):
        shape = (9, *crop, 3) if data_format == "NHWC" else (9, 3, *crop)
        grads = torch.from_numpy(rng.standard_normal(shape)).float()
        grads[6] *= 1000
        dtypes = [torch.float32, torch.float16] if crop == [5, 6] else [torch.float32]
        for dtype in dtypes:
            args = (grads, boxes, indices, image_shape, method, dtype, data_format)
            expected = ops.crop_and_resize_grad_image(*args)
            assert expected.abs().max() > 0
            assert_same_bits(ops._cuda_crop_and_resize_grad_image(*args), expected)


# Box gradients: relative tolerance per compute/result dtype. float32/float64: a few hundred
# addends summed in another order, each rounding contributing ~eps relative to the addends'
# size; float16/bfloat16: the float32 results may round to neighbouring half values (1 ulp).
_BOX_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 1e-3,
             torch.bfloat16: 8e-3}


def _close(actual, expected):
    """Equal within ``_BOX_RTOL``; the absolute part scales with the largest entry, since
    cancellation can make an entry small while its rounding error is that of its addends."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    rtol = _BOX_RTOL[expected.dtype]
    scale = expected.double().nan_to_num(posinf=0, neginf=0).abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.uint8])
@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_crop_and_resize_grad_boxes_matches_cpu(interpreted_kernels, dtype, method,
                                                data_format):
    # Every method takes the bilinear box gradient; boxes flipped, partly outside, a point,
    # and huge (NaN coordinates, skipped); crop size 1 on one axis and on both.
    rng = np.random.default_rng(_seed("boxes", dtype, method, data_format))
    image, boxes, indices = _crop_case(rng, dtype, data_format)
    boxes[1] = torch.tensor([-3e38, 0.1, 3e38, 0.9])
    result_dtype = dtype if dtype.is_floating_point else torch.float32
    for crop in ([3, 4], [1, 1], [1, 5], [4, 1]):
        shape = (5, *crop, 3) if data_format == "NHWC" else (5, 3, *crop)
        grads = torch.from_numpy(rng.standard_normal(shape)).to(result_dtype)
        args = (grads, image, boxes, indices, method, data_format)
        expected, actual = _cpu_and_cuda("crop_and_resize_grad_boxes", *args)
        _close(actual, expected)


@pytest.mark.parametrize("crop", [[3, 3], [1, 3], [1, 1]])
def test_crop_and_resize_grad_boxes_exact_on_dyadic_data(interpreted_kernels, crop):
    # H - 1 = W - 1 = 4 and crop - 1 = 2: the ratio is 2, box edges in 1/16 make every
    # coordinate, lerp and weight a multiple of 1/8; small integer pixels and grads keep every
    # partial sum exact in float32, so the summation order cannot show.
    rng = np.random.default_rng(5)
    image = torch.from_numpy(rng.integers(-8, 9, (2, 5, 5, 3))).float()
    boxes = torch.from_numpy(rng.integers(-6, 23, (6, 4)) / 16).float()  # outside, flipped
    indices = torch.tensor([0, 1, 1, 0, 1, 0])
    grads = torch.from_numpy(rng.integers(-4, 5, (6, *crop, 3))).float()
    for method in ("bilinear", "nearest"):
        args = (grads, image, boxes, indices, method, "NHWC")
        _assert_cuda_matches_cpu("crop_and_resize_grad_boxes", *args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16,
                                   torch.bfloat16])
@pytest.mark.parametrize("case", ROI_CASES + [("mindspore", False, 0, 2, 1.0)],
                         ids=lambda c: "-".join(map(str, c)))
def test_roi_align_grad_boxes_matches_cpu(interpreted_kernels, dtype, case):
    convention, aligned, mode, ratio, scale = case
    rng = np.random.default_rng(_seed("boxes", dtype, case))
    batch, channels, height, width, pooled = 2, 3, 7, 5, (2, 3)
    x = torch.from_numpy(rng.standard_normal((batch, channels, height, width))).to(dtype)
    if dtype != torch.float64:  # non-contiguous input: strides are honoured
        x = x.contiguous(memory_format=torch.channels_last)
    rois = _rois(rng, 6, batch, -3.0, 9.0, torch.float64 if dtype == torch.float64
                 else torch.float32)
    rois[0, 1:] = torch.tensor([1.2, 1.3, 1.6, 1.5])  # below the minimum size (clamped)
    grads = torch.from_numpy(rng.standard_normal((6, channels, *pooled))).to(dtype)
    args = (grads, x, rois, list(pooled), scale, ratio, aligned, convention, mode)
    expected, actual = _cpu_and_cuda("roi_align_grad_boxes", *args)
    _close(actual, expected)
    assert not actual[:, 0].any()  # the batch index has no gradient


@pytest.mark.parametrize("case", ROI_CASES, ids=lambda c: "-".join(map(str, c)))
def test_roi_align_grad_boxes_exact_on_dyadic_data(interpreted_kernels, case):
    # Integer corners and roi sizes of -4 (flipped), 2, 4 or 8 pixels over 2 bins: bins,
    # grids (2 or adaptive), counts and sample positions are powers of two or their small
    # multiples, so every coordinate and weight is dyadic; small integer data then keeps every
    # partial sum exact in float32, and the summation order cannot show.
    convention, aligned, mode, _, _ = case
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.integers(-8, 9, (2, 3, 6, 7))).float()
    corners = rng.integers(-2, 8, (5, 2)).astype(np.float64)
    sizes = rng.choice([-4.0, 2.0, 4.0, 8.0], (5, 2)) - (convention == "mindspore" and mode)
    rois = torch.from_numpy(np.concatenate(
        [rng.integers(0, 2, (5, 1)), corners, corners + sizes], axis=1)).float()
    grads = torch.from_numpy(rng.integers(-4, 5, (5, 3, 2, 2))).float()
    for ratio in (2, -1):
        args = (grads, x, rois, [2, 2], 1.0, ratio, aligned, convention, mode)
        expected, actual = _cpu_and_cuda("roi_align_grad_boxes", *args)
        assert_same_bits(actual, expected)


def test_roi_align_grad_boxes_edge_cases(interpreted_kernels):
    # Height 1 (every sample pinned), a huge box with an adaptive grid, a box on the border,
    # overflowing boxes (NaN coordinates, saturated grids), and MindSpore's empty grids.
    x = torch.arange(2 * 3 * 1 * 4, dtype=torch.float32).reshape(2, 3, 1, 4) - 5
    rois = torch.tensor([[1, -1e6, -1e6, 1e6, 1e6], [0, 0, 0, 3, 0], [1, 3, 0, 3, 0],
                         [0, 2.5, -0.5, 1.5, 0.5], [1, -3e38, 0, 3e38, 1e38],
                         [0, 3e38, 1, 3e38, 2]], dtype=torch.float32)
    grads = torch.linspace(-1, 2, 6 * 3 * 1 * 2).reshape(6, 3, 1, 2)
    for convention, aligned, mode in (("torchvision", False, 1), ("torchvision", True, 1),
                                      ("mindspore", False, 0)):
        args = (grads, x, rois, [1, 2], 1.0, -1, aligned, convention, mode)
        expected, actual = _cpu_and_cuda("roi_align_grad_boxes", *args)
        _close(actual, expected)


def test_grad_boxes_of_no_boxes(interpreted_kernels):
    image = torch.zeros(1, 4, 4, 2)
    actual = ops._cuda_crop_and_resize_grad_boxes(torch.zeros(0, 2, 2, 2), image,
                                                  torch.zeros(0, 4), torch.zeros(0).int())
    assert_same_bits(actual, torch.zeros(0, 4))
    x = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    actual = ops._cuda_roi_align_grad_boxes(torch.zeros(0, 2, 2, 2, dtype=torch.float64), x,
                                            torch.zeros(0, 5), [2, 2])
    assert_same_bits(actual, torch.zeros(0, 5, dtype=torch.float64))


def test_grad_boxes_checks_run_before_launch(interpreted_kernels):
    image = torch.zeros(1, 4, 4, 2)
    with pytest.raises(ValueError, match="box_indices"):
        ops._cuda_crop_and_resize_grad_boxes(torch.zeros(1, 2, 2, 2), image,
                                             torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="boxes must be finite"):
        ops._cuda_crop_and_resize_grad_boxes(torch.zeros(1, 2, 2, 2), image,
                                             torch.tensor([[0.0, 0, 1, float("nan")]]),
                                             torch.tensor([0]))
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="batch index"):
        ops._cuda_roi_align_grad_boxes(torch.zeros(1, 2, 2, 2), x,
                                       torch.tensor([[3.0, 0, 0, 1, 1]]), [2, 2])
    with pytest.raises(ValueError, match="rois must be finite"):
        ops._cuda_roi_align_grad_boxes(torch.zeros(1, 2, 2, 2), x,
                                       torch.tensor([[0.0, 0, 0, 1, float("inf")]]), [2, 2])


def _kernel_variants():
    """(kernel name, signature, constexprs) of every kernel and switch, float32 compute."""
    ints = ["channels", "height", "width", "pooled_h", "pooled_w", "sampling_ratio"]
    geometry = ["scale_bits", "height", "width", "pooled_h", "pooled_w", "sampling_ratio"]
    tables = {"y_first_ptr": "*i64", "y_count_ptr": "*i64", "x_first_ptr": "*i64",
              "x_count_ptr": "*i64"}
    roi_forward = {"input_ptr": "*fp16", "rois_ptr": "*fp32", "index_ptr": "*i64",
                   "out_ptr": "*fp16", "scale_bits": "i32", **tables,
                   **{n: "i32" for n in ints + ["s_n", "s_c", "s_h", "s_w"]}}
    roi_plan = {"rois_ptr": "*fp32", "scale_bits": "i32", **tables, "divisor_ptr": "*fp32",
                **{n: "i32" for n in geometry[1:]}}
    roi_records = {"rois_ptr": "*fp32", "index_ptr": "*i64", "scale_bits": "i32", **tables,
                   "offset_ptr": "*i64", "pixel_ptr": "*i32",
                   "weight_ptr": "*fp32", "bin_ptr": "*i32",
                   **{n: "i32" for n in geometry[1:]}}
    roi_sum = {"start_ptr": "*i64", "weight_ptr": "*fp32", "bin_ptr": "*i32",
               "divisor_ptr": "*fp32", "grads_ptr": "*fp16", "out_ptr": "*fp32",
               "channels": "i32", "bins": "i32"}
    roi_grad_boxes = {"grads_ptr": "*fp32", "input_ptr": "*fp16", "rois_ptr": "*fp32",
                      "index_ptr": "*i64", "out_ptr": "*fp32", "scale_bits": "i32", **tables,
                      **{n: "i32" for n in ints + ["g_k", "g_c", "g_h", "g_w",
                                                   "s_n", "s_c", "s_h", "s_w"]}}
    for convention in (conventions.TORCHVISION, conventions.TORCHVISION_ALIGNED,
                       conventions.MINDSPORE_END_MODE_0):
        geometry = convention.geometry
        switches = {"OFFSET": geometry.offset, "ADD_END": geometry.add_end,
                    "END_EXTRA": geometry.end_extra, "MIN_SIZE": geometry.min_size,
                    "GRID_FLOOR": geometry.grid_floor, "COUNT_PRODUCT": geometry.count_product,
                    "FLOAT64": False}
        yield ("roiops.roi_align.cuda", "_forward_kernel", roi_forward,
               {**switches, "BLOCK_C": 4, "BLOCK_BINS": 64})
        yield ("roiops.roi_align.cuda", "_plan_kernel", roi_plan, {**switches, "BLOCK_P": 8})
        yield ("roiops.roi_align.cuda", "_records_kernel", roi_records,
               {**switches, "BLOCK_BINS": 64})
        yield ("roiops.roi_align.cuda", "_grad_boxes_kernel", roi_grad_boxes,
               {**switches, "BLOCK_C": 32})
    yield "roiops.roi_align.cuda", "_sum_records_kernel", roi_sum, {"UNROLL": 4, "BLOCK_C": 128}
    sizes = ["num_boxes", "height", "width", "depth", "crop_h", "crop_w"]
    crop_forward = {"image_ptr": "*u8", "boxes_ptr": "*fp32", "index_ptr": "*i64",
                    "out_ptr": "*fp32", "extrapolation_bits": "i32",
                    **{n: "i32" for n in sizes + ["i_b", "i_h", "i_w", "i_d",
                                                  "o_n", "o_h", "o_w", "o_d"]}}
    crop_grad = {"grads_ptr": "*fp16", "boxes_ptr": "*fp32", "index_ptr": "*i64",
                 "out_ptr": "*fp32", **{n: "i32" for n in sizes + ["g_n", "g_h", "g_w", "g_d"]}}
    for method in (0, 1, 2):
        yield ("roiops.crop_and_resize.cuda", "_forward_kernel", crop_forward,
               {"METHOD": method, "FLOAT64": False, "BLOCK_X": 4, "BLOCK_D": 64})
        yield ("roiops.crop_and_resize.cuda", "_grad_image_kernel", crop_grad,
               {"METHOD": method, "BLOCK_D": 32, "TILE_H": 4, "TILE_W": 8})
    crop_grad_boxes = {"grads_ptr": "*fp16", "image_ptr": "*u8", "boxes_ptr": "*fp32",
                       "index_ptr": "*i64", "out_ptr": "*fp32",
                       **{n: "i32" for n in sizes[1:] + ["g_n", "g_h", "g_w", "g_d",
                                                         "i_b", "i_h", "i_w", "i_d"]}}
    yield ("roiops.crop_and_resize.cuda", "_grad_boxes_kernel", crop_grad_boxes,
           {"BLOCK": 128})


def test_kernels_compile_for_sm90_without_fma_or_approximate_division():
    # No GPU needed: compile to PTX (and a cubin with the bundled ptxas) for an H100 and
    # check the arithmetic rules of docs/arithmetic.md#one-rounding-per-operation in the
    # generated code.
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set for the whole process")
    modules = {}
    for name, kernel, signature, constexprs in _kernel_variants():
        if name not in modules:
            modules[name] = _interpreted(name, interpret=False)
        source = ASTSource(fn=getattr(modules[name], kernel),
                           signature={**signature, **{k: "constexpr" for k in constexprs}},
                           constexprs=constexprs)
        ptx = compile(source, target=GPUTarget("cuda", 90, 32),
                      options={"enable_fp_fusion": False}).asm["ptx"]
        assert "fma." not in ptx, (kernel, constexprs)  # no contraction
        assert "div.full" not in ptx and "div.approx" not in ptx, (kernel, constexprs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("case", ROI_CASES, ids=lambda c: "-".join(map(str, c)))
def test_registered_cuda_roi_align_matches_cpu(dtype, case):
    convention, aligned, mode, ratio, scale = case
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((2, 16, 13, 11))).to(dtype)
    rois = _rois(rng, 9, 2, -3.0, 14.0, torch.float64 if dtype == torch.float64
                 else torch.float32)
    args = ([3, 4], scale, ratio, aligned, convention, mode)
    expected = ops.roi_align(x, rois, *args)
    actual = ops.roi_align(x.cuda(), rois.cuda(), *args)
    assert actual.device.type == "cuda"
    assert_same_bits(actual.cpu(), expected)
    grads = torch.from_numpy(rng.standard_normal(expected.shape)).to(dtype)
    first = ops.roi_align_grad_input(grads.cuda(), rois.cuda(), list(x.shape), *args)
    second = ops.roi_align_grad_input(grads.cuda(), rois.cuda(), list(x.shape), *args)
    assert torch.equal(first, second)  # deterministic, run to run
    assert_same_bits(first.cpu(), ops.roi_align_grad_input(grads, rois, list(x.shape), *args))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
def test_registered_cuda_crop_and_resize_matches_cpu(dtype, method):
    rng = np.random.default_rng(11)
    image = torch.from_numpy(rng.standard_normal((2, 17, 13, 5))).to(dtype)
    boxes = torch.from_numpy(rng.uniform(-0.3, 1.3, (7, 4))).to(
        torch.float64 if dtype == torch.float64 else torch.float32)
    indices = torch.from_numpy(rng.integers(0, 2, 7))
    expected = ops.crop_and_resize(image, boxes, indices, [6, 9], method, 0.25, "NHWC")
    actual = ops.crop_and_resize(image.cuda(), boxes.cuda(), indices.cuda(), [6, 9], method,
                                 0.25, "NHWC")
    assert actual.device.type == "cuda"
    assert_same_bits(actual.cpu(), expected)
    grads = torch.from_numpy(rng.standard_normal(expected.shape)).to(expected.dtype)
    args = (list(image.shape), method, expected.dtype, "NHWC")
    first = ops.crop_and_resize_grad_image(grads.cuda(), boxes.cuda(), indices.cuda(), *args)
    second = ops.crop_and_resize_grad_image(grads.cuda(), boxes.cuda(), indices.cuda(), *args)
    assert torch.equal(first, second)  # deterministic, run to run
    assert_same_bits(first.cpu(), ops.crop_and_resize_grad_image(grads, boxes, indices, *args))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_registered_cuda_grad_boxes_match_cpu(dtype):
    rng = np.random.default_rng(13)
    box_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    image = torch.from_numpy(rng.standard_normal((2, 17, 13, 5))).to(dtype)
    boxes = torch.from_numpy(rng.uniform(-0.3, 1.3, (7, 4))).to(box_dtype)
    indices = torch.from_numpy(rng.integers(0, 2, 7))
    grads = torch.from_numpy(rng.standard_normal((7, 6, 9, 5))).to(dtype)
    args = (grads, image, boxes, indices, "bilinear", "NHWC")
    first = ops.crop_and_resize_grad_boxes(*(a.cuda() for a in args[:4]), *args[4:])
    second = ops.crop_and_resize_grad_boxes(*(a.cuda() for a in args[:4]), *args[4:])
    assert first.device.type == "cuda" and torch.equal(first, second)  # deterministic
    _close(first.cpu(), ops.crop_and_resize_grad_boxes(*args))
    for case in ROI_CASES:
        x = torch.from_numpy(rng.standard_normal((2, 16, 13, 11))).to(dtype)
        rois = _rois(rng, 9, 2, -3.0, 14.0, box_dtype)
        grads = torch.from_numpy(rng.standard_normal((9, 16, 3, 4))).to(dtype)
        options = ([3, 4], case[4], case[3], case[1], case[0], case[2])
        first = ops.roi_align_grad_boxes(grads.cuda(), x.cuda(), rois.cuda(), *options)
        second = ops.roi_align_grad_boxes(grads.cuda(), x.cuda(), rois.cuda(), *options)
        assert first.device.type == "cuda" and torch.equal(first, second)
        _close(first.cpu(), ops.roi_align_grad_boxes(grads, x, rois, *options))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_registered_cuda_checks_before_launch():
    x = torch.zeros(1, 1, 4, 4, device="cuda")
    with pytest.raises(ValueError):
        ops.roi_align(x, torch.tensor([[3.0, 0, 0, 1, 1]], device="cuda"), [2, 2])
    with pytest.raises(ValueError):
        ops.roi_align(x, torch.tensor([[0.0, 0, float("nan"), 1, 1]], device="cuda"), [2, 2])
