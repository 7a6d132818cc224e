"""ONNX round trips (roiops.torch.onnx, docs/onnx.md): models calling the roiops operators are
exported with ``torch.onnx.export`` (dynamo and TorchScript exporters), run in ONNX Runtime
(CPU) and compared with roiops.

Each export has a dynamic number of boxes and is run on several inputs, zero boxes included.
What holds, per case (docs/onnx.md#accuracy says why):

* crop_and_resize, every method/layout/dtype exported: bit for bit (the graph performs TF's
  operations in TF's order, MindSpore's for bilinear_v2; ONNX Runtime rounds each elementwise
  operator separately).
* roi_align, torchvision convention, float32/float64 (any scale, aligned or not, fixed or
  adaptive grid, reversed boxes): bit for bit. ONNX Runtime's RoiAlign samples and sums as
  torchvision's CPU kernel does; the export feeds it the boxes already scaled (its scale
  attribute is a float32) and keeps its adaptive grid away from reversed aligned boxes.
* float16 and bfloat16 inputs: bit for bit (computed in float32 and rounded once, as roiops
  does; ONNX Runtime's Casts round to nearest even as torch's do).
* MindSpore convention, roi_end_mode 0: bit for bit; roi_end_mode 1: bit for bit on boxes
  whose scaled edges keep their bits through ``+ 0.5 - 0.5`` (quarter pixels here), within
  1e-5 on random boxes (values in [0, 1), scaled edges below 20: a few float32 ulps of the
  coordinates, 2e-6 each, times the map's slope, at most 1 per pixel; 7.5e-7 measured).
"""
import doctest
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from exact import assert_same_bits  # noqa: E402

import roiops  # noqa: E402
import roiops.nn  # noqa: E402
import roiops.torch.onnx as roiops_onnx  # noqa: E402
from roiops.compat import tensorflow as tf_compat  # noqa: E402
from roiops.compat import torchvision as tv_compat  # noqa: E402

BOXES = torch.export.Dim("boxes", min=0)

