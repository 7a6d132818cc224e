"""Rotated RoI Align on torch tensors: the custom ops (opcheck, gradcheck of the input and
the rois, compile, export), ``roiops.nn.RoIAlignRotated`` and the Triton kernels under the
interpreter (bit-identical to the CPU), compiled for sm_90 without FMA or approximate
division."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from exact import assert_same_bits  # noqa: E402

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
from roiops.torch import rotated_ops as ops  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings(  # raised inside torch by opcheck
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

# (batch, cx, cy, w, h, angle): degrees for detectron2, radians for mmcv
ROIS_DEGREES = [[0, 3.3, 2.6, 4.1, 3.2, 31.0], [1.5, 4.0, 3.0, 2.5, 5.0, -120.0],
                [0, 1.0, 1.0, 0.0, 2.0, 90.0], [1, 9.0, -3.0, 6.0, 6.0, 200.0]]
ROIS_RADIANS = [[0, 3.3, 2.6, 4.1, 3.2, 0.5], [1.5, 4.0, 3.0, 0.5, 5.0, -2.0],
                [0, 1.0, 1.0, 0.0, 2.0, 1.5707963], [1, 9.0, -3.0, 6.0, 6.0, 3.5]]
# output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention
OPTIONS = [([2, 3], 0.8, 0, True, False, "detectron2"), ([3, 2], 1.0, 2, False, True, "mmcv")]


def _input(dtype=torch.float64, seed=0, shape=(2, 3, 6, 7)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _rois(convention, dtype=torch.float64):
    return torch.tensor(ROIS_DEGREES if convention == "detectron2" else ROIS_RADIANS,
                        dtype=dtype)


def _cases():
    """(op, args) for opcheck; the gradients shaped as the forward's result ``[K, C, *size]``
    without running it (a call at collection compiles kernels in every pytest-xdist worker)."""
    cases = []
    for options in OPTIONS:
        input, rois = _input(), _rois(options[-1])
        grads = torch.randn((len(rois), input.shape[1], *options[0]), dtype=input.dtype,
                            generator=torch.Generator().manual_seed(1))
        cases += [
            (ops.roi_align_rotated, (input.clone().requires_grad_(),
                                     rois.clone().requires_grad_(), *options)),
            (ops.roi_align_rotated_grad_input, (grads, rois, list(input.shape), *options)),
            (ops.roi_align_rotated_grad_boxes, (grads, input, rois, *options)),
        ]
    cases.append((ops.roi_align_rotated, (_input(torch.float16).requires_grad_(),
                                          _rois("mmcv", torch.float16), *OPTIONS[1])))
    return cases


@pytest.mark.parametrize("op, args", _cases())
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("options", OPTIONS)
def test_gradcheck_of_input_and_rois(options):
    output_size, scale, ratio, aligned, clockwise, convention = options
    input = _input(shape=(2, 2, 6, 7)).requires_grad_()
    # rois away from pixel edges and the border, so the forward is smooth around them; batch
    # indices mid-way, so that perturbing them does not change the image
    rois = torch.tensor([[0.5, 3.3, 2.6, 2.9, 2.2, 31.0 if convention == "detectron2" else 0.5],
                         [1.5, 3.1, 3.4, 2.3, 2.7, -17.0 if convention == "detectron2" else -0.3]],
                        dtype=torch.float64, requires_grad=True)

    def f(x, r):
        return roiops.roi_align_rotated(x, r, output_size, spatial_scale=scale,
                                        sampling_ratio=ratio or 2, aligned=aligned,
                                        clockwise=clockwise, convention=convention)

    assert torch.autograd.gradcheck(f, (input, rois), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_tensors_equal_numpy(dtype):
    input, rois = _input(dtype), _rois("detectron2", dtype)
    out = roiops.roi_align_rotated(input, rois, (2, 3), spatial_scale=0.8)
    assert out.dtype == dtype

    def host(t):
        return t.float() if dtype == torch.bfloat16 else t

    expected = roiops.roi_align_rotated(host(input).numpy(), host(rois).numpy(), (2, 3),
                                        spatial_scale=0.8)
    if dtype == torch.bfloat16:
        expected = torch.from_numpy(expected).to(torch.bfloat16)
    assert_same_bits(out, expected)


def test_module_and_compile():
    pool = roiops.nn.RoIAlignRotated((2, 3), spatial_scale=0.8, sampling_ratio=2,
                                     convention="mmcv", clockwise=True)
    assert "clockwise=True" in repr(pool)
    input, rois = _input(torch.float32), _rois("mmcv", torch.float32)
    compiled = torch.compile(pool, fullgraph=True, backend="eager")
    assert_same_bits(compiled(input, rois), pool(input, rois))
    exported = torch.export.export(pool, (input, rois))
    assert_same_bits(exported.module()(input, rois), pool(input, rois))


def test_ops_check_their_own_arguments():
    input = _input(torch.float32)
    with pytest.raises(ValueError, match="rois must have shape"):
        ops.roi_align_rotated(input, torch.zeros(2, 5), [2, 2], 1.0, 0, True, False,
                              "detectron2")
    with pytest.raises(ValueError, match="aligned=False is an mmcv option"):
        ops.roi_align_rotated(input, torch.zeros(2, 6), [2, 2], 1.0, 0, False, False,
                              "detectron2")


def test_double_backward_raises():
    input = _input().requires_grad_()
    out = roiops.roi_align_rotated(input, _rois("detectron2").requires_grad_(), 2)
    (grad,) = torch.autograd.grad((out * out).sum(), input, create_graph=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        grad.sum().backward()


# --- Triton ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interpreted():
    """The CUDA entry points of the rotated ops running the interpreted kernels on CPU
    tensors (see tests/torch_ops/test_triton.py; the input gradient sums its records with
    roi_align's kernel, so both modules are interpreted)."""
    pytest.importorskip("triton")
    import sys

    from test_triton import _interpreted
    patch = pytest.MonkeyPatch()
    for name in ("roiops.roi_align.cuda", "roiops.roi_align_rotated.cuda"):
        module = _interpreted(name)
        patch.setitem(sys.modules, name, module)
        patch.setattr(sys.modules[name.rpartition(".")[0]], "cuda", module, raising=False)
    yield
    patch.undo()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # float16: float32's path
@pytest.mark.parametrize("options", OPTIONS)
def test_triton_matches_cpu(interpreted, options, dtype):
    input, rois = _input(dtype), _rois(options[-1], dtype)
    out = ops.roi_align_rotated(input, rois, *options)
    assert_same_bits(ops._cuda_roi_align_rotated(input, rois, *options), out)
    grads = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
    assert_same_bits(
        ops._cuda_roi_align_rotated_grad_input(grads, rois, list(input.shape), *options),
        ops.roi_align_rotated_grad_input(grads, rois, list(input.shape), *options))
    boxes = ops.roi_align_rotated_grad_boxes(grads, input, rois, *options)
    np.testing.assert_allclose(
        ops._cuda_roi_align_rotated_grad_boxes(grads, input, rois, *options).double(),
        boxes.double(), rtol=1e-5 if dtype == torch.float64 else 1e-2, atol=1e-3)


def test_triton_checks_run_before_launch(interpreted):
    input = _input(torch.float32)
    with pytest.raises(ValueError, match="rois batch index"):
        ops._cuda_roi_align_rotated(input, torch.tensor([[2.0, 1, 1, 1, 1, 0]]), [2, 2], 1.0,
                                    0, True, False, "detectron2")


def test_triton_kernels_compile_for_sm90_without_fma_or_approximate_division():
    import os

    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set for the whole process")
    from test_triton import _interpreted
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile
    module = _interpreted("roiops.roi_align_rotated.cuda", interpret=False)
    ints = {n: "i32" for n in ("channels", "height", "width", "pooled_h", "pooled_w")}
    strides = {n: "i32" for n in ("s_n", "s_c", "s_h", "s_w")}
    tables = {"geo_ptr": "*fp32", "grid_ptr": "*i64", "index_ptr": "*i64"}
    variants = [
        ("_forward_kernel", {"input_ptr": "*fp16", **tables, "out_ptr": "*fp16", **ints,
                             **strides}, {"COLUMNS": 11, "BLOCK_C": 4, "BLOCK_BINS": 64}),
        ("_records_kernel", {**tables, "offset_ptr": "*i64", "pixel_ptr": "*i32",
                             "weight_ptr": "*fp32", "bin_ptr": "*i32",
                             **{n: "i32" for n in ("height", "width", "pooled_h",
                                                   "pooled_w")}},
         {"COLUMNS": 11, "BLOCK_BINS": 64}),
        ("_grad_boxes_kernel", {"grads_ptr": "*fp32", "input_ptr": "*fp16", **tables,
                                "out_ptr": "*fp32", "scale_bits": "i32", "dtheta_bits": "i32",
                                **ints, **{n: "i32" for n in ("g_k", "g_c", "g_h", "g_w")},
                                **strides}, {"COLUMNS": 11, "FLOAT64": False, "BLOCK_C": 32}),
    ]
    for kernel, signature, constexprs in variants:
        source = ASTSource(fn=getattr(module, kernel),
                           signature={**signature, **{k: "constexpr" for k in constexprs}},
                           constexprs=constexprs)
        ptx = compile(source, target=GPUTarget("cuda", 90, 32),
                      options={"enable_fp_fusion": False}).asm["ptx"]
        assert "fma." not in ptx, kernel
        assert "div.full" not in ptx and "div.approx" not in ptx, kernel


def _modules():
    from roiops.compat import detectron2, mmcv
    return [detectron2.ROIAlignRotated((2, 2), 1 / 3, 1),
            mmcv.RoIAlignRotated(2, 0.5, 2, clockwise=True),
            roiops.nn.RoIAlignRotated(2, sampling_ratio=1, convention="mmcv", aligned=False)]


@pytest.mark.parametrize("index", range(3))
def test_modules_script_and_fx_trace(index):
    module = _modules()[index]
    input, rois = _input(torch.float32), _rois("mmcv", torch.float32)
    expected = module(input, rois)
    assert_same_bits(torch.jit.script(module)(input, rois), expected)
    traced = torch.fx.symbolic_trace(module)
    assert_same_bits(traced(input, rois), expected)
    assert roiops.roi_align_rotated in [node.target for node in traced.graph.nodes]


def test_functions_script():
    from roiops.compat import mmcv
    input, rois = _input(torch.float32), _rois("detectron2", torch.float32)
    scripted = torch.jit.script(roiops.roi_align_rotated)
    assert_same_bits(scripted(input, rois, 2, spatial_scale=0.5),
                     roiops.roi_align_rotated(input, rois, 2, spatial_scale=0.5))
    with pytest.raises(torch.jit.Error, match="float16 on the host"):
        torch.jit.script(mmcv.roi_align_rotated)(input.half(), rois.half(), 2, 1.0)
