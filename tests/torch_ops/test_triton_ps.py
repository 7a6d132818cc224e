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


def test_kernels_compile_for_sm90_without_fma_or_approximate_division(monkeypatch):
    # No GPU needed: PTX for an H100 (the interpreter accepts code a GPU build may not),
    # checked for the rules of docs/arithmetic.md#one-rounding-per-operation: no
    # contraction, IEEE division.
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    from roiops.ps_roi_pool.conventions import BACKWARD, FORWARD
    from roiops.roi_align import conventions

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set for the whole process")
    for name in ("roiops._triton", "roiops.roi_align.cuda"):  # the helpers, compiled
        monkeypatch.setitem(sys.modules, name, _fresh(name))
    align, pool = _fresh("roiops.ps_roi_align.cuda"), _fresh("roiops.ps_roi_pool.cuda")
    sizes = {n: "i32" for n in ("channels", "height", "width", "pooled_h", "pooled_w")}
    strides = {n: "i32" for n in ("s_n", "s_c", "s_h", "s_w")}
    grad_strides = {n: "i32" for n in ("g_k", "g_c", "g_h", "g_w")}
    tables = {n: "*i64" for n in ("y_first_ptr", "y_count_ptr", "x_first_ptr", "x_count_ptr")}
    by_image = {"order_ptr": "*i64", "starts_ptr": "*i64"}
    planned = {"scale_bits": "i32", **tables, **sizes, "sampling_ratio": "i32"}
    geometry = conventions.TORCHVISION_ALIGNED.geometry  # ps_roi_align's only geometry
    switches = {"OFFSET": geometry.offset, "ADD_END": geometry.add_end,
                "END_EXTRA": geometry.end_extra, "MIN_SIZE": geometry.min_size,
                "GRID_FLOOR": geometry.grid_floor, "COUNT_PRODUCT": geometry.count_product,
                "FLOAT64": False}
    variants = [
        (align._forward_kernel, {"input_ptr": "*fp16", "rois_ptr": "*fp32", "index_ptr": "*i64",
                                 "out_ptr": "*fp16", **planned, **strides},
         {**switches, "BLOCK": 128}),
        (align._grad_input_kernel, {"grads_ptr": "*fp16", "rois_ptr": "*fp32", **by_image,
                                    "out_ptr": "*fp32", **planned, **grad_strides},
         {**switches, "BLOCK": 256}),
        (align._grad_boxes_kernel, {"grads_ptr": "*fp32", "input_ptr": "*fp16",
                                    "rois_ptr": "*fp32", "index_ptr": "*i64", "out_ptr": "*fp32",
                                    **planned, **grad_strides, **strides},
         {**switches, "BLOCK_C": 32}),
    ]
    for bins, kernel, signature in [
            (FORWARD, pool._forward_kernel, {"input_ptr": "*fp16", "rois_ptr": "*fp32",
                                             "index_ptr": "*i64", "out_ptr": "*fp16",
                                             "scale_bits": "i32", **sizes, **strides}),
            (BACKWARD, pool._grad_input_kernel, {"grads_ptr": "*fp16", "rois_ptr": "*fp32",
                                                 **by_image, "out_ptr": "*fp32",
                                                 "scale_bits": "i32", **sizes,
                                                 **grad_strides})]:
        variants.append((kernel, signature, {"END_LIMIT": bins.end_limit,
                                             "ROUND_IN_FLOAT32": bins.round_in_float32,
                                             "FLOAT64": False, "BLOCK": 128}))
    for kernel, signature, constexprs in variants:
        source = ASTSource(fn=kernel,
                           signature={**signature, **{k: "constexpr" for k in constexprs}},
                           constexprs=constexprs)
        ptx = compile(source, target=GPUTarget("cuda", 90, 32),
                      options={"enable_fp_fusion": False}).asm["ptx"]
        assert ".entry" in ptx and "fma." not in ptx, kernel.__name__
        assert "div.full" not in ptx and "div.approx" not in ptx, kernel.__name__
