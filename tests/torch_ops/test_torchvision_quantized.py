"""torchvision's roi_align on quantized tensors (our own tests, in torchvision's pattern): the
result is the float forward of the dequantized tensors, quantized with the input's parameters,
bit for bit; one image only; every other op refuses quantized tensors naming the argument."""
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
import roiops.torch  # noqa: E402  (registers the ops)
from roiops.compat import torchvision as tv  # noqa: E402
from torch_cases import randn  # noqa: E402

OP = torch.ops.roiops.roi_align_torchvision

pytestmark = [
    # torch 2.13 deprecates the quantized dtypes, which torchvision still supports
    pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

# One image: torchvision's quantized kernel takes no other batch.
ROIS = [[0, 1.13, 0.71, 6.37, 4.58], [0, 2.41, 1.29, 5.66, 5.87], [0, 0.33, 2.07, 3.21, 3.96],
        [0, 4.5, 0.2, 4.5, 3.3]]


def _quantize(tensor, scale, zero_point, dtype):
    return torch.quantize_per_tensor(tensor, scale, zero_point, dtype)


def _same_quantized(actual, expected):
    assert actual.dtype == expected.dtype
    assert (actual.q_scale(), actual.q_zero_point()) == (expected.q_scale(),
                                                         expected.q_zero_point())
    assert torch.equal(actual.int_repr(), expected.int_repr())


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint8, torch.qint32])
@pytest.mark.parametrize("scale, zero_point", [(1.0, 0), (0.07, 40)])
@pytest.mark.parametrize("aligned", [True, False])
def test_quantized_forward_is_the_quantized_float_forward(dtype, scale, zero_point, aligned):
    qx = _quantize(randn(1, 3, 6, 7) * 2 + 1, scale, zero_point, dtype)
    qrois = _quantize(torch.tensor(ROIS), scale, zero_point, dtype)
    args = ((2, 3), 0.9, -1, aligned)
    float_result = tv.roi_align(qx.dequantize(), qrois.dequantize(), *args)
    expected = _quantize(float_result, scale, zero_point, dtype)
    assert len(expected.int_repr().unique()) > 3  # not saturated to a constant

    _same_quantized(tv.roi_align(qx, qrois, *args), expected)
    _same_quantized(tv.RoIAlign(*args)(qx, qrois), expected)
    _same_quantized(OP(qx, qrois, 0.9, 2, 3, -1, aligned), expected)
    # float rois and a list of quantized boxes are read as the same values
    _same_quantized(tv.roi_align(qx, qrois.dequantize(), *args), expected)
    boxes = [_quantize(qrois.dequantize()[:, 1:], scale, zero_point, dtype)]
    _same_quantized(tv.roi_align(qx, boxes, *args), expected)


def test_quantized_rois_of_another_dtype_and_no_rois():
    qx = _quantize(randn(1, 2, 5, 5), 0.05, 10, torch.quint8)
    rois = torch.tensor(ROIS)
    expected = _quantize(tv.roi_align(qx.dequantize(), rois, 2, 1.0, 2), 0.05, 10, torch.quint8)
    _same_quantized(tv.roi_align(qx, _quantize(rois, 0.01, 0, torch.qint32), 2, 1.0, 2),
                    expected)
    empty = tv.roi_align(qx, _quantize(torch.zeros(0, 5), 0.1, 0, torch.qint8), 2)
    assert empty.shape == (0, 2, 2, 2) and empty.dtype == torch.quint8
    assert (empty.q_scale(), empty.q_zero_point()) == (0.05, 10)


def test_scripted_module_and_autocast_take_quantized_input():
    qx = _quantize(randn(1, 2, 6, 7), 0.1, 0, torch.qint8)
    rois = torch.tensor(ROIS)
    module = tv.RoIAlign(2, 1.0, 2, True)
    expected = module(qx, rois)
    _same_quantized(torch.jit.script(module)(qx, rois), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # quantized data is left as it is
        _same_quantized(module(qx, rois), expected)


def test_quantized_refusals_name_the_argument():
    qrois = _quantize(torch.tensor(ROIS), 0.1, 0, torch.qint8)
    batch = _quantize(randn(2, 2, 6, 7), 0.1, 0, torch.qint8)
    with pytest.raises(ValueError, match="input must hold one image when quantized"):
        tv.roi_align(batch, qrois, 2)
    with pytest.raises(ValueError, match="input must hold one image when quantized"):
        OP(batch, qrois, 1.0, 2, 2, -1, False)
    per_channel = torch.quantize_per_channel(randn(1, 2, 6, 7), torch.tensor([0.1, 0.2]),
                                             torch.tensor([0, 0]), 1, torch.qint8)
    with pytest.raises(TypeError, match="input must be quantized per tensor"):
        tv.roi_align(per_channel, qrois, 2)
    with pytest.raises(TypeError, match="boxes must have dtype in"):
        tv.roi_align(randn(1, 2, 6, 7), qrois, 2)  # quantized boxes need quantized input
    qx = _quantize(randn(1, 2, 6, 7), 0.1, 0, torch.qint8)
    with pytest.raises(ValueError, match="batch index must be in"):  # torchvision: image 0
        tv.roi_align(qx, _quantize(torch.tensor([[1.0, 0, 0, 2, 2]]), 0.1, 0, torch.qint8), 2)
    with pytest.raises(RuntimeError, match="not differentiable"):
        tv.roi_align(qx, torch.tensor(ROIS, requires_grad=True), 2)


def test_other_entry_points_and_ops_refuse_quantized_tensors():
    qx = _quantize(randn(1, 4, 6, 7), 0.1, 0, torch.qint8)
    rois = torch.tensor(ROIS)
    with pytest.raises(TypeError, match="input must have dtype in"):
        roiops.roi_align(qx, rois, 2)
    with pytest.raises(TypeError, match="input must have dtype in"):
        tv.roi_pool(qx, rois, 2)
    with pytest.raises(TypeError, match="input must not be quantized: roiops::roi_align "):
        torch.ops.roiops.roi_align(qx, rois, [2, 2], 1.0, -1, False, "torchvision", 1)
    with pytest.raises(TypeError, match="rois must not be quantized: roiops::roi_pool "):
        torch.ops.roiops.roi_pool(randn(1, 4, 6, 7), _quantize(rois, 0.1, 0, torch.qint8),
                                  [2, 2], 1.0, False)
    with pytest.raises(TypeError, match="features must not be quantized"):
        torch.ops.roiops.multi_scale_roi_align([qx], rois, torch.zeros(4, dtype=torch.int64),
                                               [1.0], [2, 2], 2, False, False)