pytestmark = [
    # torch's notes on a valid export: boxes and box_indices share the dynamic dim; the
    # TorchScript tracer sees roiops's shape checks (they are not part of the graph).
    pytest.mark.filterwarnings("ignore:# The axis name:UserWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]


class Calls(torch.nn.Module):
    """A module returning ``fn(*inputs)`` (a tuple of outputs); its dynamic shapes are one
    tuple, for ``*inputs``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def _session(model_bytes):
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def export_dynamo(model, args, boxed, optimize=True):
    """The dynamo export of ``model`` with dim 0 of the inputs ``boxed`` (their indices)
    dynamic, as an ONNX Runtime session. ``optimize`` (the exporter's default) runs
    onnxscript's optimizer, two thirds of the export's time."""
    dynamic = tuple({0: BOXES} if i in boxed else {} for i in range(len(args)))
    program = torch.onnx.export(model.eval(), args, dynamo=True, dynamic_shapes=(dynamic,),
                                custom_translation_table=roiops_onnx.translation_table(),
                                verbose=False, optimize=optimize)
    return _session(program.model_proto.SerializeToString())


def export_torchscript(model, args, boxed, path):
    names = [f"input{i}" for i in range(len(args))]
    with pytest.warns(DeprecationWarning):  # torch's own notice: the exporter is legacy
        torch.onnx.export(model.eval(), args, str(path), dynamo=False,
                          opset_version=roiops_onnx.OPSET, input_names=names,
                          dynamic_axes={names[i]: {0: "boxes"} for i in boxed})
    return _session(str(path))


def run(session, *inputs):
    feeds = {arg.name: value.numpy() for arg, value in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)


def random_rois(rng, count, batch, extent, dtype, quarter=False):
    """``[count, 5]`` rois over ``[-4, extent]``: reversed, empty and outside boxes included."""
    edges = rng.uniform(-4, extent, (count, 4))
    if quarter:
        edges = np.round(edges * 4) / 4
    if count:
        edges[0, 2] = edges[0, 0]  # an empty axis
    index = rng.integers(0, batch, (count, 1))
    return torch.from_numpy(np.concatenate([index, edges], axis=1)).to(dtype)


def assert_all_same_bits(actual, expected):
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_same_bits(a, e, f"output {i}")


# --- roi_align -----------------------------------------------------------------------------

def torchvision_variants(input, rois):
    """aligned x (fixed, adaptive grid), with a scale that float32 cannot hold exactly."""
    return tuple(roiops.roi_align(input, rois, (3, 4), spatial_scale=1 / 3, sampling_ratio=ratio,
                                  aligned=aligned)
                 for aligned in (False, True) for ratio in (2, 0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_roi_align_torchvision_bit_exact(dtype):
    rng = np.random.default_rng(0)
    input = torch.from_numpy(rng.random((2, 3, 11, 13))).to(dtype)
    model = Calls(torchvision_variants)
    session = export_dynamo(model, (input, random_rois(rng, 4, 2, 40, dtype)), boxed={1})
    for count in (9, 1, 0):
        rois = random_rois(rng, count, 2, 40, dtype)
        assert_all_same_bits(run(session, input, rois), model(input, rois))


def test_roi_align_bfloat16_inside_a_model():
    # ONNX Runtime's Python API takes no bfloat16 arrays: the model casts from and to float32
    # around roi_align, so the graph holds the bfloat16 Casts of torch's rounding.
    def calls(input, rois):
        return tuple(result.float() for result in torchvision_variants(input.bfloat16(),
                                                                       rois.bfloat16()))

    rng = np.random.default_rng(7)
    input = torch.from_numpy(rng.random((2, 3, 11, 13), dtype=np.float32))
    model = Calls(calls)
    session = export_dynamo(model, (input, random_rois(rng, 4, 2, 40, torch.float32)),
                            boxed={1})
    for count in (9, 0):
        rois = random_rois(rng, count, 2, 40, torch.float32)
        assert_all_same_bits(run(session, input, rois), model(input, rois))


def test_roi_align_batch_index_is_read_before_the_cast_to_the_compute_type():
    # 0.99999999 truncates to image 0; as float32 (the input's compute type) it would be 1.0.
    input = torch.rand(2, 2, 6, 6)
    rois = torch.tensor([[0.99999999, 0, 0, 4, 4], [1.5, 1, 1, 5, 5]], dtype=torch.float64)
    model = Calls(lambda x, r: roiops.roi_align(x, r, 2, sampling_ratio=1))
    session = export_dynamo(model, (input, rois), boxed={1})
    assert_same_bits(run(session, input, rois)[0], model(input, rois))


def test_roi_align_reversed_aligned_boxes_with_adaptive_grid_give_zeros():
    # ONNX Runtime alone fails on these (a negative sample count); the export clamps them.
    input = torch.rand(1, 2, 6, 6)
    rois = torch.tensor([[0, 4.0, 1, 1, 4], [0, 1, 4, 4, 1], [0, 4, 4, 1, 1]])
    model = Calls(lambda x, r: roiops.roi_align(x, r, 2, sampling_ratio=0, aligned=True))
    session = export_dynamo(model, (input, rois), boxed={1})
    (result,) = run(session, input, rois)
    assert_same_bits(result, model(input, rois))
    assert not result.any()


def test_roi_align_modules_and_torchvision_compat():
    rng = np.random.default_rng(1)
    input = torch.from_numpy(rng.random((2, 4, 12, 10), dtype=np.float32))
    native = roiops.nn.RoIAlign((2, 3), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    compat = tv_compat.RoIAlign(3, spatial_scale=0.25, sampling_ratio=-1)

    def calls(x, rois):
        return (native(x, rois), compat(x, rois),
                tv_compat.roi_align(x, rois.double(), (2, 2), 1.0, 1, True))

    model = Calls(calls)
    session = export_dynamo(model, (input, random_rois(rng, 3, 2, 30, torch.float32)),
                            boxed={1})
    for count in (5, 0):
        rois = random_rois(rng, count, 2, 30, torch.float32)
        assert_all_same_bits(run(session, input, rois), model(input, rois))


MINDSPORE_MODULE = roiops.nn.MindSporeROIAlign(2, 3, 0.25, sample_num=1, roi_end_mode=0)


def mindspore_variants(input, rois):
    """roi_end_mode 0 (the native op, MindSpore's module), roi_end_mode 1 last."""
    return (roiops.roi_align(input, rois, (3, 2), spatial_scale=0.5, sampling_ratio=2,
                             convention="mindspore", roi_end_mode=0),
            MINDSPORE_MODULE(input, rois),
            roiops.roi_align(input, rois, (3, 2), spatial_scale=0.5, sampling_ratio=2,
                             convention="mindspore", roi_end_mode=1))


def test_roi_align_mindspore():
    rng = np.random.default_rng(2)
    input = torch.from_numpy(rng.random((2, 3, 16, 16), dtype=np.float32))
    model = Calls(mindspore_variants)
    session = export_dynamo(model, (input, random_rois(rng, 2, 2, 40, torch.float32)),
                            boxed={1})
    rois = random_rois(rng, 40, 2, 40, torch.float32, quarter=True)
    assert_all_same_bits(run(session, input, rois), model(input, rois))
    rois = random_rois(rng, 40, 2, 40, torch.float32)
    *mode_0, mode_1 = run(session, input, rois)
    *expected_0, expected_1 = model(input, rois)
    assert_all_same_bits(mode_0, expected_0)
    np.testing.assert_allclose(mode_1, expected_1.numpy(), rtol=0, atol=1e-5)
    assert run(session, input, rois[:0])[2].shape == (0, 3, 3, 2)


def test_roi_align_mindspore_adaptive_grid_is_refused_at_export():
    model = Calls(lambda x, r: roiops.roi_align(x, r, 2, sampling_ratio=0,
                                                convention="mindspore"))
    with pytest.raises(Exception, match="convention='mindspore' and sampling_ratio=0") as info:
        export_dynamo(model, (torch.rand(1, 1, 4, 4), torch.tensor([[0, 0, 0, 2, 2.0]])),
                      boxed={1})
    assert "floor" in str(info.value)


# --- crop_and_resize -----------------------------------------------------------------------

def crop_variants(image, boxes, box_indices):
    """Every method, both layouts, a crop size of 1, an extrapolation value."""
    nchw = image.permute(0, 3, 1, 2)
    return (
        roiops.crop_and_resize(image, boxes, box_indices, (5, 7)),
        roiops.crop_and_resize(image, boxes, box_indices, (4, 3), method="nearest",
                               extrapolation_value=-2.5),
        roiops.crop_and_resize(image, boxes, box_indices, (1, 1), extrapolation_value=7.0),
        roiops.crop_and_resize(nchw, boxes, box_indices, (1, 4), method="nearest",
                               data_format="NCHW"),
        roiops.crop_and_resize(nchw, boxes, box_indices, (6, 2), extrapolation_value=0.5,
                               data_format="NCHW"),
        roiops.crop_and_resize(image, boxes, box_indices, (5, 3), method="bilinear_v2"),
        roiops.crop_and_resize(nchw, boxes, box_indices, (1, 4), method="bilinear_v2",
                               data_format="NCHW"),
    )


EXTREME_BOXES = [[-3e38, 0.2, 3e38, 0.9],  # coordinates overflow to inf and NaN
                 [0.5, 0.5, 0.5, 0.5], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]


def random_boxes(rng, count, batch, extreme=False):
    """Normalized boxes over [-0.3, 1.3]: flipped and partly outside ones included; with
    ``extreme``, ``EXTREME_BOXES`` first."""
    boxes = rng.uniform(-0.3, 1.3, (count, 4))
    if extreme:
        boxes = np.concatenate([EXTREME_BOXES, boxes])
    boxes = torch.from_numpy(boxes.astype(np.float32))
    return boxes, torch.from_numpy(rng.integers(0, batch, len(boxes)).astype(np.int32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.uint8])
def test_crop_and_resize_bit_exact(dtype):
    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.uniform(-100, 200, (2, 9, 12, 3))).to(dtype)
    if dtype == torch.uint8:
        image = torch.from_numpy(rng.integers(0, 256, (2, 9, 12, 3), dtype=np.uint8))
    model = Calls(crop_variants)
    # The optimized graph once (float32), the others as the exporter writes them (faster).
    session = export_dynamo(model, (image, *random_boxes(rng, 3, 2)), boxed={1, 2},
                            optimize=dtype == torch.float32)
    for boxes, box_indices in (random_boxes(rng, 12, 2, extreme=True), random_boxes(rng, 1, 2),
                               random_boxes(rng, 0, 2)):
        assert_all_same_bits(run(session, image, boxes, box_indices),
                             model(image, boxes, box_indices))


def test_crop_and_resize_modules_and_compat_layers():
    rng = np.random.default_rng(4)
    image = torch.from_numpy(rng.random((2, 8, 8, 2), dtype=np.float32))
    module = roiops.nn.CropAndResize((3, 3), method="nearest", extrapolation_value=1.0)
    mindspore = roiops.nn.MindSporeCropAndResize("bilinear_v2")

    def calls(image, boxes, box_indices):
        return (module(image, boxes, box_indices),
                tf_compat.crop_and_resize(image, boxes, box_indices, (2, 5),
                                          extrapolation_value=-1.0),
                mindspore(image, boxes, box_indices, (4, 4)))

    model = Calls(calls)
    session = export_dynamo(model, (image, *random_boxes(rng, 2, 2)), boxed={1, 2})
    for count in (6, 0):
        boxes, box_indices = random_boxes(rng, count, 2)
        assert_all_same_bits(run(session, image, boxes, box_indices),
                             model(image, boxes, box_indices))


# --- the TorchScript exporter and the table ----------------------------------------------

def test_torchscript_exporter(tmp_path):
    rng = np.random.default_rng(6)
    input = torch.from_numpy(rng.random((2, 3, 10, 9), dtype=np.float32))

    def calls(input, rois, boxes, box_indices):
        image = input.permute(0, 2, 3, 1)
        return (*torchvision_variants(input, rois),
                roiops.crop_and_resize(image, boxes, box_indices, (4, 5), method="nearest"),
                roiops.crop_and_resize(image, boxes, box_indices, (3, 2),
                                       extrapolation_value=0.25),
                roiops.crop_and_resize(image, boxes, box_indices, (2, 3), method="bilinear_v2"),
                *mindspore_variants(input, rois))

    model = Calls(calls)
    example = (input, random_rois(rng, 3, 2, 30, torch.float32), *random_boxes(rng, 3, 2))
    session = export_torchscript(model, example, {1, 2, 3}, tmp_path / "model.onnx")
    for count in (7, 0):
        inputs = (input, random_rois(rng, count, 2, 30, torch.float32, quarter=True),
                  *random_boxes(rng, count, 2))
        assert_all_same_bits(run(session, *inputs), model(*inputs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torchscript_exporter_torchvision_schema_op(tmp_path, dtype):
    # torch.jit.trace records the composite roiops::roi_align_torchvision itself (the torchvision
    # layer calls it): it has its own symbolic.
    rng = np.random.default_rng(8)
    input = torch.from_numpy(rng.random((2, 3, 10, 9))).to(dtype)
    pool = tv_compat.RoIAlign((2, 3), 1 / 3, 0, aligned=True)

    def calls(input, rois):
        return (pool(input, rois), torch.ops.roiops.roi_align_torchvision(
            input, rois.float(), 0.5, 3, 2, 2, False))

    model = Calls(calls)
    session = export_torchscript(model, (input, random_rois(rng, 3, 2, 30, dtype)), {1},
                                 tmp_path / "model.onnx")
    for count in (6, 0):
        rois = random_rois(rng, count, 2, 30, dtype)
        assert_all_same_bits(run(session, input, rois), model(input, rois))


def test_module_example():
    assert doctest.testmod(roiops_onnx).failed == 0


def test_translation_table_names_the_ops_and_needs_onnxscript(monkeypatch):
    table = roiops_onnx.translation_table()
    assert set(table) == {torch.ops.roiops.roi_align.default,
                          torch.ops.roiops.crop_and_resize.default}
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"pip install 'roiops\[onnx\]'"):
        roiops_onnx.translation_table()
