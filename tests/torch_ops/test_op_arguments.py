"""Direct calls of ``torch.ops.roiops.*`` check their own arguments.

Anyone can call the ops without the public functions' checks (TorchScript code does, and so
does code ported from ``torch.ops.torchvision``): a malformed argument must be a TypeError or
ValueError naming it, from the CPU kernel, the CUDA kernel's host side and the fake kernel
alike, never a read out of bounds.
"""
import pytest

torch = pytest.importorskip("torch")

from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

from roiops.torch import ops  # noqa: E402
from torch_cases import BOX_INDICES, BOXES, ROIS, randn  # noqa: E402

ROI_OPTIONS = ([2, 2], 0.5, 2, True, "torchvision", 1)


def _crop_args():
    return randn(2, 5, 6, 3), torch.tensor(BOXES), torch.tensor(BOX_INDICES)


def _bad_calls():
    """(name, op, CUDA kernel, args, exception, message) for one malformed argument each."""
    image, boxes, indices = _crop_args()
    crops = randn(3, 3, 4, 3)
    input, rois = randn(2, 3, 6, 7), torch.tensor(ROIS)
    pooled = randn(3, 3, 2, 2)
    return [
        ("crop rank", "crop_and_resize",
         (image[0], boxes, indices, [3, 4], "bilinear", 0.0, "NHWC"), ValueError, "image"),
        ("crop boxes", "crop_and_resize",
         (image, boxes[:, :3], indices, [3, 4], "bilinear", 0.0, "NHWC"), ValueError, "boxes"),
        ("crop indices", "crop_and_resize",
         (image, boxes, indices[:2], [3, 4], "bilinear", 0.0, "NHWC"), ValueError,
         "box_indices"),
        ("crop method", "crop_and_resize",
         (image, boxes, indices, [3, 4], "cubic", 0.0, "NHWC"), ValueError, "method"),
        ("crop size", "crop_and_resize",
         (image, boxes, indices, [0, 4], "bilinear", 0.0, "NHWC"), ValueError, "crop_size"),
        ("grad image depth", "crop_and_resize_grad_image",
         (crops, boxes, indices, [2, 5, 6, 4], "bilinear", torch.float32, "NHWC"), ValueError,
         "depth"),
        ("grad image dtype", "crop_and_resize_grad_image",
         (crops, boxes, indices.float(), [2, 5, 6, 3], "bilinear", torch.float32, "NHWC"),
         TypeError, "box_indices"),
        ("grad boxes grads", "crop_and_resize_grad_boxes",
         (crops[:2], image, boxes, indices, "bilinear", "NHWC"), ValueError, "grads"),
        ("roi columns", "roi_align", (input, rois[:, 1:], *ROI_OPTIONS), ValueError, "rois"),
        ("roi input rank", "roi_align", (input[0], rois, *ROI_OPTIONS), ValueError, "input"),
        ("roi convention", "roi_align", (input, rois, [2, 2], 0.5, 2, True, "mindspore", 1),
         ValueError, "aligned"),
        ("roi sampling", "roi_align", (input, rois, [2, 2], 0.5, 5000, True, "torchvision", 1),
         ValueError, "sampling_ratio"),
        ("roi rois dtype", "roi_align", (input, rois.int(), *ROI_OPTIONS), TypeError, "rois"),
        ("grad input channels", "roi_align_grad_input",
         (pooled, rois, [2, 4, 6, 7], *ROI_OPTIONS), ValueError, "grads"),
        ("grad input shape", "roi_align_grad_input",
         (pooled, rois, [2, 3, 0, 7], *ROI_OPTIONS), ValueError, "input_shape"),
        ("grad boxes size", "roi_align_grad_boxes",
         (pooled, input, rois, [3, 2], *ROI_OPTIONS[1:]), ValueError, "grads"),
    ]


CASES = _bad_calls()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_direct_call_checks_its_arguments(case):
    _, name, args, error, message = case
    with pytest.raises(error, match=message):
        getattr(torch.ops.roiops, name)(*args)
    # the CUDA kernel's host side, before any device work (on CPU tensors here)
    with pytest.raises(error, match=message):
        getattr(ops, f"_cuda_{name}")(*args)


@pytest.mark.parametrize("case", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_the_fake_kernels_check_too(case):
    _, name, args, error, message = case
    with FakeTensorMode() as mode:
        fakes = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        with pytest.raises(error, match=message):
            getattr(torch.ops.roiops, name)(*fakes)
