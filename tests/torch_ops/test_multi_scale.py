"""Multi-scale RoI Align on tensors: opcheck of the three ops, gradcheck (every level and the
box coordinates), torch.compile, the tensor level mapper, the compat module on tensors."""
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import roiops  # noqa: E402
from roiops.compat.torchvision import MultiScaleRoIAlign  # noqa: E402
from roiops.multi_scale_roi_align import api  # noqa: E402
from roiops.torch import multi_scale_ops as ops  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # raised inside torch by opcheck
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

SCALES = [1 / 4, 1 / 8]
ROIS = [[0, 1.5, 2.0, 20.0, 28.5], [1, 3.0, 4.0, 60.0, 50.0], [1, 9.0, 7.0, 2.0, 11.0],
        [0, 0.5, 0.5, 30.5, 40.0]]
LEVELS = [0, 1, -1, 1]


def pyramid(dtype=torch.float64, requires_grad=False):
    generator = torch.Generator().manual_seed(16)
    return [torch.randn(2, 3, 16 // s, 20 // s, dtype=dtype, generator=generator,
                        requires_grad=requires_grad) for s in (1, 2)]


def _op_cases():
    features = pyramid(requires_grad=True)
    rois = torch.tensor(ROIS, dtype=torch.float64, requires_grad=True)
    levels = torch.tensor(LEVELS)
    grads = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    shapes = [d for f in features for d in f.shape]
    plain = [f.detach() for f in features]  # the gradient ops are not differentiable
    return [
        (ops.multi_scale_roi_align, (features, rois, levels, SCALES, [2, 2], 2, False, False)),
        (ops.multi_scale_roi_align, (features, rois, levels, SCALES, [2, 2], -1, True, False)),
        (ops.multi_scale_roi_align_grad_input,
         (grads, rois.detach(), levels, shapes, SCALES, [2, 2], 2, False, False)),
        (ops.multi_scale_roi_align_grad_boxes,
         (grads, plain, rois.detach(), levels, SCALES, [2, 2], 2, False)),
    ]


@pytest.mark.parametrize("op, args", _op_cases())
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


def test_gradcheck_every_level_and_the_box_coordinates():
    features = pyramid(requires_grad=True)
    batch = torch.tensor(ROIS, dtype=torch.float64)[:, :1]
    coordinates = torch.tensor(ROIS, dtype=torch.float64)[:, 1:].requires_grad_()
    levels = torch.tensor(LEVELS)

    def pool(p2, p3, boxes):
        return roiops.multi_scale_roi_align([p2, p3], torch.cat([batch, boxes], 1), 2, SCALES,
                                            sampling_ratio=2, levels=levels)
    assert torch.autograd.gradcheck(pool, (*features, coordinates), eps=1e-6, atol=1e-6)


def test_tensors_equal_numpy_and_the_level_mapper_agrees():
    features = pyramid(torch.float32)
    rois = torch.tensor(ROIS + [[0, 0, 0, 224, 224]], dtype=torch.float32)
    out = roiops.multi_scale_roi_align(features, rois, (2, 3), SCALES, sampling_ratio=2)
    expected = roiops.multi_scale_roi_align([f.numpy() for f in features], rois.numpy(), (2, 3),
                                            SCALES, sampling_ratio=2)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(ops._levels(rois, None, SCALES, 224, 4).numpy(),
                                  api.numpy_levels(rois.numpy(), SCALES, 224, 4))


def _loss(p2, p3, rois):
    return roiops.multi_scale_roi_align([p2, p3], rois, 2, SCALES, sampling_ratio=2).square().sum()


def test_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    compiled = torch.compile(_loss, backend="aot_eager", fullgraph=True)
    results = []
    for fn in (compiled, _loss):
        args = [*pyramid(torch.float32, requires_grad=True),
                torch.tensor(ROIS, requires_grad=True)]
        loss = fn(*args)
        loss.backward()
        results.append([loss.detach()] + [a.grad for a in args])
    for actual, expected in zip(*results):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_compat_module_on_tensors_and_arrays():
    pool = MultiScaleRoIAlign(["p2", "p3"], 2, 2)
    assert isinstance(pool, torch.nn.Module)
    features = pyramid(torch.float32)
    x = OrderedDict(p2=features[0], extra=features[1][:, :1], p3=features[1])
    boxes = [torch.tensor([[1.5, 2.0, 20.0, 28.5], [0, 0, 60, 70]]),
             torch.tensor([[3.0, 4.0, 60.0, 50.0]])]
    out = pool(x, boxes, [(64, 80), (60, 70)])
    assert pool.scales == SCALES
    again = MultiScaleRoIAlign(["p2", "p3"], 2, 2)(
        OrderedDict((k, v.numpy()) for k, v in x.items()), [b.numpy() for b in boxes],
        [(64, 80), (60, 70)])
    np.testing.assert_array_equal(out.numpy(), again)
    assert "featmap_names=['p2', 'p3']" in repr(pool)


