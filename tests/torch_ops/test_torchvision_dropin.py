"""roiops as a drop-in for torchvision's roi_align on tensors, in torchvision's test pattern
(our own tests): the forward against the NumPy layer over dtype x layout x aligned,
``roiops::roi_align_torchvision`` (torchvision's op schema), gradcheck, TorchScript, torch.fx,
autocast and opcheck."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
from roiops.compat import torchvision as tv  # noqa: E402
from torch_cases import ROIS, layout, randn, reference  # noqa: E402

OP = torch.ops.roiops.roi_align_torchvision

# torch 2.13 deprecates TorchScript, which deployed models still use
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _rois(dtype=torch.float32):
    return torch.tensor(ROIS, dtype=dtype)


def _expected(input, rois, *args):
    """The NumPy layer (bit-exact torchvision, tests/compat); bfloat16 data is computed in
    float32 with float32 boxes and rounded once."""
    if input.dtype == torch.bfloat16:
        return reference(tv.roi_align, input, rois.float(), *args, dtype=torch.bfloat16)
    return reference(tv.roi_align, input, rois.to(input.dtype), *args, dtype=input.dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["contiguous", "channels_last", "non_contiguous"])
@pytest.mark.parametrize("aligned", [True, False])
def test_forward_matches_the_numpy_layer(dtype, kind, aligned):
    input, rois = layout(randn(2, 3, 6, 7, dtype=dtype), kind), _rois()
    args = ((2, 3), 0.5, -1, aligned)
    expected = _expected(input, rois, *args)
    torch.testing.assert_close(tv.roi_align(input, rois, *args), expected, rtol=0, atol=0)
    torch.testing.assert_close(OP(input, rois, 0.5, 2, 3, -1, aligned), expected, rtol=0, atol=0)


def test_boxes_of_any_float_dtype():
    input = randn(2, 3, 6, 7)
    expected = tv.roi_align(input, _rois(torch.bfloat16).float(), 2, 0.5, 2)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        boxes = _rois(torch.bfloat16).to(dtype)  # the same values in each dtype
        torch.testing.assert_close(tv.roi_align(input, boxes, 2, 0.5, 2), expected,
                                   rtol=0, atol=0)
        per_image = [boxes[:1, 1:], boxes[1:, 1:]]
        torch.testing.assert_close(tv.roi_align(input, per_image, 2, 0.5, 2), expected,
                                   rtol=0, atol=0)


def test_the_op_checks_its_arguments():
    with pytest.raises(ValueError, match="rois must have shape"):
        OP(randn(2, 3, 6, 7), _rois()[:, 1:], 1.0, 2, 2, -1, False)
    with pytest.raises(ValueError, match="output_size"):
        OP(randn(2, 3, 6, 7), _rois(), 1.0, 0, 2, -1, False)
    with pytest.raises(ValueError, match="rois batch index"):
        OP(randn(1, 3, 6, 7), _rois(), 1.0, 2, 2, -1, False)


@pytest.mark.parametrize("aligned", [True, False])
def test_gradcheck(aligned):
    input = randn(2, 2, 6, 7, dtype=torch.float64).requires_grad_()
    rois = _rois(torch.float64)
    coords = rois[:, 1:].clone().requires_grad_()

    # The batch-index column is piecewise constant (gets zero): check the coordinates.
    def pool(input, coords):
        return OP(input, torch.cat([rois[:, :1], coords], dim=1), 0.9, 2, 2, 2, aligned)

    assert torch.autograd.gradcheck(pool, (input, coords))


def test_opcheck():
    input = randn(2, 3, 6, 7).requires_grad_()
    torch.library.opcheck(OP, (input, _rois().requires_grad_(), 0.5, 2, 3, 2, True))
    torch.library.opcheck(OP, (input.detach().double(), _rois(torch.float64), 1.0, 3, 2, 0,
                               False))


class _Pool(torch.nn.Module):
    """A module calling the functional with a list of boxes, as detection heads do."""

    def forward(self, features: torch.Tensor, boxes: list[torch.Tensor]) -> torch.Tensor:
        return tv.roi_align(features, boxes, [2, 3], 0.5, 2, True)


def _boxes():
    return [_rois()[:1, 1:], _rois()[1:, 1:]]


def test_torchscript_function_and_modules():
    input, rois = randn(2, 3, 6, 7, dtype=torch.float64), _rois(torch.float64)
    scripted = torch.jit.script(tv.roi_align)
    assert isinstance(scripted, torch.jit.ScriptFunction)
    torch.testing.assert_close(scripted(input, rois, 2, 0.5, 2, True),
                               tv.roi_align(input, rois, 2, 0.5, 2, True), rtol=0, atol=0)
    pool = tv.RoIAlign((2, 3), spatial_scale=1, sampling_ratio=-1)  # an int scale, as users do
    torch.testing.assert_close(torch.jit.script(pool)(input, rois), pool(input, rois),
                               rtol=0, atol=0)
    input = input.float()
    torch.testing.assert_close(torch.jit.script(_Pool())(input, _boxes()),
                               _Pool()(input, _boxes()), rtol=0, atol=0)
    native = roiops.nn.RoIAlign(2, spatial_scale=0.5, sampling_ratio=2)
    torch.testing.assert_close(torch.jit.script(native)(input, _rois()), native(input, _rois()),
                               rtol=0, atol=0)


def test_torchscript_backward():
    input = randn(2, 2, 5, 6, dtype=torch.float64).requires_grad_()
    scripted = torch.jit.script(tv.roi_align)
    torch.autograd.gradcheck(lambda x: scripted(x, _rois(torch.float64), 2, 1.0, 2), (input,))


def test_fx_traces_roi_align_as_a_leaf():
    input = randn(2, 3, 6, 7)
    for module, args in ((tv.RoIAlign((2, 3), 0.5, 2, True), (input, _rois())),
                         (_Pool(), (input, _boxes())),
                         (roiops.nn.RoIAlign(2, spatial_scale=0.5), (input, _rois()))):
        traced = torch.fx.symbolic_trace(module)
        calls = [n.target for n in traced.graph.nodes if n.op == "call_function"]
        assert calls == [roiops.roi_align if isinstance(module, roiops.nn.RoIAlign)
                         else tv.roi_align]
        torch.testing.assert_close(traced(*args), module(*args), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_runs_in_float32_and_casts_back(dtype):
    input, rois = randn(2, 3, 6, 7, dtype=dtype), _rois(dtype)
    expected = tv.roi_align(input.float(), rois.float(), 2, 0.5, -1, True).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        result = tv.roi_align(input, rois, 2, 0.5, -1, True)
    assert result.dtype == dtype
    torch.testing.assert_close(result, expected, rtol=0, atol=0)
    if dtype == torch.float16:  # outside autocast: torchvision's half arithmetic, other bits
        assert not torch.equal(tv.roi_align(input, rois, 2, 0.5, -1, True), expected)


def test_autocast_keeps_float64_and_differentiates():
    input = randn(2, 3, 6, 7).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = roiops.roi_align(input, _rois(torch.bfloat16), 2, sampling_ratio=2)
        double = tv.roi_align(input.detach().double(), _rois(), 2)
    assert pooled.dtype == torch.float32 and double.dtype == torch.float64
    pooled.sum().backward()
    assert input.grad.abs().sum() > 0


def test_every_op_has_autocast_kernels():
    names = ["crop_and_resize", "crop_and_resize_grad_image", "crop_and_resize_grad_boxes",
             "roi_align", "roi_align_grad_input", "roi_align_grad_boxes",
             "roi_align_torchvision"]
    for name in names:
        op = getattr(torch.ops.roiops, name).default
        for key in (torch._C.DispatchKey.AutocastCPU, torch._C.DispatchKey.AutocastCUDA):
            assert op.has_kernel_for_dispatch_key(key), (name, key)
    image = torch.rand(1, 5, 5, 2, dtype=torch.bfloat16)
    boxes = torch.tensor([[0.1, 0.2, 0.9, 0.7]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops = roiops.crop_and_resize(image, boxes, torch.tensor([0]), (3, 3))
    expected = roiops.crop_and_resize(image.float().numpy(), boxes.numpy(), np.array([0]),
                                      (3, 3))
    torch.testing.assert_close(crops, torch.from_numpy(expected).bfloat16(), rtol=0, atol=0)


def test_crop_and_resize_scripts_and_traces_too():
    image, boxes = torch.rand(2, 5, 6, 3), torch.tensor([[0.1, 0.2, 0.9, 0.7], [0, 0, 1, 1.]])
    indices = torch.tensor([1, 0])
    expected = roiops.crop_and_resize(image, boxes, indices, (3, 4), method="nearest")
    scripted = torch.jit.script(roiops.crop_and_resize)
    torch.testing.assert_close(scripted(image, boxes, indices, [3, 4], method="nearest"),
                               expected, rtol=0, atol=0)
    crop = roiops.nn.CropAndResize((3, 4), method="nearest")
    for module in (torch.jit.script(crop), torch.fx.symbolic_trace(crop)):
        torch.testing.assert_close(module(image, boxes, indices), expected, rtol=0, atol=0)
    calls = [n.target for n in torch.fx.symbolic_trace(crop).graph.nodes
             if n.op == "call_function"]
    assert calls == [roiops.crop_and_resize]


def test_compile_and_export_trace_through_to_roi_align():
    pool, input, rois = tv.RoIAlign((2, 3), 0.5, 2, True), randn(2, 3, 6, 7), _rois()
    torch._dynamo.reset()
    compiled = torch.compile(pool, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(input, rois), pool(input, rois), rtol=0, atol=0)
    exported = torch.export.export(pool, (input, rois))
    torch.testing.assert_close(exported.module()(input, rois), pool(input, rois), rtol=0, atol=0)


def test_reprs_are_torchvisions():
    """The torch.nn.Module subclasses show the public class's name, in torchvision's format."""
    assert repr(tv.RoIAlign((7, 7), 0.25, 2, True)) == (
        "RoIAlign(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=True)")
    assert repr(tv.RoIPool([3, 4], 0.5)) == "RoIPool(output_size=[3, 4], spatial_scale=0.5)"
    assert repr(tv.PSRoIAlign(3, 1.0, 2)) == (
        "PSRoIAlign(output_size=3, spatial_scale=1.0, sampling_ratio=2)")
    assert repr(tv.PSRoIPool(3, 0.125)) == "PSRoIPool(output_size=3, spatial_scale=0.125)"
    multi_scale = tv.MultiScaleRoIAlign(["0", "p3"], 7, 2)
    assert isinstance(multi_scale, torch.nn.Module)
    assert repr(multi_scale) == (
        "MultiScaleRoIAlign(featmap_names=['0', 'p3'], output_size=(7, 7), sampling_ratio=2)")

    class MyRoIAlign(tv.RoIAlign):  # a subclass shows its own name, as in torchvision
        pass

    assert repr(MyRoIAlign(2, 1.0, -1)).startswith("MyRoIAlign(output_size=2, ")
