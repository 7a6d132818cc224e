"""roi_pool on torch tensors: the custom ops (opcheck, autograd, compile, export), the native
functions, ``roiops.nn.RoIPool`` and ``roiops.compat.torchvision``'s tensors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exact import assert_same_bits  # noqa: E402

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
from roiops.compat import torchvision as tvc  # noqa: E402
from roiops.torch import roi_pool_ops as ops  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # raised inside torch by opcheck
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

ROIS = [[0, 0.5, 0.5, 4.2, 3.9], [1.5, 1, 0, 6, 5], [0, 5, 5, 1, 1], [1, -4, -4, -1, -1]]


def _input(dtype=torch.float32, seed=0):
    """Maps with ties (a few distinct values), so that the first maximum matters."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, (2, 3, 6, 7), generator=generator).to(dtype)


def _grad_input_args():
    out, argmax = ops.roi_pool(_input(), torch.tensor(ROIS), [2, 3], 0.8)
    grads = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return grads, argmax, torch.tensor(ROIS), [2, 3, 6, 7], False


# (op, a function making its arguments): made in the test, not at collection, where a call
# would compile kernels in every pytest-xdist worker
CASES = [
    (ops.roi_pool, lambda: (_input().requires_grad_(), torch.tensor(ROIS), [2, 3], 0.8, False)),
    (ops.roi_pool, lambda: (_input(torch.float16).requires_grad_(), torch.tensor(ROIS).half(),
                            [2, 2], 1.0, True)),
    (ops.roi_pool, lambda: (_input(torch.bfloat16).requires_grad_(), torch.tensor(ROIS), [3, 2],
                            0.5, False)),
    (ops.roi_pool_grad_input, _grad_input_args),
]


@pytest.mark.parametrize("op, make_args", CASES)
def test_opcheck(op, make_args):
    torch.library.opcheck(op, make_args())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_tensors_equal_numpy(dtype):
    input, rois = _input(dtype), torch.tensor(ROIS)
    out, argmax = roiops.roi_pool(input, rois, (2, 3), spatial_scale=0.8, return_argmax=True)
    assert out.dtype == dtype and argmax.dtype == torch.int32
    host = input.float() if dtype == torch.bfloat16 else input
    expected, expected_argmax = roiops.roi_pool(host.numpy(), rois.numpy(), (2, 3),
                                                spatial_scale=0.8, return_argmax=True)
    assert_same_bits(out.float() if dtype == torch.bfloat16 else out, expected)
    np.testing.assert_array_equal(argmax.numpy(), expected_argmax)


def test_autograd_equals_the_gradient_function_and_rois_get_none():
    input = _input(torch.float64).requires_grad_()
    rois = torch.tensor(ROIS, dtype=torch.float64, requires_grad=True)
    out, argmax = roiops.roi_pool(input, rois, 2, return_argmax=True)
    grads = torch.randn(out.shape, dtype=torch.float64)
    out.backward(grads)
    assert rois.grad is None and not argmax.requires_grad
    assert_same_bits(input.grad, roiops.roi_pool_grad_input(grads, argmax, rois, input.shape))
    # maps without ties: roi_pool is locally linear in its input
    smooth = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: roiops.roi_pool(x, rois.detach(), 2), (smooth,))


def test_double_backward_raises():
    input = _input().requires_grad_()
    out = roiops.roi_pool(input, torch.tensor(ROIS), 2)
    (grad,) = torch.autograd.grad(out.square().sum(), input, create_graph=True)
    with pytest.raises(RuntimeError, match="roiops::roi_pool_grad_input is not differentiable"):
        grad.sum().backward()


def test_compile_fullgraph_and_export():
    torch._dynamo.reset()
    pool = roiops.nn.RoIPool((2, 3), spatial_scale=0.8)
    compiled = torch.compile(pool, backend="aot_eager", fullgraph=True, dynamic=True)
    rois = torch.tensor(ROIS)
    for k in (4, 2):
        input = _input().requires_grad_()
        expected = pool(input, rois[:k])
        got = compiled(input, rois[:k])
        assert_same_bits(got, expected)
    exported = torch.export.export(pool, (_input(), rois))
    assert "roiops.roi_pool" in str(exported.graph)
    assert_same_bits(exported.module()(_input(), rois), pool(_input(), rois))


