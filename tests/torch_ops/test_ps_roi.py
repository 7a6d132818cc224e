"""ps_roi_align and ps_roi_pool on tensors: the custom ops (opcheck, gradcheck including the
rois of ps_roi_align, torch.compile), the tensor entry points, roiops.nn and the
compat.torchvision functions and modules on tensors (float16 in torchvision's half
arithmetic, forward and backward)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exact import assert_same_bits  # noqa: E402

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
from roiops.compat import torchvision as tvc  # noqa: E402
from roiops.torch import ps_roi_ops  # noqa: E402
from torch_cases import ROIS, layout, randn  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings(  # raised inside torch by opcheck
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    # scripting is tested as torchvision's modules support it
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

# 2 output channels of 2x2 bins; ROIS keep every sample away from pixel boundaries
MAPS = (2, 8, 6, 7)


def _rois(dtype=torch.float32):
    return torch.tensor(ROIS, dtype=dtype)


@pytest.mark.parametrize("op, args", [
    (ps_roi_ops.ps_roi_align, lambda x, r, g: (x, r, [2, 2], 0.9, 2)),
    (ps_roi_ops.ps_roi_align, lambda x, r, g: (x, r, [2, 2], 0.9, -1, True)),
    # the gradient ops have no derivative: their arguments do not require grad
    (ps_roi_ops.ps_roi_align_grad_input,
     lambda x, r, g: (g, r.detach(), list(MAPS), [2, 2], 0.9, 2)),
    (ps_roi_ops.ps_roi_align_grad_boxes,
     lambda x, r, g: (g, x.detach(), r.detach(), [2, 2], 0.9, 2)),
    (ps_roi_ops.ps_roi_pool, lambda x, r, g: (x, r, [2, 2], 0.5)),
    (ps_roi_ops.ps_roi_pool_grad_input,
     lambda x, r, g: (g, r.detach(), list(MAPS), [2, 2], 0.5)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_opcheck(op, args):
    x = layout(randn(*MAPS), "channels_last").requires_grad_()
    r = _rois().requires_grad_()
    g = randn(3, 2, 2, 2, seed=1)
    torch.library.opcheck(op, args(x, r, g))


def test_ps_roi_align_gradcheck_input_and_rois():
    rois = _rois(torch.float64)
    x = randn(*MAPS, dtype=torch.float64).requires_grad_()
    coords = rois[:, 1:].clone().requires_grad_()

    def pool(x, coords):
        return roiops.ps_roi_align(x, torch.cat([rois[:, :1], coords], dim=1), 2,
                                   spatial_scale=0.9, sampling_ratio=2)

    assert torch.autograd.gradcheck(pool, (x, coords))


def test_ps_roi_pool_gradcheck_input_and_no_rois_gradient():
    # rois inside the map, away from its last row and column (where torchvision's backward
    # is not the forward's adjoint, docs/position_sensitive.md#ps_roi_pool)
    rois = torch.tensor([[0, 0.2, 0.4, 4.1, 3.7], [1, 1.6, 0.8, 5.2, 4.4]], dtype=torch.float64)
    x = randn(*MAPS, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: roiops.ps_roi_pool(x, rois, 2, spatial_scale=1.0), (x,))
    rois.requires_grad_()
    roiops.ps_roi_pool(x, rois, 2).sum().backward()
    assert rois.grad is None


def test_double_backward_raises():
    x = randn(*MAPS, dtype=torch.float64).requires_grad_()
    out = roiops.ps_roi_align(x, _rois(torch.float64), 2, sampling_ratio=2)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad.sum().backward()


def test_tensors_equal_numpy_and_compile():
    x, rois = randn(*MAPS), _rois()
    for fn, kwargs in ((roiops.ps_roi_align, dict(sampling_ratio=2)),
                       (roiops.ps_roi_pool, {})):
        expected = fn(x.numpy(), rois.numpy(), 2, spatial_scale=0.8, **kwargs)
        assert_same_bits(fn(x, rois, 2, spatial_scale=0.8, **kwargs).numpy(), expected)
        compiled = torch.compile(lambda x, r, fn=fn, kwargs=kwargs: fn(
            x, r, 2, spatial_scale=0.8, **kwargs), fullgraph=True)
        assert_same_bits(compiled(x, rois).numpy(), expected)
    with pytest.raises(ValueError, match="out is supported for NumPy arrays only"):
        roiops.ps_roi_align(x, rois, 2, out=torch.empty(3, 2, 2, 2))


def test_nn_modules():
    x, rois = randn(*MAPS), _rois()
    align = roiops.nn.PSRoIAlign(2, spatial_scale=0.5, sampling_ratio=2)
    pool = roiops.nn.PSRoIPool((2, 2), spatial_scale=0.5)
    assert_same_bits(align(x, rois).numpy(),
                     roiops.ps_roi_align(x.numpy(), rois.numpy(), 2, spatial_scale=0.5,
                                         sampling_ratio=2))
    assert_same_bits(pool(x, rois).numpy(),
                     roiops.ps_roi_pool(x.numpy(), rois.numpy(), 2, spatial_scale=0.5))
    with pytest.raises(ValueError, match="output_size"):
        roiops.nn.PSRoIPool(0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_compat_on_tensors_is_torchvision_forward_and_backward(dtype):
    x = randn(*MAPS, dtype=dtype).requires_grad_()
    boxes = [_rois(dtype)[:1, 1:], _rois(dtype)[1:, 1:]]
    grad = randn(3, 2, 2, 2, dtype=dtype, seed=2)
    numpy_boxes = [b.numpy() for b in boxes]
    for module, forward, backward, options in (
            (tvc.PSRoIAlign(2, 0.7, -1), tvc.ps_roi_align, tvc.ps_roi_align_backward,
             (0.7, -1)),
            (tvc.PSRoIPool(2, 0.7), tvc.ps_roi_pool, tvc.ps_roi_pool_backward, (0.7,))):
        assert isinstance(module, torch.nn.Module)
        x.grad = None
        out = module(x, boxes)
        out.backward(grad)
        assert_same_bits(out.detach().numpy(),
                         forward(x.detach().numpy(), numpy_boxes, 2, *options))
        assert_same_bits(x.grad.numpy(), backward(grad.numpy(), numpy_boxes, MAPS, 2,
                                                  *options))


def test_compat_modules_without_torch_semantics_on_numpy():
    x = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1)
    boxes = np.array([[0, 0, 0, 1, 1]], np.float32)
    assert repr(tvc.PSRoIAlign(2, 1.0, 1)) == (
        "PSRoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1)")
    np.testing.assert_array_equal(tvc.PSRoIAlign(2, 1.0, 1)(x, boxes)[0, 0],
                                  [[0, 1], [2, 3]])


def test_export_records_the_ops():
    class Heads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.align = roiops.nn.PSRoIAlign(2, 0.5, 2)
            self.pool = roiops.nn.PSRoIPool(2, 0.5)

        def forward(self, x, rois):
            return self.align(x, rois) + self.pool(x, rois)

    x, rois = randn(*MAPS), _rois()
    program = torch.export.export(Heads(), (x, rois))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"roiops.ps_roi_align.default", "roiops.ps_roi_pool.default"} <= targets
    assert_same_bits(program.module()(x, rois).numpy(), Heads()(x, rois).numpy())


@pytest.mark.parametrize("make", [lambda: tvc.PSRoIAlign(2, 0.5, 2),
                                  lambda: tvc.PSRoIPool(2, 0.5)], ids=["align", "pool"])
def test_compat_modules_script_and_trace_as_leaves(make):
    module = make()
    scripted = torch.jit.script(module)
    x, rois = randn(*MAPS), _rois()
    expected = module(x, rois).numpy()
    assert_same_bits(scripted(x, rois).numpy(), expected)
    assert_same_bits(scripted(x, [rois[:1, 1:], rois[1:, 1:]]).numpy(), expected)
    half = x.half()  # torchvision's half arithmetic in the scripted twin too
    assert_same_bits(scripted(half, rois.half()).numpy(), module(half, rois.half()).numpy())

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = make()

        def forward(self, x, rois):
            return self.pool(x, rois) * 2

    graph = torch.fx.symbolic_trace(Head())
    called = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert called[0] in (tvc.ps_roi_align, tvc.ps_roi_pool)
    assert_same_bits(graph(x, rois).numpy(), expected * 2)
