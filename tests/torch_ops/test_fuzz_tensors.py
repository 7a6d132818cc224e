"""Fuzz every public entry point on torch CPU tensors (issue 13); ``fuzzing.py`` draws the calls.

The NumPy fuzz's calls, with tensors for arrays: every torch dtype (bfloat16, uint32/64, bool,
complex, float8), layouts (channels_last, strided, transposed, expanded, offset storage),
tensors that require grad, sparse and meta tensors, NumPy arrays mixed in, plus the
``roiops.nn`` modules. The property is the same: the reference's result or a TypeError /
ValueError naming an argument (or docs/errors.md's RuntimeError for a host-side compat
primitive given a tensor that requires grad), and the inputs unchanged. Seeded and short;
``ROIOPS_FUZZ_EXAMPLES=2000`` runs 2000 random examples per entry point.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fuzzing  # noqa: E402
from roiops.multi_scale_roi_align import levels as level_mapper  # noqa: E402
from roiops.torch.multi_scale_ops import TORCH_LEVELS  # noqa: E402

TORCH_DTYPES = ("float32", "float32", "float64", "float16", "bfloat16", "int8", "int16",
                "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool", "complex64",
                "float8_e4m3fn")
# Dtypes NumPy has not: their values are compared as float32 (exact).
WIDENED = ("bfloat16", "float8_e4m3fn")
LAYOUTS = ("contiguous", "contiguous", "channels_last", "strided", "transposed", "expanded",
           "offset")
# Compat primitives that compute on the host and have no autograd: docs/errors.md refuses a
# tensor that requires grad with a RuntimeError.
HOST_ONLY = ("tensorflow.raw_ops.CropAndResizeGradImage",
             "tensorflow.raw_ops.CropAndResizeGradBoxes", "mindspore.CropAndResizeGradImage",
             "mindspore.CropAndResizeGradBoxes", "mindspore.ROIAlignGrad",
             "torchvision.roi_align_backward", "torchvision.roi_pool_backward",
             "torchvision.ps_roi_align_backward", "torchvision.ps_roi_pool_backward")


def torch_dtype(name):
    return getattr(torch, name)


def tensor_from(values, name):
    """float64 ``values`` as a CPU tensor of dtype ``name`` (integers rounded and clipped)."""
    if name in WIDENED:
        with np.errstate(over="ignore"):
            return torch.from_numpy(values.astype(np.float32)).to(torch_dtype(name))
    return torch.from_numpy(fuzzing.cast(values, name).copy())


def tensor_layout(draw, tensor):
    """``tensor`` with the same values (expanded: constant along one axis) in a drawn layout."""
    kind = draw(st.sampled_from(LAYOUTS))
    axis = draw(st.integers(0, max(tensor.dim() - 1, 0)))
    if tensor.dim() == 0:
        return tensor
    if kind == "channels_last" and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    if kind == "strided":
        wide = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype)
        wide[..., ::2] = tensor
        return wide[..., ::2]
    if kind == "transposed" and tensor.dim() >= 2:
        return tensor.transpose(0, -1).contiguous().transpose(0, -1)
    if kind == "expanded" and tensor.shape[axis]:
        return tensor.narrow(axis, 0, 1).expand(tensor.shape)
    if kind == "offset":
        storage = torch.zeros(tensor.numel() + 3, dtype=tensor.dtype)
        view = storage[3:].view(tensor.shape)
        view.copy_(tensor)
        return view
    return tensor


def sparse(tensor):
    """``tensor`` as a sparse COO tensor (in float32 where its dtype has no sparse kernels)."""
    try:
        return tensor.detach().to_sparse()
    except (NotImplementedError, RuntimeError):
        return tensor.detach().float().to_sparse()


def tensor_snapshot(value):
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return (str(value.dtype), tuple(value.shape), "meta")
        dense = value.detach().to_dense() if value.layout != torch.strided else value.detach()
        flat = torch.empty(dense.numel(), dtype=dense.dtype).copy_(dense.reshape(-1))
        data = flat.view(torch.uint8).numpy().tobytes()
        return (str(value.dtype), tuple(value.shape), str(value.layout), data)
    if isinstance(value, list):
        return [tensor_snapshot(v) for v in value]
    if isinstance(value, dict):
        return {k: tensor_snapshot(v) for k, v in value.items()}
    return fuzzing.numpy_snapshot(value)


class TensorMaker:
    """Array arguments as torch CPU tensors in every dtype and layout (see NumpyMaker)."""

    supports_out = False
    snapshot = staticmethod(tensor_snapshot)
    # These compat entry points run the native op on tensors (differentiable and traceable),
    # whose data checks (finite boxes, batch indices in range) use the native names.
    aliases = {name: ("box_indices",) for name in (
        "tensorflow.raw_ops.CropAndResize", "mindspore.CropAndResize",
        "nn.MindSporeCropAndResize")}
    aliases.update({name: ("rois",) for name in ("torchvision.roi_align", "torchvision.RoIAlign",
                                                 "torchvision.roi_pool", "torchvision.RoIPool",
                                                 "torchvision.ps_roi_align",
                                                 "torchvision.PSRoIAlign",
                                                 "torchvision.ps_roi_pool",
                                                 "torchvision.PSRoIPool",
                                                 "torchvision.MultiScaleRoIAlign")})
    # torch.library passes a float argument -0.0 to the op as +0.0: extrapolation_value=-0.0
    # gives +0.0 outside the image on tensors (-0.0 with NumPy arrays, as TensorFlow).
    keeps_negative_zero = False

    def array(self, draft, name, values, allowed, dtype=None):
        draw = draft.draw
        ok = True
        dtype = dtype or draw(st.sampled_from(allowed))
        if draft.rarely():
            dtype = draw(st.sampled_from(TORCH_DTYPES))
            if dtype not in allowed:
                draft.refuse(f"{name} of dtype {dtype}", (name,), TypeError)
                ok = False
        tensor = tensor_from(values, dtype)
        if draft.rarely():
            merge = tensor.dim() >= 2 and draw(st.booleans())
            tensor = tensor.flatten(-2) if merge else tensor[None]
            draft.refuse(f"{name} of rank {tensor.dim()}", (name,), ValueError)
            ok = False
        tensor = tensor_layout(draw, tensor)
        host_only = draft.name in HOST_ONLY  # refused with a tensor that requires grad
        if tensor.is_floating_point() and (draft.rarely() if host_only else draw(st.booleans())):
            tensor = tensor.detach().requires_grad_()
        value = tensor
        if draft.rarely():
            kind = draw(st.sampled_from(["numpy", "sparse", "list", "None"]))
            if kind == "numpy":  # refused only where other arguments are tensors: finish()
                value = self.values(tensor)
                draft.arrays_not_tensors[name] = value
            else:
                ok = False
                draft.refuse(f"{name} as {kind}", (name,), TypeError)
                value = {"sparse": lambda: sparse(tensor), "list": tensor.tolist,
                         "None": lambda: None}[kind]()
        draft.inputs.append(value)
        return value, ok

    def finish(self, draft, arguments):
        """Tensor-only rules: NumPy arrays among tensors, tensors on meta, and tensors that
        require grad given to a host-side primitive. Returns the arguments to call with."""
        tensors = [t for t in flat(arguments.values()) if isinstance(t, torch.Tensor)]
        if not tensors and draft.arrays_not_tensors:
            arguments = self.first_as_tensor(draft, arguments)
            tensors = [t for t in flat(arguments.values()) if isinstance(t, torch.Tensor)]
        if tensors:
            for name in draft.arrays_not_tensors:
                draft.refuse(f"{name} a NumPy array among tensors", (name,), TypeError)
        wants_grad = any(t.requires_grad for t in tensors)
        if draft.name in HOST_ONLY and wants_grad:
            draft.refuse("a tensor that requires grad to a host-side primitive", (),
                         RuntimeError)
        if tensors and draft.rarely():
            return self.on_meta(draft, arguments)
        return arguments

    @staticmethod
    def first_as_tensor(draft, arguments):
        """Arguments whose arrays were all drawn as NumPy arrays (a NumPy call: no tensor
        result) with the first drawn back as a tensor of its values: a tensor call again
        (also where it lies in a list or a dict of arrays)."""
        passed = list(flat(arguments.values()))
        name, array = next(((n, a) for n, a in draft.arrays_not_tensors.items()
                            if any(a is value for value in passed)), (None, None))
        if name is None:
            return arguments
        del draft.arrays_not_tensors[name]
        tensor = torch.from_numpy(array.copy())
        draft.inputs = [tensor if value is array else value for value in draft.inputs]
        return replaced(arguments, array, tensor)

    @staticmethod
    def on_meta(draft, arguments):
        """One tensor argument moved to the meta device: refused, tensors must share one."""
        names = [k for k, v in arguments.items() if isinstance(v, torch.Tensor)]
        if len(names) < 2:
            return arguments
        name = draft.draw(st.sampled_from(names))
        moved = dict(arguments, **{name: arguments[name].detach().to("meta")})
        draft.inputs.append(moved[name])
        draft.refuse(f"{name} on meta", tuple(names), ValueError)
        return moved

    @staticmethod
    def values(value):
        if isinstance(value, np.ndarray):  # drawn among tensors
            return value
        value = value.detach()
        if value.dtype in (torch.bfloat16, torch.float8_e4m3fn):
            value = value.float()
        return value.resolve_conj().numpy() if value.layout == torch.strided else \
            value.to_dense().numpy()

    @staticmethod
    def dtype_name(value):
        return str(value.dtype).removeprefix("torch.")

    @staticmethod
    def dtype_name_of(spelling):
        if isinstance(spelling, torch.dtype):
            return str(spelling).removeprefix("torch.")
        return np.dtype(spelling).name

    @staticmethod
    def numpy_dtype(name):
        return np.dtype(np.float32 if name in WIDENED else name)

    @staticmethod
    def as_result(result):
        assert isinstance(result, torch.Tensor), type(result)
        result = result.detach()
        return (result.float() if result.dtype == torch.bfloat16 else result).numpy()

    def rounded(self, array, name):
        return self.as_result(torch.from_numpy(np.ascontiguousarray(array)).to(
            torch_dtype(name)))

    def shaped(self, shape, name):
        return fuzzing.Shaped(tuple(shape), self.numpy_dtype(name))

    @staticmethod
    def shape_forms(dims):
        return [torch.Size(dims)]

    @staticmethod
    def dtype_spellings(native):
        return [torch.float32, torch.float16, torch.float64] + ([torch.bfloat16] if native
                                                                else [])

    @staticmethod
    def describe(value):
        if isinstance(value, torch.Tensor):
            small = value.numel() <= 24 and value.device.type != "meta"
            shown = f" {value.detach().to_dense().tolist()!r}" if small else ""
            strides = value.stride() if value.layout == torch.strided else value.layout
            return (f"Tensor[{value.dtype} {tuple(value.shape)} strides {strides} "
                    f"{value.device.type}{' requires_grad' if value.requires_grad else ''}]"
                    f"{shown}")
        if isinstance(value, list) and any(isinstance(v, torch.Tensor) for v in value):
            return "[" + ", ".join(TensorMaker.describe(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k!r}: {TensorMaker.describe(v)}"
                                   for k, v in value.items()) + "}"
        return fuzzing.describe_array(value)

    @staticmethod
    def fpn_levels(boxes, k_min, k_max, num_levels, canonical_scale, canonical_level):
        """The level mapper in torch's arithmetic (as torchvision's; see NumpyMaker)."""
        return level_mapper.fpn_levels(TORCH_LEVELS, torch.from_numpy(boxes), k_min, k_max,
                                       num_levels, canonical_scale, canonical_level).numpy()


def flat(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from flat(value)
        elif isinstance(value, dict):
            yield from flat(value.values())
        else:
            yield value


def replaced(value, old, new):
    """``value`` with ``old`` (found by identity, also in lists, tuples and dicts) ``new``."""
    if value is old:
        return new
    if isinstance(value, dict):
        return {k: replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(replaced(v, old, new) for v in value)
    return value


@pytest.mark.parametrize("name", list(fuzzing.BUILDERS))
@fuzzing.SETTINGS
@given(data=st.data())
def test_entry_point_keeps_its_promises_on_tensors(name, data):
    fuzzing.check(data.draw(fuzzing.calls(name, TensorMaker()), label="call"))
