"""Gradients: gradcheck in float64 for image/input and boxes; double backward raises."""
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
from torch_cases import BOX_INDICES, BOXES, ROIS, randn  # noqa: E402


def _inputs(*tensors):
    return [t.to(torch.float64).requires_grad_() for t in tensors]


@pytest.mark.parametrize("options", [
    dict(sampling_ratio=2, aligned=False), dict(sampling_ratio=2, aligned=True),
    dict(sampling_ratio=-1, aligned=True),
    dict(sampling_ratio=2, convention="mindspore", roi_end_mode=0),
    dict(sampling_ratio=2, convention="mindspore", roi_end_mode=1),
], ids=lambda o: "-".join(map(str, o.values())))
def test_roi_align_gradcheck(options):
    rois = torch.tensor(ROIS, dtype=torch.float64)
    input, coords = _inputs(randn(2, 2, 6, 7), rois[:, 1:])

    # The batch-index column is piecewise constant (a jump at every integer for torchvision's
    # truncation): its gradient is zero (checked in test_parity); check the coordinates.
    def pool(input, coords):
        rois_ = torch.cat([rois[:, :1], coords], dim=1)
        return roiops.roi_align(input, rois_, (2, 2), spatial_scale=0.9, **options)

    assert torch.autograd.gradcheck(pool, (input, coords))


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_crop_and_resize_gradcheck(method, data_format):
    shape = (2, 4, 5, 2) if data_format == "NHWC" else (2, 2, 4, 5)
    image, boxes = _inputs(randn(*shape), torch.tensor(BOXES))
    indices = torch.tensor(BOX_INDICES)

    def crop(image, boxes):
        return roiops.crop_and_resize(image, boxes, indices, (3, 2), method=method,
                                      data_format=data_format)

    # The box gradient is the bilinear formula for every method
    # (docs/arithmetic.md#crop_and_resize-box-gradient): the true
    # derivative only for "bilinear" (the others are piecewise constant in the boxes).
    if method != "bilinear":
        boxes.requires_grad_(False)
    assert torch.autograd.gradcheck(crop, (image, boxes))


def test_crop_size_one_gradcheck():
    # A 1-pixel crop samples the box centre: both corners get half the gradient.
    image, boxes = _inputs(randn(2, 4, 5, 2), torch.tensor(BOXES))
    indices = torch.tensor(BOX_INDICES)
    assert torch.autograd.gradcheck(
        lambda i, b: roiops.crop_and_resize(i, b, indices, (1, 1)), (image, boxes))


def test_double_backward_raises_a_clear_error():
    input, rois = _inputs(randn(1, 2, 6, 7), torch.tensor(ROIS[:1]))
    out = roiops.roi_align(input, rois, 2, sampling_ratio=2)
    (grad_input,) = torch.autograd.grad(out.sum(), input, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through roiops operators"):
        grad_input.sum().backward()
    image, boxes = _inputs(randn(2, 4, 5, 2), torch.tensor(BOXES))
    crops = roiops.crop_and_resize(image, boxes, torch.tensor(BOX_INDICES), (2, 2))
    (grad_boxes,) = torch.autograd.grad(crops.sum(), boxes, create_graph=True)
    with pytest.raises(RuntimeError, match="roiops::crop_and_resize_grad_boxes is not"):
        grad_boxes.sum().backward()