def test_module_and_compat_module():
    pool = roiops.nn.RoIPool(2, 0.5)
    assert repr(pool) == "RoIPool(output_size=(2, 2), spatial_scale=0.5)"
    compat = tvc.RoIPool(output_size=2, spatial_scale=0.5)
    assert isinstance(compat, torch.nn.Module)
    input, rois = _input(), torch.tensor(ROIS)
    assert_same_bits(compat(input, rois), pool(input, rois))
    with pytest.raises(ValueError, match="output_size must be an int or two positive"):
        roiops.nn.RoIPool(0)


def test_compat_tensors_list_boxes_float16_and_dtype_rule():
    input = _input(torch.float16).requires_grad_()
    rois = np.array([[0, 1.25, 1.25, 10.5, 9.75], [1, 2.5, 0, 15, 12.5]], np.float16)
    # float32 boxes, one list entry per image; 0.3 is not a half: rounded as torchvision does
    boxes = [torch.from_numpy(rois[i:i + 1, 1:]).float() for i in range(2)]
    out = tvc.roi_pool(input, boxes, 2, 0.3)
    assert_same_bits(out, tvc.roi_pool(input.detach().numpy(), rois, 2, 0.3))
    grads = torch.randn(out.shape).half()
    out.backward(grads)
    _, argmax = ops.roi_pool(input.detach(), torch.from_numpy(rois), [2, 2], 0.3, True)
    assert_same_bits(input.grad, tvc.roi_pool_backward(grads.numpy(), rois, argmax.numpy(),
                                                       input.shape))
    with pytest.raises(TypeError, match="input must have dtype in"):
        tvc.roi_pool(input.detach().bfloat16(), boxes, 2)


def test_autocast_runs_half_tensors_in_float32():
    input, rois = _input(torch.float16).requires_grad_(), torch.tensor(ROIS).half() * 1.3
    with torch.autocast("cpu", dtype=torch.float16):
        out, argmax = ops.roi_pool(input, rois, [2, 3], 0.3, True)  # half arithmetic unused
    expected, expected_argmax = ops.roi_pool(input.detach().float(), rois.float(), [2, 3], 0.3)
    assert out.dtype == torch.float16
    assert_same_bits(out, expected.half())
    assert torch.equal(argmax, expected_argmax)
    out.sum().backward()
    assert input.grad.dtype == torch.float16