def test_compat_errors_name_the_argument():
    pool = MultiScaleRoIAlign(["p2"], 2, 2)
    with pytest.raises(ValueError, match="featmap_names"):
        pool({"other": pyramid()[0]}, [torch.zeros(1, 4)], [(64, 80)])
    with pytest.raises(ValueError, match="image_shapes"):
        pool({"p2": pyramid()[0]}, [torch.zeros(1, 4)], [])


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = MultiScaleRoIAlign(["p2", "p3"], 2, 2)

    def forward(self, p2, p3, boxes):
        return self.pool({"p2": p2, "p3": p3}, [boxes], [(64, 80)]) * 2


def test_fx_symbolic_trace_keeps_the_module_as_one_call():
    traced = torch.fx.symbolic_trace(_Head())
    calls = [n for n in traced.graph.nodes if n.op == "call_module"]
    assert [n.target for n in calls] == ["pool"]
    features = pyramid(torch.float32)
    boxes = torch.tensor([[1.5, 2.0, 20.0, 28.5], [0, 0, 60, 70]])
    torch.testing.assert_close(traced(*features, boxes), _Head()(*features, boxes),
                               rtol=0, atol=0)


def _fresh(name):
    """A new copy of module ``name``, executed now (its decorators read TRITON_INTERPRET)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernels_compile_for_sm90_without_fma_or_approximate_division(monkeypatch):
    # No GPU needed: PTX for an H100, checked for the rules of
    # docs/arithmetic.md#one-rounding-per-operation (no contraction, IEEE division).
    import os
    import sys

    pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    from roiops.roi_align import conventions

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set for the whole process")
    for name in ("roiops._triton", "roiops.roi_align.cuda"):
        monkeypatch.setitem(sys.modules, name, _fresh(name))
    kernels = _fresh("roiops.multi_scale_roi_align.cuda")
    ints = {n: "i32" for n in ("pooled_h", "pooled_w", "sampling_ratio")}
    per_roi = {"scale_ptr": "*fp32", "height_ptr": "*i64", "width_ptr": "*i64"}
    tables = {n: "*i64" for n in ("y_first_ptr", "y_count_ptr", "x_first_ptr", "x_count_ptr")}
    variants = [
        ("_plan_kernel", {"rois_ptr": "*fp32", **per_roi, **tables, "divisor_ptr": "*fp32",
                          **ints}, {"BLOCK_P": 8}),
        ("_forward_kernel", {"flat_ptr": "*fp16", "rois_ptr": "*fp32", "index_ptr": "*i64",
                             "out_ptr": "*fp32", **per_roi, "base_ptr": "*i64", **tables,
                             "channels": "i32", **ints}, {"BLOCK_C": 4, "BLOCK_BINS": 64}),
        ("_records_kernel", {"rois_ptr": "*fp32", "index_ptr": "*i64", **per_roi,
                             "pixel_base_ptr": "*i64", **tables, "offset_ptr": "*i64",
                             "pixel_ptr": "*i64", "weight_ptr": "*fp32", "bin_ptr": "*i64",
                             **ints}, {"BLOCK_BINS": 64}),
    ]
    for convention in (conventions.TORCHVISION, conventions.TORCHVISION_ALIGNED):
        geometry = convention.geometry
        switches = {"OFFSET": geometry.offset, "ADD_END": geometry.add_end,
                    "END_EXTRA": geometry.end_extra, "MIN_SIZE": geometry.min_size,
                    "GRID_FLOOR": geometry.grid_floor, "COUNT_PRODUCT": geometry.count_product}
        for kernel, signature, blocks in variants:
            constexprs = {**switches, **blocks}
            source = ASTSource(fn=getattr(kernels, kernel),
                               signature={**signature, **{k: "constexpr" for k in constexprs}},
                               constexprs=constexprs)
            ptx = compile(source, target=GPUTarget("cuda", 90, 32),
                          options={"enable_fp_fusion": False}).asm["ptx"]
            assert ".entry" in ptx and "fma." not in ptx, kernel
            assert "div.full" not in ptx and "div.approx" not in ptx, kernel


@pytest.fixture(scope="module")
def interpreted():
    """The CUDA entry points running the Triton kernels under the interpreter on CPU tensors:
    private copies of roiops._triton, roi_align's kernels (whose helpers the multi-scale
    kernels call) and the multi-scale kernels, loaded with TRITON_INTERPRET=1."""
    pytest.importorskip("triton")
    import os
    import sys

    patch = pytest.MonkeyPatch()
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"  # read when each module's kernels are decorated
    try:
        for name in ("roiops._triton", "roiops.roi_align.cuda",
                     "roiops.multi_scale_roi_align.cuda"):
            module = _fresh(name)
            patch.setitem(sys.modules, name, module)
            package, _, attribute = name.rpartition(".")
            patch.setattr(sys.modules[package], attribute, module, raising=False)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    kernel = sys.modules["roiops.multi_scale_roi_align.cuda"]._forward_kernel
    assert type(kernel).__name__ == "InterpretedFunction"
    yield
    patch.undo()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_triton_kernels_equal_the_cpu(interpreted, dtype, sampling_ratio):
    features = pyramid(dtype)
    rois = torch.tensor(ROIS, dtype=dtype)
    levels = torch.tensor(LEVELS)
    args = (features, rois, levels, SCALES, [2, 3], sampling_ratio, False, False)
    expected = ops.multi_scale_roi_align(*args)
    assert torch.equal(ops._cuda_multi_scale_roi_align(*args), expected)
    grads = torch.randn(expected.shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    shapes = [d for f in features for d in f.shape]
    grad_args = (grads, rois, levels, shapes, SCALES, [2, 3], sampling_ratio, False, False)
    for got, want in zip(ops._cuda_multi_scale_roi_align_grad_input(*grad_args),
                         ops.multi_scale_roi_align_grad_input(*grad_args)):
        assert got.is_contiguous() and torch.equal(got, want)


def test_torch_jit_script_gives_the_modules_bits():
    pool = MultiScaleRoIAlign(["p2", "p3"], (2, 3), -1, canonical_scale=112, canonical_level=3)
    scripted = torch.jit.script(pool)
    features = pyramid(torch.float32)
    x = OrderedDict(p3=features[1], p2=features[0])
    boxes = [torch.tensor([[1.5, 2.0, 20.0, 28.5], [9.0, 7.0, 2.0, 11.0]]),
             torch.tensor([[3.0, 4.0, 60.0, 50.0]])]
    expected = pool(x, boxes, [(64, 80), (60, 70)])
    torch.testing.assert_close(scripted(x, boxes, [(64, 80), (60, 70)]), expected,
                               rtol=0, atol=0)
    assert scripted.scales == pool.scales == [0.125, 0.25]


def test_a_roi_on_a_level_without_a_map_is_zero_in_eager_and_scripted_modules():
    # scales 1/4 and 1/16: the mapper's level 3 reads the second map, its level 4 none
    pool = MultiScaleRoIAlign(["p2", "p4"], 2, 2)
    features = pyramid(torch.float32)
    x = OrderedDict(p2=features[0], p4=features[1][:, :, ::2, ::2].contiguous())
    boxes = [torch.tensor([[0, 0, 20.0, 20], [0, 0, 150, 150], [0, 0, 300, 300]])]
    out = pool(x, boxes, [(64, 80)])
    assert pool.scales == [0.25, 0.0625]
    assert out[0].any() and out[1].any() and not out[2].any()
    scripted = torch.jit.script(MultiScaleRoIAlign(["p2", "p4"], 2, 2))
    torch.testing.assert_close(scripted(x, boxes, [(64, 80)]), out, rtol=0, atol=0)


@pytest.mark.parametrize("moved", ["rois", "levels", "grads"])
def test_arguments_on_another_device_are_refused(moved):
    features, levels = pyramid(), torch.tensor(LEVELS)
    rois = torch.tensor(ROIS, dtype=torch.float64)
    grads = torch.zeros(4, 3, 2, 2, dtype=torch.float64)
    if moved == "rois":
        rois = rois.to("meta")
    elif moved == "levels":
        levels = levels.to("meta")
    else:
        grads = grads.to("meta")
    calls = [lambda: roiops.multi_scale_roi_align_grad_boxes(grads, features, rois, levels, 2,
                                                             SCALES),
             lambda: roiops.multi_scale_roi_align_grad_input(
                 grads, rois, levels, [tuple(f.shape) for f in features], 2, SCALES)]
    if moved != "grads":
        calls.append(lambda: roiops.multi_scale_roi_align(features, rois, 2, SCALES,
                                                          levels=levels))
    for call in calls:
        with pytest.raises(ValueError, match=f"tensors must be on one device, .*{moved} on meta"):
            call()
