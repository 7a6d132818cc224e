"""torch.library integration: opcheck for every op, torch.compile and torch.export."""
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
from roiops.torch import ops  # noqa: E402
from torch_cases import BOX_INDICES, BOXES, ROIS, layout, randn  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # raised inside torch by opcheck
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def _grad(*tensors):
    return [t.requires_grad_() for t in tensors]


def _cases():
    image, boxes = _grad(randn(2, 5, 6, 3), torch.tensor(BOXES))
    indices = torch.tensor(BOX_INDICES, dtype=torch.int32)
    crops = randn(3, 3, 4, 3, seed=1)
    input, rois = _grad(layout(randn(2, 3, 6, 7), "channels_last"), torch.tensor(ROIS))
    pooled = randn(3, 3, 2, 2, seed=2)
    roi_options = [[2, 2], 0.5, 2, True, "torchvision", 1]
    return [
        (ops.crop_and_resize, (image, boxes, indices, [3, 4], "bilinear", 0.0, "NHWC")),
        (ops.crop_and_resize, (image.detach().permute(0, 3, 1, 2).requires_grad_(), boxes,
                               indices, [3, 4], "bilinear_v2", 0.0, "NCHW")),
        (ops.crop_and_resize_grad_image, (crops, boxes.detach(), indices, [2, 5, 6, 3],
                                          "nearest", torch.float64, "NHWC")),
        (ops.crop_and_resize_grad_boxes, (crops, image.detach(), boxes.detach(), indices,
                                          "bilinear", "NHWC")),
        (ops.roi_align, (input, rois, *roi_options)),
        (ops.roi_align, (input.detach().half(), rois.detach(), [3, 2], 1.0, 2, False,
                         "mindspore", 0)),
        (ops.roi_align, (input.detach().bfloat16().requires_grad_(), rois.detach(), [3, 2], 1.0,
                         -1, False, "torchvision", 1)),
        (ops.roi_align_grad_input, (pooled, rois.detach(), [2, 3, 6, 7], *roi_options)),
        (ops.roi_align_grad_boxes, (pooled, input.detach(), rois.detach(), *roi_options)),
    ]


@pytest.mark.parametrize("op, args", _cases())
def test_opcheck(op, args):
    # schema, fake tensor, autograd registration and AOT dispatch (static and dynamic)
    torch.library.opcheck(op, args)


def _both_ops(image, boxes, input, rois):
    crops = roiops.crop_and_resize(image, boxes, torch.tensor(BOX_INDICES), (3, 4))
    pooled = roiops.roi_align(input, rois, (2, 2), spatial_scale=0.5, sampling_ratio=2,
                              aligned=True)
    return crops.square().sum() + pooled.square().sum()


def _run(fn):
    args = _grad(randn(2, 5, 6, 3), torch.tensor(BOXES), randn(2, 3, 6, 7, seed=1),
                 torch.tensor(ROIS))
    loss = fn(*args)
    loss.backward()
    return [loss.detach()] + [a.grad for a in args]


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_forward_and_backward(backend):
    torch._dynamo.reset()
    compiled = torch.compile(_both_ops, backend=backend, fullgraph=True)
    # The custom ops are opaque, so their results are bit-identical; inductor fuses and
    # reorders the surrounding square().sum(), which changes the loss's last bits.
    exact = dict(rtol=0, atol=0) if backend == "aot_eager" else {}
    for actual, expected in zip(_run(compiled), _run(_both_ops)):
        torch.testing.assert_close(actual, expected, **exact)


def test_compile_with_dynamic_shapes():
    torch._dynamo.reset()
    pool = roiops.nn.RoIAlign(2, sampling_ratio=2)
    compiled = torch.compile(pool, backend="aot_eager", fullgraph=True, dynamic=True)
    for rois in (torch.tensor(ROIS), torch.tensor(ROIS[:2])):
        torch.testing.assert_close(compiled(randn(2, 3, 6, 7), rois),
                                   pool(randn(2, 3, 6, 7), rois), rtol=0, atol=0)


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = roiops.nn.RoIAlign((2, 2), spatial_scale=0.5, sampling_ratio=2,
                                       aligned=True)
        self.fc = torch.nn.Linear(3 * 2 * 2, 4)

    def forward(self, features, rois):
        return self.fc(self.pool(features, rois).flatten(1))


def test_export_module_with_roi_align():
    head, args = _Head(), (randn(2, 3, 6, 7), torch.tensor(ROIS))
    exported = torch.export.export(head, args)
    assert "roiops.roi_align" in str(exported.graph)
    torch.testing.assert_close(exported.module()(*args), head(*args), rtol=0, atol=0)
