"""Compatibility layers and modules on tensors: the NumPy layers' bits, on the same device."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exact import assert_same_bits  # noqa: E402

import roiops.nn  # noqa: E402
from roiops.compat import mindspore, tensorflow, torchvision  # noqa: E402
from torch_cases import BOX_INDICES, BOXES, ROIS, randn  # noqa: E402

INDICES32 = torch.tensor(BOX_INDICES, dtype=torch.int32)


def _np(*tensors):
    return [t.numpy() for t in tensors]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.float32, torch.float64],
                         ids=str)
def test_tensorflow_crop_and_resize_and_gradients(dtype):
    image = (randn(2, 5, 6, 3) * 50).to(dtype)
    boxes = torch.tensor(BOXES)
    crops = tensorflow.crop_and_resize(image, boxes, INDICES32, (3, 4), "nearest", 0.5)
    assert_same_bits(crops, tensorflow.crop_and_resize(*_np(image, boxes, INDICES32), (3, 4),
                                                       "nearest", 0.5))
    grads = randn(3, 3, 4, 3, seed=1)
    for T in (torch.float16, np.float64):
        gradient = tensorflow.raw_ops.CropAndResizeGradImage(grads, boxes, INDICES32,
                                                             (2, 5, 6, 3), T)
        assert_same_bits(gradient, tensorflow.raw_ops.CropAndResizeGradImage(
            *_np(grads, boxes, INDICES32), (2, 5, 6, 3), T))
    assert_same_bits(tensorflow.raw_ops.CropAndResizeGradBoxes(grads, image, boxes, INDICES32),
                     tensorflow.raw_ops.CropAndResizeGradBoxes(*_np(grads, image, boxes,
                                                                    INDICES32)))


def test_tensorflow_crop_and_resize_is_differentiable():
    image = randn(2, 5, 6, 3).requires_grad_()
    boxes = torch.tensor(BOXES, requires_grad=True)
    tensorflow.crop_and_resize(image, boxes, INDICES32, (3, 4)).sum().backward()
    grads = torch.ones(3, 3, 4, 3)
    assert_same_bits(image.grad, tensorflow.raw_ops.CropAndResizeGradImage(
        *_np(grads, boxes.detach(), INDICES32), (2, 5, 6, 3), np.float32))
    assert_same_bits(boxes.grad, tensorflow.raw_ops.CropAndResizeGradBoxes(
        *_np(grads, image.detach(), boxes.detach(), INDICES32)))


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float32), (torch.float16, torch.float32),
                                    (torch.float16, torch.float16)], ids=str)
def test_mindspore_roi_align(dtypes):
    features, rois = randn(2, 3, 8, 9).to(dtypes[0]), torch.tensor(ROIS).to(dtypes[1])
    primitive = mindspore.ROIAlign(2, 3, 0.7, 2, 0)
    assert_same_bits(primitive(features, rois), primitive(*_np(features, rois)))
    module = roiops.nn.MindSporeROIAlign(2, 3, 0.7, 2, 0)
    assert_same_bits(module(features, rois), primitive(*_np(features, rois)))
    dy = randn(3, 3, 2, 3).to(dtypes[0])
    grad = mindspore.ROIAlignGrad(2, 3, 0.7, 2)
    assert_same_bits(grad(dy, rois, (2, 3, 8, 9)), grad(*_np(dy, rois), (2, 3, 8, 9)))



@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float32), (torch.float16, torch.float32),
                                    (torch.float16, torch.float16)], ids=str)
def test_mindspore_roi_align_too_big_names_its_sizes(dtypes):
    # as on NumPy arrays: not the native op's output_size (found by tests/test_fuzz.py)
    features, rois = randn(1, 1, 1, 1).to(dtypes[0]), torch.zeros(1, 5, dtype=dtypes[1])
    with pytest.raises(ValueError, match=r"^pooled_height, pooled_width \(1, 1099511627776\)"):
        mindspore.ROIAlign(1, 2**40, 1.0, -1, 0)(features, rois)

def test_mindspore_crop_and_resize_family():
    image, boxes = randn(2, 5, 6, 3), torch.tensor(BOXES)
    primitive = mindspore.CropAndResize("bilinear_v2", 0.0)
    assert_same_bits(primitive(image, boxes, INDICES32, (3, 4)),
                     primitive(*_np(image, boxes, INDICES32), (3, 4)))
    module = roiops.nn.MindSporeCropAndResize("bilinear_v2", 0.0)
    assert_same_bits(module(image, boxes, INDICES32, (3, 4)),
                     primitive(*_np(image, boxes, INDICES32), (3, 4)))
    grads = randn(3, 3, 4, 3, seed=1)
    grad_image = mindspore.CropAndResizeGradImage(np.float16, "nearest")
    assert_same_bits(grad_image(grads, boxes, INDICES32, (2, 5, 6, 3)),
                     grad_image(*_np(grads, boxes, INDICES32), (2, 5, 6, 3)))
    grad_boxes = mindspore.CropAndResizeGradBoxes()
    assert_same_bits(grad_boxes(grads, image, boxes, INDICES32),
                     grad_boxes(*_np(grads, image, boxes, INDICES32)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("aligned", [False, True])
def test_torchvision_roi_align(dtype, aligned):
    features = randn(2, 3, 8, 9).to(dtype)
    boxes = [torch.tensor(ROIS[:1])[:, 1:].to(dtype), torch.tensor(ROIS[1:])[:, 1:].to(dtype)]
    expected = torchvision.roi_align(features.numpy(), [b.numpy() for b in boxes], (2, 3),
                                     0.7, -1, aligned)
    assert_same_bits(torchvision.roi_align(features, boxes, (2, 3), 0.7, -1, aligned), expected)
    module = torchvision.RoIAlign((2, 3), 0.7, -1, aligned)
    assert isinstance(module, torch.nn.Module)
    rois = torch.cat([torch.tensor([[0.0], [1], [1]]).to(dtype), torch.cat(boxes)], dim=1)
    assert_same_bits(module(features, rois), expected)
    grads = randn(3, 3, 2, 3, seed=1).to(dtype)
    gradient = torchvision.roi_align_backward(grads, rois, (2, 3, 8, 9), (2, 3), 0.7, -1, aligned)
    assert_same_bits(gradient, torchvision.roi_align_backward(*_np(grads, rois), (2, 3, 8, 9),
                                                              (2, 3), 0.7, -1, aligned))


def test_torchvision_roi_align_is_differentiable_for_boxes_lists():
    features = randn(2, 3, 8, 9).requires_grad_()
    boxes = [torch.tensor(ROIS[:1])[:, 1:].requires_grad_(),
             torch.tensor(ROIS[1:])[:, 1:].requires_grad_()]
    torchvision.RoIAlign(2, 0.5, 2, True)(features, boxes).sum().backward()
    assert features.grad.abs().sum() > 0 and all(b.grad.shape == b.shape for b in boxes)


def _half_case():
    features = randn(2, 3, 8, 9).half().requires_grad_()
    rois = torch.tensor(ROIS).half().requires_grad_()
    grads = randn(3, 3, 2, 3, seed=1).half()
    return features, rois, grads


@pytest.mark.parametrize("aligned", [False, True])
def test_torchvision_half_roi_align_is_differentiable(aligned):
    # The input gradient is torchvision's own half backward, bit for bit; the boxes gradient
    # is the native one at the half values (float32, rounded once).
    features, rois, grads = _half_case()
    out = torchvision.roi_align(features, rois, (2, 3), 0.7, 2, aligned)
    out.backward(grads)
    assert_same_bits(features.grad, torchvision.roi_align_backward(
        *_np(grads, rois.detach()), (2, 3, 8, 9), (2, 3), 0.7, 2, aligned))
    scale = float(np.float16(np.float32(0.7)))
    expected = roiops.roi_align_grad_boxes(grads.float(), features.detach().float(),
                                           rois.detach().float(), (2, 3), spatial_scale=scale,
                                           sampling_ratio=2, aligned=aligned)
    assert rois.grad.dtype == torch.half and rois.grad[:, 1:].abs().sum() > 0
    assert_same_bits(rois.grad, expected.half())


@pytest.mark.parametrize("roi_end_mode", [0, 1])
def test_mindspore_half_roi_align_is_differentiable(roi_end_mode):
    features, rois, grads = _half_case()
    mindspore.ROIAlign(2, 3, 0.7, 2, roi_end_mode)(features, rois).backward(grads)
    assert features.grad.dtype == rois.grad.dtype == torch.half
    native = roiops.roi_align_grad_input(grads.float(), rois.detach().float(), (2, 3, 8, 9),
                                         (2, 3), spatial_scale=float(np.float16(0.7)),
                                         sampling_ratio=2, convention="mindspore",
                                         roi_end_mode=roi_end_mode)
    torch.testing.assert_close(features.grad.float(), native, rtol=1e-2, atol=1e-2)
    if roi_end_mode == 1:  # then MindSpore's ROIAlignGrad primitive is the true adjoint
        assert_same_bits(features.grad, mindspore.ROIAlignGrad(2, 3, 0.7, 2)(
            *_np(grads, rois.detach()), (2, 3, 8, 9)))
    assert rois.grad[:, 1:].abs().sum() > 0 and not rois.grad[:, 0].any()


def test_half_roi_align_refuses_double_backward():
    features, rois, grads = _half_case()
    out = torchvision.roi_align(features, rois, 2, 0.5, 2)
    (first,) = torch.autograd.grad(out.float().sum(), features, create_graph=True)
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        first.float().sum().backward()


def test_native_modules():
    crop = roiops.nn.CropAndResize((3, 4), method="nearest", extrapolation_value=1.0)
    image, boxes = randn(2, 5, 6, 3), torch.tensor(BOXES)
    indices = torch.tensor(BOX_INDICES)
    assert_same_bits(crop(image, boxes, indices),
                     roiops.crop_and_resize(image, boxes, indices, (3, 4), method="nearest",
                                            extrapolation_value=1.0))
    pool = roiops.nn.RoIAlign(2, spatial_scale=0.5, convention="mindspore", roi_end_mode=0)
    assert "roi_end_mode=0" in repr(pool)
    features, rois = randn(2, 3, 8, 9), torch.tensor(ROIS)
    assert_same_bits(pool(features, rois),
                     roiops.roi_align(features, rois, 2, spatial_scale=0.5,
                                      convention="mindspore", roi_end_mode=0))
    with pytest.raises(ValueError, match="crop_size must be two positive ints"):
        roiops.nn.CropAndResize((0, 3))
    with pytest.raises(ValueError, match="aligned=True is a torchvision option"):
        roiops.nn.RoIAlign(2, aligned=True, convention="mindspore")


@pytest.mark.parametrize("op", [
    lambda x, b: torchvision.roi_pool(x, b, 2), lambda x, b: torchvision.ps_roi_align(x, b, 2),
    lambda x, b: torchvision.ps_roi_pool(x, b, 2)], ids=["roi_pool", "ps_roi_align",
                                                          "ps_roi_pool"])
def test_a_bfloat16_box_list_item_is_refused_beside_any_other(op):
    # torchvision's roi_pool and position-sensitive ops take float16/32/64 boxes; a list's
    # items are concatenated, which used to promote a bfloat16 item next to a float16 one
    # to float32, past the rule.
    x = torch.zeros(2, 4, 3, 3)
    half, bfloat16 = torch.zeros(1, 4, dtype=torch.float16), torch.zeros(1, 4,
                                                                         dtype=torch.bfloat16)
    for boxes in ([bfloat16], [half, bfloat16]):
        with pytest.raises(TypeError, match=rf"boxes\[{len(boxes) - 1}\] must have dtype"):
            op(x, boxes)
    assert op(x, [half, half]).shape[0] == 2


def test_roiops_works_without_torch():
    # torch made unimportable: the NumPy API and the plain-callable RoIAlign still work.
    code = """if True:
        import sys
        sys.modules["torch"] = None
        import numpy as np, roiops
        from roiops.compat import torchvision
        x = np.ones((1, 1, 4, 4), np.float32)
        rois = np.array([[0, 0, 0, 3, 3]], np.float32)
        module = torchvision.RoIAlign(2, 1.0, 2)
        assert type(module) is torchvision.RoIAlign  # not torch's module subclass
        assert module(x, rois).shape == (1, 1, 2, 2)
        assert roiops.roi_align(x, rois, 2).shape == (1, 1, 2, 2)
        """
    subprocess.run([sys.executable, "-c", code], check=True)
