"""The Triton kernels of ps_roi_align and ps_roi_pool (``roiops.ps_roi_align.cuda``,
``roiops.ps_roi_pool.cuda``) against the CPU ops, under the Triton interpreter on CPU tensors
(see tests/torch_ops/test_triton.py): forward and input gradient bit for bit in float32 and
float64, ps_roi_align's box gradient within rounding."""
import importlib.util
import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from exact import assert_same_bits  # noqa: E402

from roiops.torch import ps_roi_ops  # noqa: E402

# The interpreter computes in NumPy, which warns where the kernels meet torchvision's 0/0 of
# an empty grid (and the unused NaN taps of a bin without samples).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def _fresh(name):
    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def interpreted():
    """ps_roi_align's and roi_align's kernel modules (the former calls the latter's device
    helpers) and roiops._triton, loaded with TRITON_INTERPRET=1, in place of the real ones."""
    patch = pytest.MonkeyPatch()
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        for name in ("roiops._triton", "roiops.roi_align.cuda", "roiops.ps_roi_align.cuda",
                     "roiops.ps_roi_pool.cuda"):
            module = _fresh(name)
            patch.setitem(sys.modules, name, module)
            package = sys.modules[name.rpartition(".")[0]]
            patch.setattr(package, name.rpartition(".")[2], module, raising=False)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    yield
    patch.undo()


def _case(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 12, 6, 7, generator=generator, dtype=torch.float64).to(dtype)
    # inside, across the border, outside, reversed, a point (an empty adaptive grid)
    rois = torch.tensor([[0, 1.3, 0.7, 5.4, 4.6], [1, -2.0, 3.1, 3.3, 9.0],
                         [1, 9.0, 9.0, 12.0, 11.0], [0, 5.0, 4.0, 2.0, 1.0],
                         [1, 2.0, 2.0, 2.0, 2.0], [1, 0.2, 0.1, 6.9, 5.8]], dtype=dtype)
    grads = torch.randn(6, 3, 2, 2, generator=generator, dtype=torch.float64).to(dtype)
    return x, rois, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_forward_and_grad_input_bit_for_bit(interpreted, dtype, sampling_ratio):
    x, rois, grads = _case(dtype)
    options = ([2, 2], 0.8, sampling_ratio)
    assert_same_bits(ps_roi_ops._cuda_ps_roi_align(x, rois, *options).numpy(),
                     ps_roi_ops.ps_roi_align(x, rois, *options).numpy())
    assert_same_bits(
        ps_roi_ops._cuda_ps_roi_align_grad_input(grads, rois, list(x.shape), *options).numpy(),
        ps_roi_ops.ps_roi_align_grad_input(grads, rois, list(x.shape), *options).numpy())


def test_grad_boxes_within_rounding(interpreted):
    x, rois, grads = _case(torch.float64, seed=1)
    options = ([2, 2], 0.8, 2)
    torch.testing.assert_close(
        ps_roi_ops._cuda_ps_roi_align_grad_boxes(grads, x, rois, *options),
        ps_roi_ops.ps_roi_align_grad_boxes(grads, x, rois, *options), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ps_roi_pool_bit_for_bit(interpreted, dtype):
    x, rois, grads = _case(dtype)
    # beyond int32 after scaling: both saturate alike
    rois = torch.cat([rois, torch.tensor([[0, -2147483643.0, 1.0, 3e9, 5.5]], dtype=dtype)])
    grads = torch.cat([grads, grads[:1]])
    options = ([2, 2], 0.8)
    assert_same_bits(ps_roi_ops._cuda_ps_roi_pool(x, rois, *options).numpy(),
                     ps_roi_ops.ps_roi_pool(x, rois, *options).numpy())
    assert_same_bits(
        ps_roi_ops._cuda_ps_roi_pool_grad_input(grads, rois, list(x.shape), *options).numpy(),
        ps_roi_ops.ps_roi_pool_grad_input(grads, rois, list(x.shape), *options).numpy())


def test_half_arithmetic_runs_on_the_host(interpreted):
    x, rois, grads = _case(torch.float16)
    assert_same_bits(ps_roi_ops._cuda_ps_roi_align(x, rois, [2, 2], 0.8, 2, True).numpy(),
                     ps_roi_ops.ps_roi_align(x, rois, [2, 2], 0.8, 2, True).numpy())
    assert_same_bits(ps_roi_ops._cuda_ps_roi_pool(x, rois, [2, 2], 0.8, True).numpy(),
                     ps_roi_ops.ps_roi_pool(x, rois, [2, 2], 0.8, True).numpy())
