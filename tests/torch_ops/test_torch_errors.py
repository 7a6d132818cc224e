"""API.md §3 for tensors: the NumPy messages, plus devices, integer boxes and ``out``."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
from roiops.compat import mindspore, tensorflow, torchvision  # noqa: E402
from torch_cases import BOX_INDICES, BOXES, ROIS, randn  # noqa: E402

IMAGE = randn(2, 5, 6, 3)
FEATURES = randn(2, 3, 8, 9)


def crop(image=IMAGE, boxes=None, box_indices=None, crop_size=(3, 4), **options):
    boxes = torch.tensor(BOXES) if boxes is None else boxes
    box_indices = torch.tensor(BOX_INDICES) if box_indices is None else box_indices
    return roiops.crop_and_resize(image, boxes, box_indices, crop_size, **options)


def roi(input=FEATURES, rois=None, output_size=(2, 3), **options):
    rois = torch.tensor(ROIS) if rois is None else rois
    return roiops.roi_align(input, rois, output_size, **options)


@pytest.mark.parametrize("call, error, words", [
    (lambda: crop(image=IMAGE.to("meta")), ValueError,
     "tensors must be on one device, got image on meta, boxes on cpu"),
    (lambda: roi(rois=torch.tensor(ROIS, device="meta")), ValueError, "rois on meta"),
    (lambda: crop(boxes=torch.tensor(BOXES).int()), TypeError, "boxes must have dtype"),
    (lambda: roi(rois=torch.tensor(ROIS).long()), TypeError, "rois must have dtype"),
    (lambda: crop(boxes=np.array(BOXES, np.float32)), TypeError,
     "boxes must be a torch.Tensor like the other array arguments, got ndarray"),
    (lambda: crop(image=IMAGE.bool()), TypeError, "image must have dtype"),
    (lambda: crop(image=IMAGE[0]), ValueError,
     "image must have shape [batch, height, width, depth], got (5, 6, 3)"),
    (lambda: crop(boxes=torch.tensor(BOXES)[:, :3]), ValueError,
     "boxes must have shape [num_boxes, 4], got (3, 3)"),
    (lambda: crop(box_indices=torch.tensor(BOX_INDICES).float()), TypeError,
     "box_indices must have an integer dtype, got torch.float32"),
    (lambda: crop(box_indices=torch.tensor([0, 1])), ValueError,
     "box_indices must have one entry per box (3), got 2"),
    (lambda: crop(box_indices=torch.tensor([0, 2, 1])), ValueError,
     "box_indices must be in [0, 2) (the batch size), row 1 is 2"),
    (lambda: crop(boxes=torch.tensor([[0, 0, 1, 1], [0, float("nan"), 1, 1], [0, 0, 1, 1]])),
     ValueError, "boxes must be finite, row 1"),
    (lambda: crop(crop_size=(0, 3)), ValueError, "crop_size must be two positive ints"),
    (lambda: crop(method="area"), ValueError, "method must be one of"),
    (lambda: crop(data_format="NDHWC"), ValueError, "data_format must be one of"),
    (lambda: crop(out=torch.empty(3, 3, 4, 3)), ValueError, "out is supported for NumPy"),
    (lambda: roi(input=FEATURES[0]), ValueError, "input must have shape"),
    (lambda: roi(input=FEATURES.int()), TypeError, "input must have dtype"),
    (lambda: roi(rois=torch.tensor(ROIS)[:, 1:]), ValueError,
     "rois must have shape [num_rois, 5], got (3, 4)"),
    (lambda: roi(rois=torch.tensor([[0, 1, 1, float("inf"), 6]])), ValueError,
     "rois must be finite, row 0"),
    (lambda: roi(rois=torch.tensor([[2.0, 1, 1, 5, 6]])), ValueError,
     "rois batch index must be in [0, 2)"),
    (lambda: roi(convention="mindspore", aligned=True), ValueError,
     "aligned=True is a torchvision option"),
    (lambda: roi(sampling_ratio=2.0), TypeError, "sampling_ratio must be an int"),
    (lambda: roiops.roi_align_grad_input(randn(3, 3, 2, 2), torch.tensor(ROIS), (2, 3, 8, 9),
                                         (2, 3)), ValueError,
     "grads must have shape [num_rois, channels, pooled_height, pooled_width] = (3, 3, 2, 3)"),
    (lambda: roiops.crop_and_resize_grad_image(randn(3, 3, 4, 3), torch.tensor(BOXES),
                                               torch.tensor(BOX_INDICES), (2, 5, 6, 2)),
     ValueError, "image_shape depth must equal grads depth 3, got 2"),
    (lambda: roiops.crop_and_resize_grad_image(randn(3, 3, 4, 3), torch.tensor(BOXES),
                                               torch.tensor(BOX_INDICES), (2, 5, 6, 3),
                                               dtype=torch.int32), TypeError,
     "dtype must be float16, float32 or float64"),
    (lambda: roiops.crop_and_resize_grad_boxes(randn(3, 3, 4, 2), IMAGE, torch.tensor(BOXES),
                                               torch.tensor(BOX_INDICES)), ValueError,
     "grads depth must equal image depth 3, got 2"),
    # compatibility layers: the framework's dtypes, the same device rule
    (lambda: tensorflow.crop_and_resize(IMAGE, torch.tensor(BOXES).double(),
                                        torch.tensor(BOX_INDICES, dtype=torch.int32), (2, 2)),
     TypeError, "boxes must have dtype in (torch.float32), got torch.float64"),
    (lambda: mindspore.ROIAlign(2, 2, 1.0)(FEATURES.to("meta"), torch.tensor(ROIS)), ValueError,
     "features on meta, rois on cpu"),
    (lambda: torchvision.roi_align(FEATURES, [torch.tensor(BOXES), np.zeros((1, 4))], 2),
     TypeError, "boxes[1] must be a torch.Tensor"),
    (lambda: torchvision.roi_align(FEATURES.bfloat16(), torch.tensor(ROIS), 2), TypeError,
     "input must have dtype"),
])
def test_bad_tensor_input_raises(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_host_only_compat_paths_refuse_tensors_that_require_grad():
    # the gradient primitives have no autograd: refuse rather than silently cut the graph
    dy = randn(3, 3, 2, 2).requires_grad_()
    primitive = mindspore.ROIAlignGrad(2, 2, 0.5)
    with pytest.raises(RuntimeError, match="not differentiable"):
        primitive(dy, torch.tensor(ROIS), (2, 3, 8, 9))
    with torch.no_grad():
        assert primitive(dy, torch.tensor(ROIS), (2, 3, 8, 9)).shape == (2, 3, 8, 9)
