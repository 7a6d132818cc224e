"""Tensors through the custom ops give the NumPy path's bits, for every dtype and layout.

torchvision's test pattern: dtype x contiguity x convention, forward and both gradients.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exact import assert_same_bits  # noqa: E402

import roiops  # noqa: E402
from torch_cases import (  # noqa: E402
    BOX_INDICES,
    BOXES,
    FLOAT_DTYPES,
    LAYOUTS,
    ROIS,
    layout,
    randn,
    reference,
)

CONVENTIONS = [
    dict(convention="torchvision", aligned=False), dict(convention="torchvision", aligned=True),
    dict(convention="mindspore", roi_end_mode=0), dict(convention="mindspore", roi_end_mode=1),
]


@pytest.mark.parametrize("options", CONVENTIONS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_roi_align_matches_numpy(dtype, kind, options):
    options = dict(options, spatial_scale=0.75, sampling_ratio=2)
    input = layout(randn(2, 3, 6, 7, dtype=dtype), kind).requires_grad_()
    rois = torch.tensor(ROIS, dtype=dtype, requires_grad=True)
    result = roiops.roi_align(input, rois, (2, 3), **options)
    assert_same_bits(result, reference(roiops.roi_align, input, rois, (2, 3), dtype=dtype,
                                       **options))

    grads = layout(randn(*result.shape, dtype=dtype, seed=1), kind)
    result.backward(grads)
    assert_same_bits(input.grad, reference(roiops.roi_align_grad_input, grads, rois,
                                           tuple(input.shape), (2, 3), dtype=dtype, **options))
    assert_same_bits(rois.grad, reference(roiops.roi_align_grad_boxes, grads, input, rois,
                                          (2, 3), dtype=dtype, **options))
    assert not rois.grad[:, 0].any()


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bilinear_v2"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_crop_and_resize_matches_numpy(dtype, kind, data_format, method):
    shape = (2, 5, 6, 3) if data_format == "NHWC" else (2, 3, 5, 6)
    image = layout(randn(*shape, dtype=dtype), kind).requires_grad_()
    boxes = torch.tensor(BOXES, dtype=dtype, requires_grad=True)
    indices = torch.tensor(BOX_INDICES)
    options = dict(method=method, data_format=data_format)
    crops = roiops.crop_and_resize(image, boxes, indices, (3, 4), extrapolation_value=0.5,
                                   **options)
    assert_same_bits(crops, reference(roiops.crop_and_resize, image, boxes, indices, (3, 4),
                                      extrapolation_value=0.5, dtype=dtype, **options))

    grads = layout(randn(*crops.shape, dtype=dtype, seed=1), kind)
    crops.backward(grads)
    assert_same_bits(image.grad, reference(
        roiops.crop_and_resize_grad_image, grads, boxes, indices, tuple(image.shape),
        dtype=dtype, **options))
    assert_same_bits(boxes.grad, reference(
        roiops.crop_and_resize_grad_boxes, grads, image, boxes, indices, dtype=dtype,
        **options))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64], ids=str)
def test_integer_images_give_float32(dtype):
    image = torch.randint(0, 100, (2, 5, 6, 3), dtype=dtype)
    boxes = torch.tensor(BOXES, requires_grad=True)
    crops = roiops.crop_and_resize(image, boxes, torch.tensor(BOX_INDICES), (3, 4))
    expected = roiops.crop_and_resize(image.numpy(), np.array(BOXES, np.float32),
                                      np.array(BOX_INDICES), (3, 4))
    assert_same_bits(crops, torch.from_numpy(expected))
    crops.sum().backward()  # boxes are differentiable even when the image is not
    assert boxes.grad.shape == (3, 4)


def test_contiguous_inputs_are_read_in_place(monkeypatch):
    # The kernels get views of the tensors' memory: no copy for a float32 input.
    from roiops.roi_align import api
    seen = {}
    original = api.run_forward

    def spy(call, input, *args, **kwargs):
        seen["input"] = input
        return original(call, input, *args, **kwargs)

    monkeypatch.setattr(api, "run_forward", spy)
    x = layout(randn(2, 3, 6, 7), "channels_last")
    roiops.roi_align(x, torch.tensor(ROIS), 2)
    assert seen["input"].ctypes.data == x.data_ptr()
    assert seen["input"].strides == tuple(4 * s for s in x.stride())


def test_gradient_entry_points_accept_tensors():
    grads = randn(3, 3, 4, 2, dtype=torch.float64)
    boxes, indices = torch.tensor(BOXES, dtype=torch.float64), torch.tensor(BOX_INDICES)
    image_grad = roiops.crop_and_resize_grad_image(grads, boxes, indices, (2, 5, 6, 2),
                                                   dtype=np.float32)
    expected = roiops.crop_and_resize_grad_image(grads.numpy(), boxes.numpy(), indices.numpy(),
                                                 (2, 5, 6, 2), dtype=np.float32)
    assert_same_bits(image_grad, torch.from_numpy(expected))
    # bfloat16 results: the float32 result rounded once
    bf16 = roiops.crop_and_resize_grad_image(grads, boxes, indices, (2, 5, 6, 2),
                                             dtype=torch.bfloat16)
    assert_same_bits(bf16, image_grad.to(torch.bfloat16))


def test_empty_boxes_give_empty_results_and_zero_gradients():
    image = randn(2, 5, 6, 3).requires_grad_()
    crops = roiops.crop_and_resize(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int32),
                                   (3, 4))
    assert crops.shape == (0, 3, 4, 3)
    crops.sum().backward()
    assert image.grad.shape == image.shape and not image.grad.any()
    pooled = roiops.roi_align(randn(2, 3, 6, 7), torch.zeros(0, 5), 2)
    assert pooled.shape == (0, 3, 2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_the_device():
    # The Triton kernels (no FMA, IEEE division) must give the CPU kernels' bits.
    input = randn(2, 3, 6, 7).cuda().requires_grad_()
    rois = torch.tensor(ROIS, device="cuda", requires_grad=True)
    out = roiops.roi_align(input, rois, 2, sampling_ratio=2)
    assert out.device == input.device
    out.sum().backward()
    cpu_input, cpu_rois = input.detach().cpu().requires_grad_(), rois.detach().cpu()
    assert_same_bits(out.cpu(), roiops.roi_align(cpu_input, cpu_rois, 2, sampling_ratio=2))
    assert input.grad.device == input.device and rois.grad.device == rois.device
    image = randn(2, 5, 6, 3).cuda()
    crops = roiops.crop_and_resize(image, torch.tensor(BOXES).cuda(),
                                   torch.tensor(BOX_INDICES).cuda(), (3, 4))
    assert crops.device == image.device
