"""docs/errors.md for tensors: the NumPy messages, plus devices, integer boxes and ``out``."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
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
    (lambda: torchvision.roi_align(FEATURES.int(), torch.tensor(ROIS), 2), TypeError,
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


# --- issue 13: hostile arguments on tensors -------------------------------------------------

GRADS = randn(3, 3, 4, 3)
POOLED = randn(3, 3, 2, 3)


def meta(tensor):
    return tensor.to("meta")


@pytest.mark.parametrize("call, error, words", [
    # sparse tensors: the kernels read strided memory
    (lambda: crop(image=IMAGE.to_sparse()), TypeError,
     "image must be a dense (strided) tensor, got layout torch.sparse_coo"),
    (lambda: roi(rois=torch.tensor(ROIS).to_sparse()), TypeError, "rois must be a dense"),
    (lambda: torchvision.roi_align(FEATURES, [torch.tensor(BOXES).to_sparse()], 2), TypeError,
     "boxes[0] must be a dense (strided) tensor"),
    (lambda: tensorflow.raw_ops.CropAndResizeGradBoxes(
        GRADS.to_sparse(), IMAGE, torch.tensor(BOXES), torch.tensor(BOX_INDICES).int()),
     TypeError, "grads must be a dense"),
    # a NumPy array among tensors on a host-side primitive (was converted silently)
    (lambda: tensorflow.raw_ops.CropAndResizeGradBoxes(
        GRADS, IMAGE.numpy(), torch.tensor(BOXES), torch.tensor(BOX_INDICES).int()),
     TypeError, "image must be a torch.Tensor like the other array arguments, got ndarray"),
    (lambda: mindspore.ROIAlignGrad(2, 3, 0.5)(POOLED.numpy(), torch.tensor(ROIS),
                                               (2, 3, 8, 9)),
     TypeError, "dy must be a torch.Tensor like the other array arguments, got ndarray"),
    (lambda: torchvision.roi_align_backward(POOLED, [np.array(BOXES, np.float32)], (2, 3, 8, 9),
                                            (2, 3), 0.5, 2, False),
     TypeError, "boxes[0] must be a torch.Tensor like the other array arguments"),
    # a dtype NumPy has not, on a host-side primitive (was torch's TypeError naming nothing)
    (lambda: tensorflow.raw_ops.CropAndResizeGradBoxes(
        GRADS.to(torch.float8_e4m3fn), IMAGE, torch.tensor(BOXES),
        torch.tensor(BOX_INDICES).int()), TypeError, "grads must not be float8_e4m3fn"),
    # meta tensors where the values are computed on the host
    (lambda: tensorflow.raw_ops.CropAndResizeGradImage(
        meta(GRADS), meta(torch.tensor(BOXES)), meta(torch.tensor(BOX_INDICES).int()),
        (2, 5, 6, 3), torch.float32), ValueError, "grads must hold values"),
    (lambda: mindspore.ROIAlignGrad(2, 3, 0.5)(meta(POOLED), meta(torch.tensor(ROIS)),
                                               (2, 3, 8, 9)), ValueError, "dy must hold values"),
    (lambda: torchvision.roi_align(meta(FEATURES.half()), meta(torch.tensor(ROIS).half()), 2),
     ValueError, "input must hold values"),
    # sizes, ratios, floats and dtypes: the NumPy rules
    (lambda: crop(crop_size=(2**40, 1)), ValueError, "crop_size (1099511627776, 1) needs"),
    (lambda: crop(crop_size=(10**400, 1)), ValueError, "crop_size must be two positive ints"),
    (lambda: roi(output_size=(2**20, 2**20)), ValueError, "output_size (1048576, 1048576) needs"),
    (lambda: roiops.roi_align_grad_input(POOLED, torch.tensor(ROIS), (2, 3, 2**40, 9), (2, 3)),
     ValueError, "input_shape (2, 3, 1099511627776, 9) needs"),
    (lambda: roiops.crop_and_resize_grad_image(GRADS, torch.tensor(BOXES),
                                               torch.tensor(BOX_INDICES), "2563"),
     TypeError, "image_shape must be 4 non-negative ints"),
    (lambda: roiops.crop_and_resize_grad_image(GRADS, torch.tensor(BOXES),
                                               torch.tensor(BOX_INDICES), (2, 5, 6, 3),
                                               dtype="foo"),
     TypeError, "dtype must be float16, float32 or float64, got 'foo'"),
    (lambda: roi(sampling_ratio=2**63), ValueError, "sampling_ratio must be at most 1024"),
    (lambda: roiops.nn.RoIAlign(2, sampling_ratio=1025), ValueError,
     "sampling_ratio must be at most 1024"),
    (lambda: roi(spatial_scale=1e39), ValueError,
     "spatial_scale must stay finite when rounded to float32"),
    (lambda: torchvision.roi_align(FEATURES, torch.tensor(ROIS), 2, 1e39), ValueError,
     "spatial_scale must stay finite when rounded to float32"),
    (lambda: crop(extrapolation_value=1e300), ValueError,
     "extrapolation_value must stay finite when rounded to float32"),
    (lambda: crop(box_indices=torch.tensor([0, 2**63, 1], dtype=torch.uint64)), ValueError,
     "row 1 is 9223372036854775808"),
])
def test_hostile_tensor_arguments_are_refused(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_native_ops_on_meta_tensors_infer_shapes():
    # no values are read: meta tensors are a shape computation, not an error
    crops = crop(image=meta(IMAGE), boxes=meta(torch.tensor(BOXES)),
                 box_indices=meta(torch.tensor(BOX_INDICES)))
    assert crops.device.type == "meta" and crops.shape == (3, 3, 4, 3)
    grad = roiops.roi_align_grad_input(meta(POOLED), meta(torch.tensor(ROIS)), (2, 3, 8, 9),
                                       (2, 3))
    assert grad.device.type == "meta" and grad.shape == (2, 3, 8, 9)


@pytest.mark.parametrize("call, words", [
    (lambda ops: ops._cuda_crop_and_resize(IMAGE, torch.tensor(BOXES), torch.tensor(BOX_INDICES),
                                           [2**40, 1]), "crop_size (1099511627776, 1) needs"),
    (lambda ops: ops._cuda_crop_and_resize(IMAGE, torch.tensor(BOXES), torch.tensor(BOX_INDICES),
                                           [3, 4], extrapolation_value=1e300),
     "extrapolation_value must stay finite"),
    (lambda ops: ops._cuda_crop_and_resize_grad_image(
        GRADS, torch.tensor(BOXES), torch.tensor(BOX_INDICES), [2, 2**40, 6, 3]),
     "image_shape (2, 1099511627776, 6, 3) needs"),
    (lambda ops: ops._cuda_roi_align(FEATURES, torch.tensor(ROIS), [2**20, 2**20]),
     "output_size (1048576, 1048576) needs"),
    (lambda ops: ops._cuda_roi_align(FEATURES, torch.tensor(ROIS), [2, 3], 1e39),
     "spatial_scale must stay finite"),
    (lambda ops: ops._cuda_roi_align_grad_input(POOLED, torch.tensor(ROIS), [2, 3, 2**40, 9],
                                                [2, 3]),
     "input_shape (2, 3, 1099511627776, 9) needs"),
    (lambda ops: ops._cuda_roi_align_grad_boxes(POOLED, FEATURES, torch.tensor(ROIS), [2, 3],
                                                -1e39), "spatial_scale must stay finite"),
])
def test_cuda_path_checks_run_before_allocating(call, words):
    pytest.importorskip("triton")
    from roiops.torch import ops
    with pytest.raises(ValueError) as info:
        call(ops)
    assert words in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_are_checked_against_the_device_memory():
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    side = int((total // 4) ** 0.5) + 2  # a float32 [1, 1, side, side] result exceeds it
    with pytest.raises(ValueError) as info:
        roiops.roi_align(FEATURES[:1, :1].to(device), torch.tensor(ROIS[:1], device=device),
                         (side, side))
    assert f"output_size ({side}, {side}) needs" in str(info.value)
    assert f"({total} bytes) of memory of the device cuda" in str(info.value)
