"""The public API is annotated: every parameter and every return of every public function and
method of ``roiops``, ``roiops.compat.*`` and ``roiops.nn`` (``roiops.torch.ops`` needs no test:
``torch.library.custom_op`` refuses unannotated functions)."""
import importlib
import importlib.util
import inspect
import subprocess
import sys
import types
import typing

import pytest

import roiops
from roiops import _typing
from roiops.compat import detectron2, mindspore, mmcv, tensorflow, torchvision

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _members(cls):
    """The public methods of a class, with ``__init__``, ``__call__`` and ``__repr__``."""
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__", "__repr__"):
            continue
        member = member.__func__ if isinstance(member, staticmethod) else member
        if inspect.isfunction(member):
            yield f"{cls.__name__}.{name}", member


def _public(module, names=None):
    """``{qualified name: function}`` of a module's public functions and class methods."""
    if names is None:
        names = [name for name, value in vars(module).items() if not name.startswith("_")
                 and getattr(value, "__module__", None) == module.__name__]
    found = {}
    for name in names:
        value = getattr(module, name)
        if inspect.isclass(value):
            found.update((f"{module.__name__}.{q}", f) for q, f in _members(value))
        elif inspect.isfunction(value):
            found[f"{module.__name__}.{name}"] = value
    return found


API = {**_public(roiops, roiops.__all__), **_public(tensorflow), **_public(mindspore),
       **_public(torchvision), **_public(detectron2), **_public(mmcv)}
if HAS_TORCH:
    nn = importlib.import_module("roiops.nn")
    API.update(_public(nn, nn.__all__))


def test_the_walk_finds_every_entry_point():
    assert {"roiops.crop_and_resize", "roiops.roi_align_grad_boxes",
            "roiops.compat.tensorflow.crop_and_resize",
            "roiops.compat.tensorflow.raw_ops.CropAndResizeGradImage",
            "roiops.compat.mindspore.ROIAlign.__init__",
            "roiops.compat.mindspore.ROIAlign.__call__",
            "roiops.compat.torchvision.roi_align_backward",
            "roiops.compat.torchvision.RoIAlign.forward"} <= set(API)
    if HAS_TORCH:
        assert "roiops.nn.MindSporeROIAlign.forward" in API


@pytest.mark.parametrize("name", sorted(API))
def test_every_parameter_and_the_return_are_annotated_and_resolve(name):
    signature = inspect.signature(API[name])
    missing = [p.name for p in signature.parameters.values()
               if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    namespace = dict(vars(_typing))
    if HAS_TORCH:
        namespace["torch"] = importlib.import_module("torch")
    else:  # the annotations name torch for type checkers only: a stand-in resolves them
        namespace["torch"] = types.SimpleNamespace(Tensor=type("Tensor", (), {}),
                                                   dtype=type("dtype", (), {}))
    assert "return" in typing.get_type_hints(API[name], localns=namespace)


def test_importing_roiops_with_its_annotations_does_not_import_torch():
    code = "import sys, roiops, roiops.compat.mindspore; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
