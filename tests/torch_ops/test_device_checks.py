"""The CUDA ops' value checks (``roiops.torch.ops._device_*``), run here on CPU tensors.

On a CUDA device the checks run as tensor operations read back as one boolean; they must
refuse exactly what the host's checks (``check_box_values``, ``check_roi_values``) refuse,
with their messages, and give the same batch indices; a valid call copies nothing to the host.
"""
import itertools

import pytest

torch = pytest.importorskip("torch")

from roiops.crop_and_resize import checks as crop_checks  # noqa: E402
from roiops.roi_align import checks as roi_checks  # noqa: E402
from roiops.roi_align import conventions  # noqa: E402
from roiops.torch import ops  # noqa: E402

BATCH = 3
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INDEX_DTYPES = [torch.int8, torch.int32, torch.int64, torch.uint8, torch.uint64]
# Batch index values at every edge of both conventions' rules.
INDEX_VALUES = [0.0, -0.0, -0.4, -0.5, -1.0, 0.99, 1.5, BATCH - 1, BATCH - 1 + 1e-5,
                BATCH - 1 + 6e-5, BATCH - 0.5, BATCH - 1e-3, BATCH, 1e30, -1e30,
                float("nan"), float("inf"), -float("inf")]


def _outcome(check, args):
    """("ok", result) or (exception type, message) of ``check(*args)``."""
    try:
        return "ok", check(*args)
    except (TypeError, ValueError) as error:
        return type(error), str(error)


def _assert_same_outcome(device_check, device_args, host_check, host_args):
    device, host = _outcome(device_check, device_args), _outcome(host_check, host_args)
    assert device[0] == host[0], (device, host)
    if device[0] == "ok":
        assert device[1].dtype == torch.int64
        assert device[1].tolist() == host[1].tolist()
    else:
        assert device[1] == host[1]


def _host(tensor):
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("convention", [conventions.TORCHVISION, conventions.MINDSPORE_END_MODE_1],
                         ids=lambda c: c.name)
def test_roi_batch_indices_match_the_host(dtype, convention):
    for value in INDEX_VALUES:
        rois = torch.tensor([[0.0, 1, 1, 2, 2], [value, 1, 1, 2, 2]]).to(dtype)
        _assert_same_outcome(ops._device_roi_indices, (rois, BATCH, convention),
                             roi_checks.check_roi_values, (_host(rois), BATCH, convention))


@pytest.mark.parametrize("convention", [conventions.TORCHVISION, conventions.MINDSPORE_END_MODE_1],
                         ids=lambda c: c.name)
def test_half_batch_indices_beyond_2048_match_the_host(convention):
    # 2049 is 2048 in half: compared in the rois' dtype, index 2048 would be refused
    for batch, value in itertools.product([2048, 2049, 2**40], [2047, 2048, 2050, 65504]):
        rois = torch.tensor([[value, 1, 1, 2, 2]], dtype=torch.float16)
        _assert_same_outcome(ops._device_roi_indices, (rois, batch, convention),
                             roi_checks.check_roi_values, (rois.numpy(), batch, convention))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_non_finite_roi_coordinates_match_the_host(dtype):
    for column, value in itertools.product(range(1, 5), [float("nan"), float("inf")]):
        rois = torch.tensor([[0.0, 1, 1, 2, 2], [1.0, 1, 1, 2, 2]]).to(dtype)
        rois[1, column] = value
        for convention in (conventions.TORCHVISION, conventions.MINDSPORE_END_MODE_0):
            _assert_same_outcome(ops._device_roi_indices, (rois, BATCH, convention),
                                 roi_checks.check_roi_values, (_host(rois), BATCH, convention))


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES, ids=str)
def test_box_indices_match_the_host(index_dtype):
    values = [0, 1, BATCH - 1, BATCH, 127]
    if index_dtype.is_signed:
        values += [-1, -128]
    if index_dtype == torch.uint64:
        values += [2**63, 2**64 - 1]
    for value, bad in itertools.product(values, [None, float("nan"), float("inf")]):
        boxes = torch.tensor([[0.0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]])
        if bad is not None:
            boxes[1, 2] = bad
        indices = torch.tensor([0, value], dtype=index_dtype)
        _assert_same_outcome(ops._device_box_indices, (boxes, indices, BATCH),
                             crop_checks.check_box_values, (boxes.numpy(), indices.numpy(), BATCH))


def test_no_rows_need_no_reduction():
    assert ops._device_box_indices(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int32),
                                   BATCH).shape == (0,)
    assert ops._device_roi_indices(torch.zeros(0, 5), BATCH, conventions.TORCHVISION).shape == (0,)


def test_valid_values_are_not_copied_to_the_host(monkeypatch):
    def copy(tensor):
        raise AssertionError("a valid call copied a tensor to the host")

    monkeypatch.setattr(ops, "_host", copy)
    rois = torch.tensor([[0.0, 1, 1, 2, 2], [2.0, 0, 0, 3, 3]])
    assert ops._device_roi_indices(rois, BATCH, conventions.TORCHVISION).tolist() == [0, 2]
    assert ops._device_roi_indices(rois, BATCH, conventions.MINDSPORE_END_MODE_0).tolist() == [
        0, 2]
    boxes = torch.tensor([[0.0, 0, 1, 1]])
    assert ops._device_box_indices(boxes, torch.tensor([2], dtype=torch.uint8),
                                   BATCH).tolist() == [2]
    with pytest.raises(AssertionError, match="copied"):  # an invalid one does, to name it
        ops._device_box_indices(boxes, torch.tensor([BATCH]), BATCH)