def test_op_checks_its_arguments():
    with pytest.raises(ValueError, match="argmax must hold -1 or a flat index"):
        ops.roi_pool_grad_input(torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 99,
                                                                  dtype=torch.int32),
                                torch.tensor([ROIS[0]]), [1, 1, 3, 3])
    with pytest.raises(ValueError, match="rois must be finite, row 0"):
        roiops.roi_pool(_input(), torch.tensor([[0, float("nan"), 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match="out is supported for NumPy arrays only"):
        roiops.roi_pool(_input(), torch.tensor(ROIS), 2, out=torch.empty(4, 3, 2, 2))


# --- the Triton kernels under the interpreter, against the CPU op -------------------------

@pytest.fixture(scope="module")
def interpreted():
    """``roiops.roi_pool.cuda`` with its kernels running under the Triton interpreter (see
    tests/torch_ops/test_triton.py, whose loader this uses)."""
    pytest.importorskip("triton")
    import sys

    from test_triton import _interpreted
    patch = pytest.MonkeyPatch()
    module = _interpreted("roiops.roi_pool.cuda")
    patch.setitem(sys.modules, "roiops.roi_pool.cuda", module)
    patch.setattr(sys.modules["roiops.roi_pool"], "cuda", module, raising=False)
    yield
    patch.undo()


@pytest.mark.parametrize("dtype, half", [(torch.float32, False), (torch.float64, False),
                                         (torch.float16, True), (torch.bfloat16, False)])
def test_triton_kernels_match_cpu(interpreted, dtype, half):
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.integers(-3, 4, (2, 3, 7, 6)).astype(np.float64)).to(dtype)
    x[0, 1, 2, :] = float("nan")
    x[1, 2, :, 3] = float("-inf")
    x = x.contiguous(memory_format=torch.channels_last)  # strides are honoured
    rois = np.concatenate([rng.integers(0, 2, (6, 1)) + 0.5, rng.uniform(-4, 12, (6, 4))], 1)
    rois[5, 1:] = [6e4, 1, 6.5e4, 3] if half else [3e9, 1, 4e9, 3]  # beyond the map, int32
    rois = torch.from_numpy(rois).to(dtype if half or dtype == torch.float64 else torch.float32)
    args = ([2, 3], 0.7, half)
    expected = ops.roi_pool(x, rois, *args)
    actual = ops._cuda_roi_pool(x, rois, *args)
    assert_same_bits(actual[0], expected[0])
    assert torch.equal(actual[1], expected[1])
    grads = torch.from_numpy(rng.standard_normal(expected[0].shape)).to(dtype)
    shape = list(x.shape)
    assert_same_bits(ops._cuda_roi_pool_grad_input(grads, expected[1], rois, shape, half),
                     ops.roi_pool_grad_input(grads, expected[1], rois, shape, half))


def test_triton_checks_run_before_launch(interpreted):
    x, rois = _input(), torch.tensor(ROIS)
    with pytest.raises(ValueError, match="rois batch index must be in"):
        ops._cuda_roi_pool(x, rois + torch.tensor([5.0, 0, 0, 0, 0]), [2, 2])
    bad = torch.full((4, 3, 2, 2), 42, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"argmax must hold -1 or a flat index into a plane"):
        ops._cuda_roi_pool_grad_input(torch.ones(4, 3, 2, 2), bad, rois, [2, 3, 6, 7])


def test_triton_kernels_compile_for_sm90_without_fma_or_approximate_division():
    # No GPU needed: PTX for an H100, checked for the arithmetic rules of the kernels.
    pytest.importorskip("triton")
    import os

    from test_triton import _interpreted
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set for the whole process")
    module = _interpreted("roiops.roi_pool.cuda", interpret=False)
    ints = ["channels", "height", "width", "pooled_h", "pooled_w", "s_n", "s_c", "s_h", "s_w"]
    variants = [("_forward_kernel", {"input_ptr": "*fp16", "rois_ptr": "*fp32",
                                     "index_ptr": "*i64", "out_ptr": "*fp16",
                                     "argmax_ptr": "*i32", "scale_bits": "i32",
                                     **{n: "i32" for n in ints}},
                 {"HALF": half, "FLOAT64": False, "BLOCK_C": 64}) for half in (False, True)]
    variants.append(("_sum_records_kernel", {"start_ptr": "*i64", "order_ptr": "*i64",
                                             "grads_ptr": "*fp32", "out_ptr": "*fp32",
                                             "elements": "i32"},
                     {"HALF": True, "BLOCK": 256}))
    for kernel, signature, constexprs in variants:
        source = ASTSource(fn=getattr(module, kernel),
                           signature={**signature, **{k: "constexpr" for k in constexprs}},
                           constexprs=constexprs)
        ptx = compile(source, target=GPUTarget("cuda", 90, 32),
                      options={"enable_fp_fusion": False}).asm["ptx"]
        assert "fma." not in ptx, (kernel, constexprs)
        assert "div.full" not in ptx and "div.approx" not in ptx, (kernel, constexprs)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_modules_and_functions_script_and_fx_trace():
    input, rois = _input(), torch.tensor(ROIS)
    boxes = [rois[:1, 1:], rois[1:2, 1:]]
    for module, args in ((roiops.nn.RoIPool((2, 3), 0.8), (input, rois)),
                         (tvc.RoIPool(2, 1.0), (input, boxes)),
                         (tvc.RoIPool(2, 1.0), (input.half(), rois.half()))):
        expected = module(*args)
        assert_same_bits(torch.jit.script(module)(*args), expected)
        traced = torch.fx.symbolic_trace(module)
        assert sum(node.op == "call_function" for node in traced.graph.nodes) == 1
        assert_same_bits(traced(*args), expected)
    scripted = torch.jit.script(roiops.roi_pool)
    assert_same_bits(scripted(input, rois, 2, spatial_scale=0.5),
                     roiops.roi_pool(input, rois, 2, spatial_scale=0.5))
    with pytest.raises((RuntimeError, torch.jit.Error), match="return_argmax=True"):
        scripted(input, rois, 2, return_argmax=True)
    assert_same_bits(torch.jit.script(tvc.roi_pool)(input, boxes, [2, 2], 0.5),
                     tvc.roi_pool(input, boxes, [2, 2], 0.5))
