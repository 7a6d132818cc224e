"""Hypothesis strategies and the property of the fuzz tests (issue 13: a fuzzer in the suite).

``test_fuzz.py`` (NumPy) and ``torch_ops/test_fuzz_tensors.py`` (torch CPU tensors) call every
public entry point, native and compat, with arguments drawn to be hostile in combination:
shapes with 0 and 1 and wrong ranks; every dtype (signed and unsigned ints, float16/32/64,
bool, complex, object, strings, big-endian; bfloat16 and float8 on tensors); layouts (Fortran
order, strided slices, negative strides, zero-stride broadcasts, read-only and unaligned
arrays; channels_last, transposed, expanded, offset, sparse and meta tensors); NaN, +-inf,
-0.0, subnormal, huge and tiny values; boxes inside, outside and flipped; batch indices in and
out of range; options valid and invalid (methods, conventions, sampling ratios, sizes, scales).

While it draws, a builder records each rule of docs/errors.md that the draw breaks (a
:class:`Refusal`: the exception types and the arguments its message may name). The property
(:func:`check`), for every call:

* no refusal: the call returns the plain reference's result (``roiops.<op>.reference`` of
  crop_and_resize, roi_align, roi_pool, ps_roi_align, ps_roi_pool, roi_align_rotated), bit
  for bit with NaN == NaN (``roi_align_grad_boxes`` within a tolerance, as in
  ``test_properties.py``), when the call is small enough for the reference;
* some refusal: it raises the TypeError or ValueError of one of them, whose message names
  one of the call's arguments;
* never another exception, and its inputs are unchanged, also when it raises.

Seeded and short by default (``derandomize``, ``EXAMPLES`` examples per entry point). Longer:
``ROIOPS_FUZZ_EXAMPLES=2000 python -m pytest -q tests/test_fuzz.py
tests/torch_ops/test_fuzz_tensors.py`` runs 2000 random examples per entry point.
"""
import math
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from roiops.crop_and_resize import reference as crop_reference
from roiops.multi_scale_roi_align import levels as level_mapper
from roiops.multi_scale_roi_align import reference as ms_reference
from roiops.ps_roi_align import reference as ps_align_reference
from roiops.ps_roi_pool import reference as ps_pool_reference
from roiops.roi_align import reference as roi_reference
from roiops.roi_align_rotated import conventions as rotated_conventions
from roiops.roi_align_rotated import reference as rotated_reference
from roiops.roi_pool import reference as pool_reference

LONG = "ROIOPS_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("ROIOPS_FUZZ_EXAMPLES", "0")) or 30
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

F32, F64 = np.float32, np.float64
MAX_INDEX = 2**63 - 1
# A reference call costing more sample evaluations than this is skipped (it is plain Python).
REFERENCE_BUDGET = 20_000
# Sizes far beyond any machine's memory when the result is not empty; see too_big().
HUGE = 2**40

NATIVE_FLOATS = ("float16", "float32", "float64", "bfloat16")
NATIVE_IMAGES = ("int8", "int16", "int32", "int64", "uint8", "uint16") + NATIVE_FLOATS
INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_SPECIALS = (math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-45, 6e-8, 1e-300, 1e30,
                  3.4e38, 65504.0, 1e308, -1e308)


# ---------------------------------------------------------------------------------------------
# the property
# ---------------------------------------------------------------------------------------------

@dataclass
class Refusal:
    """A rule the draw broke: the exceptions it raises and the arguments its message may
    name (or one of the entry point's aliases; a RuntimeError documented in docs/errors.md
    need not name one)."""
    rule: str
    names: tuple
    types: tuple = (TypeError, ValueError)

    def matches(self, error, aliases=()):
        return isinstance(error, self.types) and (not self.names or any(
            names_argument(error, n) for n in self.names + aliases))


# The arguments each class entry point takes at construction; the rest go to the call.
CONSTRUCTOR_ARGUMENTS = {
    "nn.CropAndResize": ("crop_size", "method", "extrapolation_value", "data_format"),
    "mindspore.CropAndResize": ("method", "extrapolation_value"),
    "nn.MindSporeCropAndResize": ("method", "extrapolation_value"),
    "mindspore.CropAndResizeGradImage": ("T", "method"),
    "mindspore.CropAndResizeGradBoxes": ("method",),
    "mindspore.ROIAlign": ("pooled_height", "pooled_width", "spatial_scale", "sample_num",
                           "roi_end_mode"),
    "nn.MindSporeROIAlign": ("pooled_height", "pooled_width", "spatial_scale", "sample_num",
                             "roi_end_mode"),
    "mindspore.ROIAlignGrad": ("pooled_height", "pooled_width", "spatial_scale", "sample_num"),
    "nn.RoIAlign": ("output_size", "spatial_scale", "sampling_ratio", "aligned", "convention",
                    "roi_end_mode"),
    "torchvision.RoIAlign": ("output_size", "spatial_scale", "sampling_ratio", "aligned"),
    "nn.RoIPool": ("output_size", "spatial_scale"),
    "torchvision.RoIPool": ("output_size", "spatial_scale"),
    "nn.PSRoIAlign": ("output_size", "spatial_scale", "sampling_ratio"),
    "torchvision.PSRoIAlign": ("output_size", "spatial_scale", "sampling_ratio"),
    "nn.PSRoIPool": ("output_size", "spatial_scale"),
    "torchvision.PSRoIPool": ("output_size", "spatial_scale"),
    "nn.RoIAlignRotated": ("output_size", "spatial_scale", "sampling_ratio", "aligned",
                           "clockwise", "convention"),
    "detectron2.ROIAlignRotated": ("output_size", "spatial_scale", "sampling_ratio"),
    "mmcv.RoIAlignRotated": ("output_size", "spatial_scale", "sampling_ratio", "aligned",
                             "clockwise"),
    "torchvision.MultiScaleRoIAlign": ("featmap_names", "output_size", "sampling_ratio",
                                       "canonical_scale", "canonical_level"),
}


def entry_point(name):
    """The public object called ``name``: ``roiops.<name>``, ``roiops.compat.<name>`` or
    ``roiops.nn.<name>``."""
    import roiops
    import roiops.compat.detectron2
    import roiops.compat.mindspore
    import roiops.compat.mmcv
    import roiops.compat.tensorflow
    import roiops.compat.torchvision
    first, *rest = name.split(".")
    if first == "nn":
        import roiops.nn
        target = roiops.nn
    elif first in ("tensorflow", "mindspore", "torchvision", "detectron2", "mmcv"):
        target = getattr(roiops.compat, first)
    else:
        return getattr(roiops, first)
    for part in rest:
        target = getattr(target, part)
    return target


@dataclass
class Call:
    """One drawn call of the entry point ``name`` with ``arguments`` (by name, as the entry
    point spells them). ``expected()`` gives the reference result (or a :class:`Shaped`);
    ``refusals`` the rules the arguments break."""
    name: str
    arguments: dict
    inputs: list
    refusals: list
    maker: object
    expected: object = None
    close: object = False
    aliases: tuple = ()

    def run(self):
        target = entry_point(self.name)
        constructor = CONSTRUCTOR_ARGUMENTS.get(self.name, ())
        if constructor:
            target = target(**{k: v for k, v in self.arguments.items() if k in constructor})
        return target(**{k: v for k, v in self.arguments.items() if k not in constructor})

    @property
    def names(self):
        return tuple(self.arguments) + self.aliases

    def __repr__(self):
        shown = ", ".join(f"{k}={self.maker.describe(v)}" for k, v in self.arguments.items())
        rules = "; ".join(r.rule for r in self.refusals) or "none"
        return f"{self.name}({shown})  [rules broken: {rules}]"


def names_argument(error, name):
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", str(error)) is not None


def check(call):
    """The fuzz property for one call (see the module docstring)."""
    snapshot = call.maker.snapshot
    before = [snapshot(value) for value in call.inputs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would be an exception under -W error
            result = call.run()
    except (TypeError, ValueError, RuntimeError) as error:
        kind = type(error).__name__
        rules = "; ".join(r.rule for r in call.refusals)
        assert call.refusals, f"a valid call raised {kind}: {error}"
        assert any(r.matches(error, call.aliases) for r in call.refusals), (
            f"raised {kind}: {error}\nbut the draw broke: {rules}")
        assert isinstance(error, RuntimeError) or any(
            names_argument(error, n) for n in call.names), (
            f"the message names none of {call.names}: {error}")
    else:
        assert not call.refusals, (
            "accepted a call that breaks: " + "; ".join(r.rule for r in call.refusals))
        if call.expected is not None:
            want = call.expected()
            if isinstance(want, list):  # one array per level
                assert isinstance(result, list) and len(result) == len(want), type(result)
                for got, one in zip(result, want):
                    compare(call.maker.as_result(got), one, call.close)
            else:
                compare(call.maker.as_result(result), want, call.close)
    after = [snapshot(value) for value in call.inputs]
    for i, (b, a) in enumerate(zip(before, after)):
        assert b == a, f"input {i} of the call was modified"


@dataclass
class Shaped:
    """An expected result known by its shape and dtype only (too large for the reference)."""
    shape: tuple
    dtype: np.dtype


def compare(got, want, close):
    assert got.shape == tuple(want.shape), (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if isinstance(want, Shaped):
        return
    if close:
        np.testing.assert_allclose(got.astype(F64), want.astype(F64), **close)
        return
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    np.testing.assert_array_equal(nan_got, nan_want)
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    bad = (got.view(unsigned) != want.view(unsigned)) & ~nan_got
    if bad.any():
        at = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} elements differ; first at {at}: "
                             f"got {got[at]!r}, want {want[at]!r}")


def numpy_snapshot(value):
    """What must not change about an argument: its bits, dtype and shape (or, for anything
    that is not an array, its repr)."""
    if isinstance(value, np.ndarray):
        data = value.tolist() if value.dtype.kind == "O" else np.ascontiguousarray(value).tobytes()
        return (value.dtype.str, value.shape, data)
    if isinstance(value, list):
        return [numpy_snapshot(v) for v in value]
    if isinstance(value, dict):
        return {k: numpy_snapshot(v) for k, v in value.items()}
    return repr(value)


# ---------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------

class Draft:
    """The call being drawn: ``draw`` for choices, refusals recorded as rules are broken.

    ``maker`` builds the array arguments (NumPy arrays or tensors, see NumpyMaker)."""

    def __init__(self, draw, maker, name):
        self.draw = draw
        self.maker = maker
        self.name = name
        self.refusals = []
        self.inputs = []
        self.arrays_not_tensors = {}  # NumPy arrays drawn among tensors, by name
        # one draw in `odds` breaks a rule: a third of the calls break none
        self.odds = draw(st.sampled_from([0, 40, 10]))

    def refuse(self, rule, names, *types):
        self.refusals.append(Refusal(rule, tuple(names), types or (TypeError, ValueError)))

    def exotic_layouts(self):
        """Whether this call may pass arrays in any layout (Fortran order, zero strides,
        read-only, unaligned). Each new combination of array types that reaches a kernel costs
        a Numba compilation (seconds, on a cold cache), so the short run keeps those layouts
        to calls already refused, which never reach a kernel; longer runs use them anywhere."""
        return LONG or bool(self.refusals)

    def rarely(self):
        """True about once in ``odds`` draws; never in calls drawn with odds 0."""
        return bool(self.odds) and self.draw(st.integers(1, self.odds)) == self.odds

    def pick(self, name, valid, hostile=()):
        """One of ``valid`` or, rarely, one of ``hostile`` (``(value, types)`` pairs, or
        bare values refused with TypeError or ValueError)."""
        if hostile and self.rarely():
            choice = self.draw(st.sampled_from(hostile))
            value, types = choice if isinstance(choice, tuple) else (choice, ())
            self.refuse(f"{name}={describe_array(value)}", (name,),
                        *(types if isinstance(types, tuple) else (types,)))
            return value
        return self.draw(st.sampled_from(valid))

    def call(self, name, arguments, expected=None, close=False, aliases=()):
        arguments = self.maker.finish(self, arguments)
        return Call(name, arguments, self.inputs, self.refusals, self.maker, expected, close,
                    aliases + self.maker.aliases.get(name, ()))


def data_values(draft, shape):
    """float64 values for images, feature maps and gradients, with special values planted."""
    draw = draft.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = draw(st.sampled_from(["small ints", "normal", "bytes"]))
    if style == "small ints":
        values = rng.integers(-9, 10, size=shape).astype(F64)
    elif style == "normal":
        values = rng.normal(size=shape) * 10
    else:
        values = rng.uniform(0, 255, size=shape)
    if values.size:  # most calls compare finite values; some plant one or two specials
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            values.flat[rng.integers(values.size)] = draw(st.sampled_from(FLOAT_SPECIALS))
    return values


def cast(values, dtype):
    """``values`` (float64) as ``dtype``: integers rounded and clipped to the type's range."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -2**62), min(info.max, 2**62)
        clean = np.nan_to_num(values, nan=0.0, posinf=high, neginf=low)
        return np.clip(np.round(clean), low, high).astype(dtype)
    if dtype.kind == "b":
        return values != 0
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)


NUMPY_DTYPES = ("float32", "float32", "float64", "float16", "int8", "int16", "int32", "int64",
                "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "object", "U8",
                ">f4", ">f8", ">f2", ">i4", ">u2", "longdouble")
NUMPY_LAYOUTS = ("C", "C", "C", "fortran", "strided", "reversed", "broadcast", "unaligned")
# The layout whose Numba array types the rest of the suite compiles too. See
# Draft.exotic_layouts.
COMMON_NUMPY_LAYOUTS = ("C",)


class NumpyMaker:
    """Array arguments as NumPy arrays, in every dtype and layout."""

    snapshot = staticmethod(numpy_snapshot)
    as_result = staticmethod(np.asarray)
    aliases = {}  # entry point -> other names its messages may use for its arguments
    keeps_negative_zero = True  # an extrapolation_value of -0.0 comes back as -0.0
    supports_out = True  # the native forwards take out=

    def array(self, draft, name, values, allowed, dtype=None):
        """``values`` as the argument ``name``: usually an array of a dtype in ``allowed``
        (names; big-endian ones are accepted too), in any layout. Returns ``(value, ok)``:
        ``ok`` is False when the value itself breaks a rule (recorded)."""
        draw = draft.draw
        ok = True
        dtype = np.dtype(dtype or draw(st.sampled_from([d for d in allowed if d != "bfloat16"])))
        if draft.rarely():
            dtype = np.dtype(draw(st.sampled_from(NUMPY_DTYPES)))
            if dtype.newbyteorder("=").name not in allowed:
                draft.refuse(f"{name} of dtype {dtype}", (name,), TypeError)
                ok = False
        array = cast(values, dtype)
        if draft.rarely():
            merge = array.ndim >= 2 and draw(st.booleans())
            merged = array.shape[:-2] + (array.shape[-2] * array.shape[-1],) if merge else None
            array = array.reshape(merged) if merge else array[None]
            draft.refuse(f"{name} of rank {array.ndim}", (name,), ValueError)
            ok = False
        array = numpy_layout(draw, array, draft.exotic_layouts())
        if draft.rarely():
            value = self.not_an_array(draft, name, array)
            ok = False
        else:
            value = array
        draft.inputs.append(value)
        return value, ok

    @staticmethod
    def not_an_array(draft, name, array):
        kind = draft.draw(st.sampled_from(["list", "masked", "matrix", "scalar", "None"]))
        draft.refuse(f"{name} as a {kind}", (name,), TypeError)
        if kind == "list":
            return array.tolist()
        if kind == "masked":
            return np.ma.masked_array(array, mask=np.zeros(array.shape, bool))
        if kind == "matrix" and array.ndim == 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                return np.asmatrix(array)
        if kind == "scalar" and array.size:
            return array.flat[0]
        return None

    @staticmethod
    def finish(draft, arguments):
        """The arguments to call with, after any rules that need all of them."""
        return arguments

    @staticmethod
    def values(value):
        """The NumPy values of a well-formed array argument (native byte order)."""
        value = np.asarray(value)
        return value.astype(value.dtype.newbyteorder("="))

    @staticmethod
    def dtype_name(value):
        """The dtype of a well-formed array argument, as named in the allowed lists."""
        return value.dtype.newbyteorder("=").name

    @staticmethod
    def dtype_name_of(spelling):
        return np.dtype(spelling).name

    @staticmethod
    def numpy_dtype(name):
        return np.dtype(name)

    @staticmethod
    def rounded(array, name):
        """The reference result (in its arithmetic type) as the call returns it: ``name``
        (beyond float16's range: inf, as the call gives it)."""
        with np.errstate(over="ignore"):
            return array.astype(name)

    @staticmethod
    def shaped(shape, name):
        return Shaped(tuple(shape), np.dtype(name))

    @staticmethod
    def shape_forms(dims):
        return []

    @staticmethod
    def dtype_spellings(native):
        return []

    @staticmethod
    def describe(value):
        return describe_array(value)

    @staticmethod
    def fpn_levels(boxes, k_min, k_max, num_levels, canonical_scale, canonical_level):
        """multi_scale_roi_align's level mapper in this kind's arithmetic (NumPy's log2 is
        correctly rounded, torch's is not): ``boxes`` ``[K, 4]`` float32 or float64."""
        return level_mapper.fpn_levels(level_mapper.NUMPY, boxes, k_min, k_max, num_levels,
                                       canonical_scale, canonical_level)


def describe_array(value):
    """An argument as a failure report shows it: arrays with dtype, shape, layout and (when
    small) values."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        layout = "".join(tag for tag, on in (("C", flags.c_contiguous), ("F", flags.f_contiguous),
                                             ("read-only ", not flags.writeable),
                                             ("unaligned ", not flags.aligned)) if on)
        values = f" {value.tolist()!r}" if value.size <= 24 else ""
        return (f"{type(value).__name__}[{value.dtype.str} {value.shape} strides "
                f"{value.strides} {layout or 'strided'}]{values}")
    if isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
        return "[" + ", ".join(describe_array(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe_array(v)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def numpy_layout(draw, array, exotic):
    """``array`` with the same values (a broadcast: constant along one axis) in a drawn
    layout; ``exotic``: any layout, maybe read-only (else C-contiguous)."""
    kind = draw(st.sampled_from(NUMPY_LAYOUTS if exotic else COMMON_NUMPY_LAYOUTS))
    if array.ndim == 0 or (kind == "unaligned" and array.dtype.kind in "OU"):
        kind = "C"
    axis = draw(st.integers(0, max(array.ndim - 1, 0)))
    if kind == "fortran":
        array = np.asfortranarray(array)
    elif kind == "strided":
        shape = list(array.shape)
        shape[axis] *= 2
        spread = np.zeros(shape, array.dtype)
        index = [slice(None)] * array.ndim
        index[axis] = slice(None, None, 2)
        spread[tuple(index)] = array
        array = spread[tuple(index)]
    elif kind == "reversed":
        array = np.flip(np.flip(array, axis).copy(), axis)
    elif kind == "broadcast" and array.shape[axis]:
        array = np.broadcast_to(np.take(array, [0], axis=axis), array.shape)
    elif kind == "unaligned" and array.dtype.itemsize > 1:
        buffer = np.zeros(array.nbytes + 1, np.uint8)[1:]
        unaligned = buffer.view(array.dtype).reshape(array.shape)
        unaligned[...] = array
        array = unaligned
    if exotic and array.flags.writeable and draw(st.booleans()):
        array.flags.writeable = False
    return array


# ---------------------------------------------------------------------------------------------
# argument families shared by the entry points
# ---------------------------------------------------------------------------------------------

def physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return MAX_INDEX


def too_big(shape, itemsize):
    """docs/errors.md: an array beyond 2**63 - 1 bytes (counting non-zero dimensions), or
    larger than the machine's memory. Only drawn sizes far from either bound reach here."""
    nonzero = math.prod(d for d in shape if d) * itemsize
    return nonzero > MAX_INDEX or math.prod(shape) * itemsize > physical_memory()


def size_pair(draft, name, pair, allow_int=False, python_ints=False):
    """A ``crop_size`` / ``output_size`` argument for the sizes ``pair``.

    Returns ``(value, sizes)``: ``sizes`` is the pair the call will use (maybe huge), or None
    when the value breaks a rule (recorded)."""
    draw = draft.draw
    if draft.rarely():
        value = draw(st.sampled_from([(HUGE, pair[1]), (pair[0], HUGE), (2**62, 1), (HUGE, HUGE)]
                                     + ([HUGE] if allow_int else [])))
        return value, (value, value) if isinstance(value, int) else value
    if draft.rarely():
        value = draw(st.sampled_from([
            (0, pair[1]), (pair[0], -1), (pair[0],), pair + (1,), (2.0, pair[1]), "34", None,
            (True, pair[1]), (2**63, 1), (10**30, 1), np.array(pair, F32), [pair[0], "2"],
        ] + ([] if allow_int else [pair[0]]) + ([np.int64(2)] if python_ints else [])))
        draft.refuse(f"{name}={value!r}", (name,), *((TypeError, ValueError) if python_ints
                                                     else (ValueError,)))
        return value, None
    forms = [tuple(pair), list(pair)]
    if not python_ints:
        forms += [np.array(pair), (np.int64(pair[0]), np.uint8(pair[1]))]
    if allow_int and pair[0] == pair[1]:
        forms.append(pair[0])
    return draw(st.sampled_from(forms)), tuple(pair)


def refuse_if_too_big(draft, name, shape, itemsize):
    if too_big(shape, itemsize):
        draft.refuse(f"{name}: a result of shape {shape} cannot be allocated", (name,),
                     ValueError)
        return True
    return False


def output_shape(draft, count, channels, pooled, dtype):
    """``(count, channels, *pooled)``, a forward's result shape of NumPy ``dtype``; None where
    the output size or the channels were refused (None), or where the result is too big
    (refused here)."""
    if pooled is None or channels is None:
        return None
    shape = (count, channels, *pooled)
    too_big = refuse_if_too_big(draft, "output_size", shape, np.dtype(dtype).itemsize)
    return None if too_big else shape

def shape_argument(draft, name, dims):
    """An ``image_shape`` / ``input_shape`` argument for ``dims`` (the order it is given in).

    Returns ``(value, dims)``; dims None when the value breaks a rule (recorded)."""
    draw = draft.draw
    if draft.rarely():
        axis = draw(st.integers(0, 3))
        dims = tuple(HUGE if i == axis else d for i, d in enumerate(dims))
        return dims, dims
    if draft.rarely():
        value, types = draw(st.sampled_from([
            ("".join(map(str, dims)), TypeError), (tuple(float(d) for d in dims), TypeError),
            (dims[:3], ValueError), (dims + (1,), ValueError), (None, TypeError),
            ((dims[0], -1) + dims[2:], ValueError), (dims[:3] + (True,), TypeError),
            (np.array(dims, F64), TypeError), (dims[:3] + (2**63,), ValueError),
            (7, TypeError), (dims[:3] + ("3",), TypeError),
        ]))
        draft.refuse(f"{name}={value!r}", (name,), types)
        return value, None
    forms = [tuple(dims), list(dims), np.array(dims), tuple(np.int32(d) for d in dims)]
    return draw(st.sampled_from(forms + draft.maker.shape_forms(dims))), tuple(dims)


def box_indices(draft, name, batch, count, allowed):
    """``[count]`` batch indices, mostly in ``[0, batch)``."""
    rng = np.random.default_rng(draft.draw(st.integers(0, 2**16)))
    values = rng.integers(0, max(batch, 1), count).astype(F64)
    if count and draft.rarely():
        values[rng.integers(count)] = draft.draw(st.sampled_from([-1, batch, 2**31 - 1, 2**62]))
    if draft.rarely():
        values = np.append(values, 0) if draft.draw(st.booleans()) or not count else values[1:]
        draft.refuse(f"{name} of length {len(values)} for {count} boxes", (name, "grads"),
                     ValueError)
    return draft.maker.array(draft, name, values, allowed)


def refuse_bad_indices(draft, name, value, batch):
    indices = draft.maker.values(value)
    if indices.dtype.kind not in "iuf":  # strings, bool, ...: refused for their dtype
        return
    if indices.size and ((indices < 0) | (indices >= batch)).any():
        draft.refuse(f"{name} outside [0, {batch})", (name,), ValueError)


def refuse_non_finite(draft, name, value):
    rows = draft.maker.values(value).astype(F64)
    if not np.isfinite(rows).all():
        draft.refuse(f"{name} not finite", (name,), ValueError)


def coordinate(extent):
    """A box coordinate along an axis of ``extent``: inside or near it, on the lattice, or
    special (signed zero, subnormal, one ulp off an edge)."""
    return st.one_of(
        st.floats(-0.25 * extent, 1.25 * extent, width=32),
        st.integers(-1, 4 * int(extent) + 1).map(lambda k: k / 4),
        st.sampled_from([0.0, -0.0, float(extent), extent - 1.0, 1e-45, 5e-324, 0.99999994,
                         1.0000001]),
    )


def box_rows(draft, count, extent_y, extent_x):
    """``[count, 4]`` float64 ``[y1, x1, y2, x2]`` rows, flipped and degenerate too; rarely
    one coordinate far outside (up to float32's largest) or not finite."""
    draw = draft.draw
    rows = []
    for _ in range(count):
        y1, x1 = draw(coordinate(extent_y)), draw(coordinate(extent_x))
        if draw(st.booleans()):
            y2, x2 = draw(coordinate(extent_y)), draw(coordinate(extent_x))
        else:  # degenerate: a point
            y2, x2 = y1, x1
        rows.append([y1, x1, y2, x2])
    rows = np.array(rows, F64).reshape(count, 4)
    for far in (-1.5 * extent_x, 1e10, 1e30, -3e38, 3.4e38, math.nan, math.inf, -math.inf):
        if count and draft.rarely():
            rows.flat[draw(st.integers(0, rows.size - 1))] = far
    return rows


# --- options -----------------------------------------------------------------------------

def not_a_number(python_float):
    """Refused numbers; an int beyond float64 is out of range (ValueError), or, where only a
    Python float is taken (MindSpore's attributes), not a float (TypeError)."""
    return [("0", TypeError), (None, TypeError), (True, TypeError), (1j, TypeError),
            (np.array(1.0), TypeError), (10**400, TypeError if python_float else ValueError)]


def extrapolation_value(draft, name="extrapolation_value", compute=F32, python_float=False):
    """A valid value (NaN and infinities included) or, rarely, a refused one."""
    valid = [0.0, -1.0, 0.5, 7.25, math.nan, math.inf, -math.inf, -0.0, 1e-310, 1e30,
             np.float64(2.5)]
    if not python_float:
        valid += [3, np.float32(2.5), np.float16(1.5), np.int8(-3), Fraction(1, 3)]
    hostile = not_a_number(python_float)
    if python_float:
        hostile += [(1, TypeError), (np.float32(1), TypeError)]
    if not draft.maker.keeps_negative_zero:
        valid = [v for v in valid if not (v == 0 and math.copysign(1, v) < 0)]
    value = draft.pick(name, valid, hostile)
    if draft.rarely():
        value = draft.draw(st.sampled_from([1e39, -1e300, 1e300]))
        if compute is not F64:
            draft.refuse(f"{name}={value} overflows {compute.__name__}", (name,), ValueError)
    return value


def spatial_scale(draft, python_float=False, name="spatial_scale"):
    """A scale (zero, negative and subnormal too) or, rarely, a refused one; rarely a huge
    one, which :func:`refuse_overflow` judges once the types it is rounded through are known."""
    valid = [1.0, 0.5, 0.25, 2.0, 0.3, 1.0, 0.5, 0.0625, 0.0, -0.5, 1e-40]
    if not python_float:
        valid += [1, np.float32(0.5), Fraction(1, 4)]
    hostile = not_a_number(python_float) + [(math.nan, ValueError), (math.inf, ValueError),
                                            (-math.inf, ValueError)]
    if python_float:
        hostile += [(1, TypeError), (np.float32(0.5), TypeError)]
    if draft.rarely():  # drawn first: a refused value's rule must not outlive the value
        return draft.draw(st.sampled_from([1e30, 1e39, -1e39, 1e5]))
    return draft.pick(name, valid, hostile)


def refuse_overflow(draft, name, value, *chain):
    """docs/errors.md: a finite float that becomes inf rounded through the types ``chain``."""
    if type(value) is not float or not math.isfinite(value):
        return
    with np.errstate(over="ignore"):
        for dtype in chain:
            value = dtype(value)
    if not math.isfinite(value):
        draft.refuse(f"{name} overflows {[d.__name__ for d in chain]}", (name,), ValueError)


def sampling_ratio(draft, name="sampling_ratio", python_int=False, cells=1):
    """A ratio (adaptive ones too) or, rarely, a refused one; the largest, 1024, only for
    ``cells`` (output elements) few enough that its million samples per bin stay quick."""
    largest = 1024 if cells <= 4 else 64
    valid = [-1, 0, 1, 2, 3, -7, -2**63, largest] + ([] if python_int else [np.int32(2)])
    hostile = [(1025, ValueError), (2**63, ValueError), (10**400, ValueError),
               (-2**64, ValueError), (2.0, TypeError), (True, TypeError), ("2", TypeError),
               (None, TypeError)]
    hostile += ([(np.int64(2), TypeError)] if python_int
                else [(np.uint64(2**64 - 1), ValueError)])
    return draft.pick(name, valid, hostile)


# ---------------------------------------------------------------------------------------------
# reference helpers
# ---------------------------------------------------------------------------------------------

def compute_type(dtype):
    """docs/api.md#dtypes: float64 for float64 data, float32 for everything else."""
    return F64 if np.dtype(dtype) == F64 else F32


def nhwc(array, data_format):
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)


def nchw_result(array, data_format):
    return array if data_format == "NHWC" else array.transpose(0, 3, 1, 2)


def roi_cost(rois, output_size, channels, options, F):
    """Steps of the reference for these rois, or None where it cannot run (an adaptive grid
    of a non-finite roi size). Per bin it evaluates ``gh * gw`` samples per channel, after
    listing the ``gh`` and ``gw`` coordinates: a huge ``gh`` costs also when ``gw`` is 0."""
    total = 0
    for roi in rois:
        try:
            with np.errstate(all="ignore"):  # a huge grid's count overflows F: not run then
                geometry = roi_reference.roi_geometry(roi, *output_size, F=F, **options)
        except ValueError:
            return None
        gh, gw = max(geometry.gh, 0), max(geometry.gw, 0)
        total += output_size[0] * output_size[1] * (gh * gw * max(channels, 1) + gh + gw)
    return total


# ---------------------------------------------------------------------------------------------
# crop_and_resize entry points
# ---------------------------------------------------------------------------------------------

@dataclass
class CropEntry:
    """How one crop_and_resize entry point names and types its arguments."""
    image: str = "image"
    indices: str = "box_indices"
    shape: str = "image_shape"
    float_dtypes: tuple = NATIVE_FLOATS  # boxes and grads
    index_dtypes: tuple = INTEGERS
    image_dtypes: tuple = NATIVE_IMAGES
    methods: tuple = ("bilinear", "nearest", "bilinear_v2")
    native: bool = True  # the native dtype rules and options (data_format, dtype, out)
    aliases: tuple = ()  # other names its messages may use for its arguments


_TF = dict(float_dtypes=("float32",), index_dtypes=("int32",),
           image_dtypes=tuple(d for d in NATIVE_IMAGES if d != "bfloat16"), native=False)
CROP_ENTRIES = {
    "crop_and_resize": CropEntry(),
    "crop_and_resize_grad_image": CropEntry(),
    "crop_and_resize_grad_boxes": CropEntry(),
    "nn.CropAndResize": CropEntry(),
    "tensorflow.crop_and_resize": CropEntry(methods=("bilinear", "nearest"), **_TF),
    "tensorflow.raw_ops.CropAndResize": CropEntry(indices="box_ind", shape="image_size",
                                                  methods=("bilinear", "nearest"), **_TF),
    "mindspore.CropAndResize": CropEntry(image="x", indices="box_index", shape="image_size",
                                         **_TF),
    "nn.MindSporeCropAndResize": CropEntry(image="x", indices="box_index", **_TF),
}
CROP_ENTRIES["tensorflow.raw_ops.CropAndResizeGradImage"] = CROP_ENTRIES[
    "tensorflow.raw_ops.CropAndResize"]
CROP_ENTRIES["tensorflow.raw_ops.CropAndResizeGradBoxes"] = CROP_ENTRIES[
    "tensorflow.raw_ops.CropAndResize"]
CROP_ENTRIES["mindspore.CropAndResizeGradImage"] = CROP_ENTRIES["mindspore.CropAndResize"]
CROP_ENTRIES["mindspore.CropAndResizeGradBoxes"] = CROP_ENTRIES["mindspore.CropAndResize"]

BAD_METHODS = ["area", "NEAREST", "", None, 1, b"bilinear", "bilinear "]
BAD_FORMATS = ["nhwc", "NDHWC", None, ""]


def crop_dims(draft):
    """(B, H, W, D, N): batch, height, width, depth and box count; rarely 0."""
    return tuple(dimension(draft, sizes) for sizes in ([1, 2], [1, 2, 3, 5], [1, 2, 4],
                                                        [1, 2, 3, 17], [1, 2, 3]))


def dimension(draft, sizes):
    return 0 if draft.rarely() else draft.draw(st.sampled_from(sizes))


def data_format(draft, entry):
    return draft.pick("data_format", ["NHWC", "NCHW"], BAD_FORMATS) if entry.native else "NHWC"


def crop_boxes(draft, entry, batch, count):
    """boxes ``[count, 4]`` and their indices, with the rules their values break."""
    maker = draft.maker
    boxes, boxes_ok = maker.array(draft, "boxes", box_rows(draft, count, 1, 1),
                                  entry.float_dtypes)
    indices, indices_ok = box_indices(draft, entry.indices, batch, count, entry.index_dtypes)
    if boxes_ok:
        refuse_non_finite(draft, "boxes", boxes)
    if indices_ok:
        refuse_bad_indices(draft, entry.indices, indices, batch)
    return boxes, indices


def crop_image(draft, entry, dims, layout, name=None):
    """An image ``[B, H, W, D]`` (NCHW order when ``layout`` says so): (value, ok)."""
    values = data_values(draft, dims)
    if layout == "NCHW":
        values = values.transpose(0, 3, 1, 2).copy()
    name = name or entry.image
    image, ok = draft.maker.array(draft, name, values, entry.image_dtypes)
    if ok and (dims[1] == 0 or dims[2] == 0):
        draft.refuse(f"{name} of size {dims[1]}x{dims[2]}", (name,), ValueError)
    return image, ok


def known_dtype(maker, value):
    """The dtype name of an array or tensor argument, whatever else it breaks (the rules that
    follow from its dtype apply before its shape is checked); float32 for anything else,
    strings and bytes included (NumPy cannot parse their names back: 'str256')."""
    name = maker.dtype_name(value) if hasattr(value, "dtype") else "float32"
    return "float32" if name.startswith(("str", "bytes")) else name


def output_dtype(maker, value):
    """docs/api.md#dtypes: the image's float dtype, float32 for integer images (and for
    anything else)."""
    name = known_dtype(maker, value)
    return name if name in NATIVE_FLOATS else "float32"


def out_argument(draft, shape, dtype, image):
    """``out=`` of a native NumPy forward: None, a fitting array, or a refused one."""
    draw = draft.draw
    if not draft.maker.supports_out:
        if draft.rarely():
            draft.refuse("out with tensors", ("out",), ValueError)
            return np.zeros(1, F32)
        return None
    small = math.prod(shape) < 10**5
    kind = draw(st.sampled_from(["none", "none", "fits"])) if small else "none"
    if small and draft.rarely():
        kind = draw(st.sampled_from(["dtype", "shape", "strided", "read-only", "overlap",
                                     "list"]))
    if kind == "none":
        return None
    out = np.full(shape, np.nan, dtype)
    if kind == "overlap":
        if not (isinstance(image, np.ndarray) and image.dtype == out.dtype and image.size >=
                out.size > 0 and image.flags.c_contiguous and image.flags.writeable):
            return out
        out = image.reshape(-1)[:out.size].reshape(shape)
    elif kind == "dtype":
        out = out.astype(F64 if out.dtype != F64 else F32)
    elif kind == "shape":
        out = np.zeros(shape + (1,), dtype)
    elif kind == "strided":  # an empty array is contiguous, however strided
        if out.ndim and out.size and out.shape[-1] > 1:
            out = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]
        else:
            return out
    elif kind == "read-only":
        out.flags.writeable = False
    elif kind == "list":
        out = out.tolist()
    if kind != "fits":
        draft.refuse(f"out: {kind}", ("out",), ValueError)
    return out


def crop_forward(draft, name):
    entry = CROP_ENTRIES[name]
    maker, draw = draft.maker, draft.draw
    batch, height, width, depth, count = crop_dims(draft)
    layout = data_format(draft, entry)
    image, _ = crop_image(draft, entry, (batch, height, width, depth), layout)
    boxes, indices = crop_boxes(draft, entry, batch, count)
    crop_value, crop = size_pair(draft, "crop_size", (draw(st.integers(1, 4)),
                                                      draw(st.integers(1, 4))))
    result_dtype = output_dtype(maker, image) if entry.native else "float32"
    compute = F64 if result_dtype == "float64" else F32
    method = draft.pick("method", entry.methods, BAD_METHODS)
    mindspore = name.endswith("MindSporeCropAndResize") or name.startswith("mindspore")
    value = extrapolation_value(draft, compute=compute, python_float=mindspore)
    shape = None
    if crop is not None:
        shape = (count, *crop, depth) if layout == "NHWC" else (count, depth, *crop)
        if refuse_if_too_big(draft, "crop_size", shape, np.dtype(maker.numpy_dtype(
                result_dtype)).itemsize):
            shape = None
    out = None
    takes_out = name == "crop_and_resize"  # the native function (nn.CropAndResize has none)
    if takes_out and shape is not None:
        out = out_argument(draft, shape, maker.numpy_dtype(result_dtype), image)
    elif takes_out and maker.supports_out and draft.rarely():
        out = np.zeros(1, F32)
        draft.refuse("out of the wrong shape", ("out",), ValueError)

    def expected():
        if count * crop[0] * crop[1] * max(depth, 1) > REFERENCE_BUDGET:
            return maker.shaped(shape, result_dtype)
        want = crop_reference.crop_and_resize(
            nhwc(maker.values(image), layout), maker.values(boxes), maker.values(indices), crop,
            method, value, F=compute)
        return maker.rounded(nchw_result(want, layout), result_dtype)

    arguments = {entry.image: image, "boxes": boxes, entry.indices: indices,
                 "crop_size": crop_value, "method": method, "extrapolation_value": value}
    if entry.native:
        arguments["data_format"] = layout
    if takes_out:
        arguments["out"] = out
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def gradient_dtype(draft, entry, grads, grads_ok, name):
    """The result dtype option: the native ``dtype`` (None: the grads' dtype) or ``T``.

    Returns ``(value, result dtype name)``."""
    maker = draft.maker
    valid = [np.float16, "float32", np.dtype(F64), "f8", "<f4"] + maker.dtype_spellings(
        entry.native)
    if entry.native:
        valid.append(None)
    hostile = [(np.int32, TypeError), ("foo", TypeError), (1, TypeError), (2.5, TypeError),
               (">f4", TypeError), (np.complex64, TypeError), (bool, TypeError)]
    if not entry.native:
        hostile.append((None, TypeError))
    value = draft.pick(name, valid, hostile)
    if value is None:
        return value, maker.dtype_name(grads) if grads_ok else "float32"
    try:
        return value, maker.dtype_name_of(value)
    except TypeError:
        return value, "float32"


def crop_grad_image(draft, name):
    entry = CROP_ENTRIES[name]
    maker, draw = draft.maker, draft.draw
    batch, height, width, depth, count = crop_dims(draft)
    crop = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    layout = data_format(draft, entry)
    values = data_values(draft, (count, *crop, depth))
    grads, grads_ok = maker.array(draft, "grads", nchw_result(values, layout).copy(),
                                  entry.float_dtypes)
    boxes, indices = crop_boxes(draft, entry, batch, count)
    dims = (batch, height, width, depth)
    shape_value, given = shape_argument(draft, entry.shape, nchw_result_dims(dims, layout))
    dtype_name = "dtype" if entry.native else "T"
    dtype_value, result_dtype = gradient_dtype(draft, entry, grads, grads_ok, dtype_name)
    method = draft.pick("method", entry.methods[:2] if not entry.native else entry.methods,
                        BAD_METHODS + ([] if entry.native else ["bilinear_v2"]))
    shape = None
    if given is not None:
        shape = nhwc_dims(given, layout)
        if shape[1] == 0 or shape[2] == 0:
            draft.refuse(f"{entry.shape} of size {shape[1]}x{shape[2]}", (entry.shape,),
                         ValueError)
        if shape[3] != depth:
            draft.refuse(f"{entry.shape} depth {shape[3]}, grads depth {depth}",
                         (entry.shape, "grads"), ValueError)
        if shape[0] != batch and count:
            refuse_bad_indices(draft, entry.indices, indices, shape[0])
        if refuse_if_too_big(draft, entry.shape, shape, 8):
            shape = None
    compute = F64 if result_dtype == "float64" else F32

    def expected():
        accumulate = compute if entry.native else np.dtype(result_dtype).type
        want = crop_reference.crop_and_resize_grad_image(
            nhwc(maker.values(grads), layout), maker.values(boxes), maker.values(indices),
            shape, method, accumulate=accumulate, F=F32 if not entry.native else compute)
        return maker.rounded(nchw_result(want, layout), result_dtype)

    arguments = {"grads": grads, "boxes": boxes, entry.indices: indices,
                 entry.shape: shape_value, "method": method, dtype_name: dtype_value}
    if entry.native:
        arguments["data_format"] = layout
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def nchw_result_dims(dims, layout):
    return dims if layout == "NHWC" else (dims[0], dims[3], dims[1], dims[2])


def nhwc_dims(dims, layout):
    return dims if layout == "NHWC" else (dims[0], dims[2], dims[3], dims[1])


def crop_grad_boxes(draft, name):
    entry = CROP_ENTRIES[name]
    maker, draw = draft.maker, draft.draw
    batch, height, width, depth, count = crop_dims(draft)
    crop = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    layout = data_format(draft, entry)
    grads_depth = depth
    if draft.rarely():
        grads_depth = depth + 1
        draft.refuse(f"grads depth {grads_depth}, image depth {depth}", ("grads", "image"),
                     ValueError)
    values = data_values(draft, (count, *crop, grads_depth))
    grads, grads_ok = maker.array(draft, "grads", nchw_result(values, layout).copy(),
                                  entry.float_dtypes)
    image, _ = crop_image(draft, entry, (batch, height, width, depth), layout, name="image")
    boxes, indices = crop_boxes(draft, entry, batch, count)
    method = draft.pick("method", entry.methods if entry.native else ("bilinear",),
                        BAD_METHODS + ([] if entry.native else ["nearest", "bilinear_v2"]))
    result_dtype = output_dtype(maker, image) if entry.native else "float32"
    compute = compute_type(maker.numpy_dtype(result_dtype))

    def expected():
        want = crop_reference.crop_and_resize_grad_boxes(
            nhwc(maker.values(grads), layout).astype(compute), nhwc(maker.values(image), layout),
            maker.values(boxes), maker.values(indices),
            crop1_rule="mindspore" if name.startswith("mindspore") else "tensorflow", F=compute)
        return maker.rounded(want, result_dtype)

    arguments = {"grads": grads, "image": image, "boxes": boxes, entry.indices: indices,
                 "method": method}
    if entry.native:
        arguments["data_format"] = layout
    return draft.call(name, arguments, expected, aliases=entry.aliases)


# ---------------------------------------------------------------------------------------------
# roi_align entry points
# ---------------------------------------------------------------------------------------------

@dataclass
class RoiEntry:
    """How one roi_align entry point names and types its arguments."""
    family: str = "native"  # "native", "mindspore" or "torchvision": options and dtype rules
    input: str = "input"
    rois: str = "rois"
    grads: str = "grads"
    shape: str = "input_shape"
    dtypes: tuple = NATIVE_FLOATS  # feature maps and gradients
    rois_dtypes: tuple = NATIVE_FLOATS
    aliases: tuple = ()

    @property
    def size(self):
        return "pooled_height" if self.family == "mindspore" else "output_size"


_MS = dict(family="mindspore", input="features", dtypes=("float16", "float32"),
           rois_dtypes=("float16", "float32"))
# torchvision's forward takes bfloat16 tensors too (computed in float32, boxes in float32);
# its backward reproduces torchvision's arithmetic on the host, which has no bfloat16.
_TV = dict(family="torchvision", rois="boxes")
_TV_HOST = dict(_TV, dtypes=("float16", "float32", "float64"),
                rois_dtypes=("float16", "float32", "float64"))
ROI_ENTRIES = {
    "roi_align": RoiEntry(),
    "roi_align_grad_input": RoiEntry(),
    "roi_align_grad_boxes": RoiEntry(),
    "nn.RoIAlign": RoiEntry(),
    "mindspore.ROIAlign": RoiEntry(**_MS),
    "nn.MindSporeROIAlign": RoiEntry(**_MS),
    "mindspore.ROIAlignGrad": RoiEntry(grads="dy", shape="xdiff_shape", **_MS),
    "torchvision.roi_align": RoiEntry(**_TV),
    "torchvision.roi_align_backward": RoiEntry(grads="grad_output", **_TV_HOST),
    # torchvision's RoIAlign.forward(input, rois) calls roi_align(input, rois): its messages
    # name the rois "boxes", as torchvision's own do.
    "torchvision.RoIAlign": RoiEntry(**dict(_TV, rois="rois"), aliases=("boxes",)),
}


def roi_dims(draft):
    """(N, C, H, W, K, PH, PW): batch, channels, map size, roi count (rarely 0), pooled size."""
    batch, channels, height, width, count = (
        dimension(draft, sizes) for sizes in ([1, 2], [1, 2, 3, 17], [1, 2, 3, 5], [1, 2, 4],
                                              [1, 2, 3]))
    draw = draft.draw
    return batch, channels, height, width, count, draw(st.integers(1, 3)), draw(
        st.integers(1, 3))


def roi_rows(draft, batch, height, width, count, mindspore):
    """``[count, 5]`` float64 rows ``(batch_index, x1, y1, x2, y2)`` in image units; batch
    indices valid as the convention reads them (truncated, or rounded from ``v + 7e-5``)."""
    draw = draft.draw
    boxes = box_rows(draft, count, 2.0 * height + 1, 2.0 * width + 1)[:, [1, 0, 3, 2]]
    valid = list(range(batch or 1))
    valid += ([0.49993] if batch > 1 else []) + [-0.0] if mindspore else [
        0.3, -0.5, 0.999, max(batch - 1, 0) + 0.75]
    column = [draw(st.sampled_from(valid)) for _ in range(count)]
    if count and draft.rarely():
        column[draw(st.integers(0, count - 1))] = draw(
            st.sampled_from([batch, -1, 1e30, 2.5e9, math.nan]))
    return np.column_stack([np.array(column, F64), boxes]).reshape(count, 5)


def refuse_bad_rois(draft, name, rows, batch, mindspore):
    """docs/errors.md: finite rows; the batch index in range as each convention reads it
    (torchvision: truncated, in [0, N); MindSpore: the raw value in [0, N - 1])."""
    if not np.isfinite(rows).all():
        draft.refuse(f"{name} not finite", (name,), ValueError)
        return
    column = rows[:, 0]
    if mindspore:
        raw = column.astype(F32)
        bad = (raw < 0) | (raw > F32(batch - 1))
    else:
        bad = (np.trunc(column) < 0) | (np.trunc(column) >= batch)
    if bad.any():
        draft.refuse(f"{name} batch index outside [0, {batch})", (name,), ValueError)


def call_rois(draft, entry, rows):
    """The rois argument: ``(value, its rows as float64 in call order)``, the rows None when
    the value breaks a rule (recorded). torchvision's also come as a list of ``[L, 4]``
    arrays, one per image."""
    maker, draw = draft.maker, draft.draw
    if entry.family != "torchvision" or draw(st.booleans()):
        value, ok = maker.array(draft, entry.rois, rows, entry.rois_dtypes)
        if isinstance(value, list) and not value and entry.family == "torchvision":
            # an empty list of per-image boxes to torchvision
            draft.refuse("an empty list of boxes", (entry.rois,), ValueError)
        return value, maker.values(value).astype(F64) if ok else None
    images = draw(st.integers(0, 3))
    if not images:
        draft.refuse("an empty list of boxes", (entry.rois,), ValueError)
        return [], None
    owner = np.array([draw(st.integers(0, images - 1)) for _ in range(len(rows))], int)
    items, ordered, ok = [], [], True
    for image in range(images):
        item, item_ok = maker.array(draft, f"{entry.rois}[{image}]", rows[owner == image, 1:],
                                    entry.rois_dtypes)
        items.append(item)
        ok = ok and item_ok
        if item_ok:
            mine = maker.values(item).astype(F64)
            ordered.append(np.column_stack([np.full(len(mine), image, F64), mine]))
    return items, np.concatenate(ordered).reshape(-1, 5) if ok else None


def roi_options(draft, entry, data_dtype, pair, cells):
    """The options of ``entry``: (call values, reference options, pooled size or None).

    The scale must stay finite in the types it is computed in, which :func:`roi_forward` and
    friends judge once the rois' dtype is known."""
    if entry.family == "mindspore":
        pooled = mindspore_pooled(draft, pair)
        call = dict(pooled_height=pooled[0], pooled_width=pooled[1],
                    spatial_scale=spatial_scale(draft, python_float=True),
                    sample_num=sampling_ratio(draft, "sample_num", True, cells))
        mode = 1
        if entry.grads != "dy":  # ROIAlignGrad has MindSpore's fixed roi_end_mode = 1
            mode = call["roi_end_mode"] = draft.pick(
                "roi_end_mode", [0, 1], [(2, ValueError), (-1, ValueError), (1.0, TypeError),
                                         (True, TypeError)])
        reference = dict(spatial_scale=call["spatial_scale"], sampling_ratio=call["sample_num"],
                         aligned=False, convention="mindspore", roi_end_mode=mode)
        valid = all(type(s) is int and 0 < s <= MAX_INDEX for s in pooled)
        return call, reference, pooled if valid else None
    size_value, pooled = size_pair(draft, "output_size", pair, allow_int=True)
    call = dict(output_size=size_value, spatial_scale=spatial_scale(draft),
                sampling_ratio=sampling_ratio(draft, cells=cells))
    if entry.family == "native":
        call.update(native_convention(draft))
    else:
        call["aligned"] = draft.pick("aligned", [False, True], [(1, TypeError),
                                                                ("yes", TypeError)])
    reference = dict(spatial_scale=call["spatial_scale"], sampling_ratio=call["sampling_ratio"],
                     aligned=bool(call["aligned"]), convention=call.get("convention",
                                                                        "torchvision"),
                     roi_end_mode=call.get("roi_end_mode", 1))
    return call, reference, pooled


def native_convention(draft):
    """convention, aligned and roi_end_mode; rarely an option the convention does not take."""
    convention = draft.pick("convention", ["torchvision", "mindspore"],
                            ["detectron", "TorchVision", None, ""])
    if convention == "mindspore":
        mode = draft.pick("roi_end_mode", [0, 1, np.int8(0)],
                          [(2, ValueError), (-1, ValueError), (1.0, TypeError),
                           (True, TypeError), ("1", TypeError)])
        aligned = draft.pick("aligned", [False, np.bool_(False)],
                             [(True, ValueError), (1, TypeError)])
    elif convention == "torchvision":
        mode = draft.pick("roi_end_mode", [1], [(0, ValueError), (2, ValueError),
                                                (1.0, TypeError)])
        aligned = draft.pick("aligned", [False, True, np.bool_(True)],
                             [(1, TypeError), ("yes", TypeError), (None, TypeError)])
    else:
        mode, aligned = 1, False
    return dict(aligned=aligned, convention=convention, roi_end_mode=mode)


def mindspore_pooled(draft, pair):
    """MindSpore's pooled_height and pooled_width: Python ints (its constructor's rule)."""
    sizes = []
    for name, size in zip(("pooled_height", "pooled_width"), pair):
        if draft.rarely():
            size = draft.draw(st.sampled_from([HUGE, 2**62]))
        else:
            size = draft.pick(name, [size], [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                             (True, TypeError), (np.int64(2), TypeError),
                                             (2**63, ValueError)])
        sizes.append(size)
    return tuple(sizes)


def roi_arguments(draft, entry, data, dims, pair):
    """Options, rois and the rules they break, for the data argument ``data`` of a call with
    ``dims`` (N, C, H, W, K): returns (call options, reference options, pooled size, rois
    value, rows, reference type F)."""
    maker = draft.maker
    batch, channels, height, width, count = dims
    data_dtype = known_dtype(maker, data)
    call, options, pooled = roi_options(draft, entry, data_dtype, pair,
                                        count * channels * pair[0] * pair[1])
    mindspore = options["convention"] == "mindspore"
    rois, rows = call_rois(draft, entry, roi_rows(draft, batch, height, width, count,
                                                  mindspore))
    rois_dtype = None if isinstance(rois, list) else known_dtype(maker, rois)
    half = data_dtype == "float16" and entry.family == "torchvision" or (
        data_dtype == rois_dtype == "float16" and entry.family == "mindspore")
    F = np.float16 if half else compute_type(maker.numpy_dtype(data_dtype))
    # the scale is rounded through float32 (torchvision and MindSpore hold it there), then
    # through the arithmetic type
    chain = (F,) if entry.family == "native" or F is F64 else (F32, F)
    refuse_overflow(draft, "spatial_scale", call["spatial_scale"], *chain)
    if rows is not None and entry.family == "torchvision":  # converted to the data's dtype
        with np.errstate(over="ignore"):
            rows = rows.astype(maker.numpy_dtype(data_dtype)).astype(F64)
    return call, options, pooled, rois, rows, F


def affordable_rows(rows, pooled, channels, options, F):
    """The rows in the reference's type ``F``, or None where the reference would cost too much
    or cannot run."""
    rows = rows.astype(F)
    cost = roi_cost(rows, pooled, channels, options, F)
    return rows if cost is not None and cost <= REFERENCE_BUDGET else None


def feature_maps(draft, name, dims, dtypes):
    """Feature maps ``[N, C, H, W]`` as the argument ``name``: (value, ok), the rule of a
    map of height or width 0 recorded."""
    features, ok = draft.maker.array(draft, name, data_values(draft, dims), dtypes)
    if ok and (dims[2] == 0 or dims[3] == 0):
        draft.refuse(f"{name} of size {dims[2]}x{dims[3]}", (name,), ValueError)
    return features, ok


def roi_forward(draft, name):
    entry = ROI_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    features, features_ok = feature_maps(draft, entry.input, (batch, channels, height, width),
                                         entry.dtypes)
    call, options, pooled, rois, rows, F = roi_arguments(
        draft, entry, features, (batch, channels, height, width, count), tuple(pair))
    if rows is not None:
        refuse_bad_rois(draft, entry.rois, rows, batch, options["convention"] == "mindspore")
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    shape = None
    if pooled is not None:
        shape = (count, channels, *pooled)
        itemsize = np.dtype(maker.numpy_dtype(data_dtype)).itemsize
        if refuse_if_too_big(draft, entry.size, shape, itemsize):
            shape = None
    out = None
    if name == "roi_align" and shape is not None:
        out = out_argument(draft, shape, maker.numpy_dtype(data_dtype), features)

    def expected():
        affordable = affordable_rows(rows, pooled, channels, options, F)
        if affordable is None:
            return maker.shaped(shape, data_dtype)
        want = roi_reference.roi_align(maker.values(features).astype(F), affordable, pooled,
                                       F=F, **options)
        return maker.rounded(want, data_dtype)

    arguments = {entry.input: features, entry.rois: rois, **call}
    if name == "roi_align":
        arguments["out"] = out
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def roi_gradients(draft, entry, count, channels, pooled_pair):
    """grads ``[K, C, PH, PW]`` (rarely one channel too many): (value, ok, channels)."""
    if draft.rarely():
        channels += 1
    values = data_values(draft, (count, channels) + pooled_pair)
    grads, ok = draft.maker.array(draft, entry.grads, values, entry.dtypes)
    return grads, ok, channels


def refuse_gradient_shape(draft, entry, grads_channels, channels, pooled, pair):
    if grads_channels != channels or (pooled is not None and tuple(pooled) != pair):
        draft.refuse(f"{entry.grads} of {grads_channels} channels and pooled size {pair}",
                     (entry.grads,), ValueError)


def roi_grad_input(draft, name):
    entry = ROI_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(draft, entry, count, channels, pair)
    call, options, pooled, rois, rows, F = roi_arguments(
        draft, entry, grads, (batch, channels, height, width, count), pair)
    data_dtype = maker.dtype_name(grads) if grads_ok else "float32"
    shape_value, dims = shape_argument(draft, entry.shape, (batch, channels, height, width))
    if dims is not None:
        if dims[2] == 0 or dims[3] == 0:
            draft.refuse(f"{entry.shape} of size {dims[2]}x{dims[3]}", (entry.shape,),
                         ValueError)
        refuse_gradient_shape(draft, entry, grads_channels, dims[1], pooled, pair)
        if rows is not None:
            refuse_bad_rois(draft, entry.rois, rows, dims[0],
                            options["convention"] == "mindspore")
        refuse_if_too_big(draft, entry.shape, dims, 8)

    def expected():
        affordable = affordable_rows(rows, pooled, channels, options, F)
        if affordable is None:
            return maker.shaped(dims, data_dtype)
        want = roi_reference.roi_align_grad_input(maker.values(grads), affordable, dims,
                                                  pooled, F=F, **options)
        return maker.rounded(want, data_dtype)

    arguments = {entry.grads: grads, entry.rois: rois, entry.shape: shape_value, **call}
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def roi_grad_boxes(draft, name):
    entry = ROI_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(draft, entry, count, channels, pair)
    features, features_ok = maker.array(draft, "input", data_values(
        draft, (batch, channels, height, width)), entry.dtypes)
    if features_ok and (height == 0 or width == 0):
        draft.refuse(f"input of size {height}x{width}", ("input",), ValueError)
    call, options, pooled, rois, rows, F = roi_arguments(
        draft, entry, features, (batch, channels, height, width, count), pair)
    refuse_gradient_shape(draft, entry, grads_channels, channels, pooled, pair)
    if rows is not None:
        refuse_bad_rois(draft, "rois", rows, batch, options["convention"] == "mindspore")
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    close = grad_boxes_tolerance(maker, grads, features, data_dtype, call["spatial_scale"]) \
        if grads_ok and features_ok else None

    def expected():
        affordable = affordable_rows(rows, pooled, channels, options, F)
        if affordable is None or close is None:
            return maker.shaped((count, 5), data_dtype)
        want = roi_reference.roi_align_grad_boxes(maker.values(grads).astype(F),
                                                  maker.values(features).astype(F), affordable,
                                                  pooled, F=F, **options)
        return maker.rounded(want, data_dtype)

    arguments = {"grads": grads, "input": features, "rois": rois, **call}
    return draft.call(name, arguments, expected, close=close or False)


def grad_boxes_tolerance(maker, grads, features, data_dtype, scale, reach=1.0):
    """roi_align_grad_boxes has no prescribed summation order (test_properties.py): a
    tolerance from a bound on its terms, or None (shape and dtype only) for data with
    non-finite or huge values, where the order decides between inf and NaN. ``features``:
    one map or a list (a pyramid); ``scale``: one or a list (the largest counts); ``reach``:
    a further factor of the terms (a rotated roi's extent, for its angle)."""
    maps = features if isinstance(features, list) else [features]
    g = maker.values(grads).astype(F64)
    x = np.concatenate([np.zeros(0)] + [maker.values(m).astype(F64).ravel() for m in maps])
    largest = max(np.abs(g).max(initial=0), np.abs(x).max(initial=0))
    if not (np.isfinite(g).all() and np.isfinite(x).all() and largest < 1e6):
        return None
    rtol = {"float64": 1e-9, "float32": 1e-4}.get(data_dtype, 1e-2)
    try:
        scale = max((abs(float(s)) for s in (scale if isinstance(scale, (list, tuple))
                                             else [scale])), default=1.0)
    except (TypeError, ValueError, OverflowError):
        scale = 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # an inf scale: refused
        bound = np.abs(g).sum() * 2 * (np.abs(x).max(initial=0) + 1) * max(scale, 1.0) * reach
    return dict(rtol=rtol, atol=rtol * bound)


# ---------------------------------------------------------------------------------------------
# roi_pool entry points
# ---------------------------------------------------------------------------------------------

# torchvision's roi_pool reproduces its CPU kernel's dtypes (no bfloat16, on tensors either).
_TV_POOL = dict(family="torchvision", rois="boxes", dtypes=("float16", "float32", "float64"),
                rois_dtypes=("float16", "float32", "float64"))
POOL_ENTRIES = {
    "roi_pool": RoiEntry(),
    "roi_pool_grad_input": RoiEntry(),
    "nn.RoIPool": RoiEntry(),
    "torchvision.roi_pool": RoiEntry(**_TV_POOL),
    "torchvision.roi_pool_backward": RoiEntry(grads="grad_output", **_TV_POOL),
    # RoIPool.forward(input, rois) calls roi_pool(input, rois), whose messages say "boxes"
    "torchvision.RoIPool": RoiEntry(**dict(_TV_POOL, rois="rois"), aliases=("boxes",)),
}


def pool_rois(draft, entry, data, dims):
    """(rois value, rows, reference geometry type T, half): the rois of a roi_pool call whose
    data argument is ``data``, the scale's overflow rule and the rois' rules recorded."""
    rois, rows, T, half = typed_rois(draft, entry, data, dims)
    if rows is not None:
        refuse_bad_rois(draft, entry.rois, rows, dims[0], False)
    return rois, rows, T, half


def typed_rois(draft, entry, data, dims):
    """(rois value, rows, reference type T, half) of a torchvision-convention call whose data
    argument is ``data``, ``dims`` (N, H, W, K, spatial_scale): the scale's overflow rule
    recorded, the rows as the call reads them (torchvision's: in the data's dtype)."""
    maker = draft.maker
    batch, height, width, count, scale = dims
    rois, rows = call_rois(draft, entry, roi_rows(draft, batch, height, width, count, False))
    data_dtype = known_dtype(maker, data)
    half = data_dtype == "float16" and entry.family == "torchvision"
    T = np.float16 if half else compute_type(maker.numpy_dtype(data_dtype))
    refuse_overflow(draft, "spatial_scale", scale, *((F32, T) if half else (T,)))
    if rows is not None and entry.family == "torchvision":  # converted to the data's dtype
        with np.errstate(over="ignore", invalid="ignore"):
            rows = rows.astype(maker.numpy_dtype(data_dtype)).astype(F64)
    return rois, rows, T, half


def pool_forward(draft, name):
    entry = POOL_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    features, features_ok = maker.array(draft, entry.input, data_values(
        draft, (batch, channels, height, width)), entry.dtypes)
    if features_ok and (height == 0 or width == 0):
        draft.refuse(f"{entry.input} of size {height}x{width}", (entry.input,), ValueError)
    size_value, pooled = size_pair(draft, "output_size", tuple(pair), allow_int=True)
    scale = spatial_scale(draft)
    rois, rows, T, half = pool_rois(draft, entry, features,
                                    (batch, height, width, count, scale))
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    shape = output_shape(draft, count, channels, pooled, maker.numpy_dtype(data_dtype))

    def expected():
        if rows is None or not all(size <= 64 for size in pooled):
            return maker.shaped(shape, data_dtype)
        want, _ = pool_reference.roi_pool(maker.values(features), rows.astype(T), pooled,
                                          float(scale), half=half)
        return maker.rounded(want, data_dtype)

    arguments = {entry.input: features, entry.rois: rois, "output_size": size_value,
                 "spatial_scale": scale}
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def pool_grad_input(draft, name):
    entry = POOL_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(draft, entry, count, channels, pair)
    rng = np.random.default_rng(draft.draw(st.integers(0, 2**16)))
    plane = max(height * width, 1)
    positions = rng.integers(-1, plane, (count, channels) + pair).astype(F64)
    if positions.size and draft.rarely():
        positions.flat[rng.integers(positions.size)] = draft.draw(
            st.sampled_from([plane, -2, 2**31 - 1]))
        draft.refuse("argmax outside [-1, H * W)", ("argmax",), ValueError)
    argmax, argmax_ok = maker.array(draft, "argmax", positions, ("int32", "int64"))
    rois, rows = call_rois(draft, entry, roi_rows(draft, batch, height, width, count, False))
    data_dtype = maker.dtype_name(grads) if grads_ok else "float32"
    half = data_dtype == "float16" and entry.family == "torchvision"
    shape_value, dims = shape_argument(draft, entry.shape, (batch, channels, height, width))
    if dims is not None:
        if dims[2] == 0 or dims[3] == 0:
            draft.refuse(f"{entry.shape} of size {dims[2]}x{dims[3]}", (entry.shape,),
                         ValueError)
        if dims[2] * dims[3] > 2**31 - 1:  # the argmax is an int32 index into one plane
            draft.refuse(f"{entry.shape} planes of 2**31 elements", (entry.shape,), ValueError)
        if channels != dims[1]:
            draft.refuse(f"{entry.shape} of {dims[1]} channels", (entry.grads, "argmax"),
                         ValueError)
        if grads_channels != channels:
            draft.refuse(f"{entry.grads} of {grads_channels} channels", (entry.grads,),
                         ValueError)
        if rows is not None:
            refuse_bad_rois(draft, entry.rois, rows, dims[0], False)
        refuse_if_too_big(draft, entry.shape, dims, 8)
    elif grads_channels != channels:
        draft.refuse(f"{entry.grads} of {grads_channels} channels", (entry.grads,), ValueError)

    def expected():
        want = pool_reference.roi_pool_grad_input(maker.values(grads), maker.values(argmax),
                                                  rows, dims, half=half)
        return maker.rounded(want, data_dtype)

    arguments = {entry.grads: grads, "argmax": argmax, entry.rois: rois,
                 entry.shape: shape_value}
    return draft.call(name, arguments, expected, aliases=entry.aliases)


# ---------------------------------------------------------------------------------------------
# position-sensitive entry points (ps_roi_align, ps_roi_pool)
# ---------------------------------------------------------------------------------------------

# Output bin (c, ph, pw) reads input channel (c * PH + ph) * PW + pw: the maps hold
# C_out * PH * PW channels. The arguments are roi_align's and roi_pool's (torchvision's ops
# take float16/32/64 only, on tensors too; their backwards run on the host).
PS_ALIGN_ENTRIES = {
    "ps_roi_align": RoiEntry(),
    "ps_roi_align_grad_input": RoiEntry(),
    "ps_roi_align_grad_boxes": RoiEntry(),
    "nn.PSRoIAlign": RoiEntry(),
    "torchvision.ps_roi_align": RoiEntry(**_TV_HOST),
    "torchvision.ps_roi_align_backward": RoiEntry(grads="grad_output", **_TV_HOST),
    # PSRoIAlign.forward(input, rois) calls ps_roi_align(input, rois), whose messages say "boxes"
    "torchvision.PSRoIAlign": RoiEntry(**dict(_TV_HOST, rois="rois"), aliases=("boxes",)),
}
# ps_roi_align's geometry: roi_align's aligned torchvision one (for roi_cost)
PS_ALIGN_GEOMETRY = dict(aligned=True, convention="torchvision", roi_end_mode=1)


def ps_dims(draft):
    """(N, C, H, W, K, PH, PW) as :func:`roi_dims`, with ``C = C_out * PH * PW`` (``C_out``
    rarely 0); in a quarter of the calls that may break rules, a channel count that is not a
    multiple of the bins (unless they are one)."""
    draw = draft.draw
    batch, height, width, count = (dimension(draft, sizes) for sizes in (
        [1, 2], [1, 2, 3, 5], [1, 2, 4], [1, 2, 3]))
    pair = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    channels = dimension(draft, [1, 2, 3]) * pair[0] * pair[1]
    if draft.odds and draw(st.integers(0, 3)) == 0:
        channels = max(channels + draw(st.sampled_from([-1, 1, pair[1]])), 0)
    return batch, channels, height, width, count, *pair


def ps_output_channels(draft, name, channels, pooled):
    """``C / (PH * PW)``, or None where ``pooled`` is unknown or does not divide the channels
    (docs/errors.md: recorded, naming ``name``)."""
    if pooled is None:
        return None
    bins = pooled[0] * pooled[1]
    if channels % bins:
        draft.refuse(f"{name}: {channels} channels for {bins} bins", (name,), ValueError)
        return None
    return channels // bins


def ps_align_options(draft, pair, cells):
    """ps_roi_align's options: (call values, pooled size or None)."""
    size_value, pooled = size_pair(draft, "output_size", pair, allow_int=True)
    return dict(output_size=size_value, spatial_scale=spatial_scale(draft),
                sampling_ratio=sampling_ratio(draft, cells=cells)), pooled


def ps_align_affordable(rows, pooled, channels_out, call, F):
    """The rows in ``F``, or None where the reference would cost too much (roi_align's grid:
    each bin reads ``C_out`` channels)."""
    options = dict(PS_ALIGN_GEOMETRY, spatial_scale=call["spatial_scale"],
                   sampling_ratio=call["sampling_ratio"])
    return affordable_rows(rows, pooled, channels_out, options, F)


def ps_align_forward_reference(features, rows, pooled, call, F):
    return ps_align_reference.ps_roi_align(features, rows, pooled, call["spatial_scale"],
                                           call["sampling_ratio"], F=F)


def ps_align_grad_reference(grads, rows, dims, pooled, call, F):
    return ps_align_reference.ps_roi_align_grad_input(
        grads, rows, dims, pooled, call["spatial_scale"], call["sampling_ratio"], F=F)


PS_POOL_ENTRIES = {
    "ps_roi_pool": RoiEntry(),
    "ps_roi_pool_grad_input": RoiEntry(),
    "nn.PSRoIPool": RoiEntry(),
    "torchvision.ps_roi_pool": RoiEntry(**_TV_HOST),
    "torchvision.ps_roi_pool_backward": RoiEntry(grads="grad_output", **_TV_HOST),
    # PSRoIPool.forward(input, rois) calls ps_roi_pool(input, rois), whose messages say "boxes"
    "torchvision.PSRoIPool": RoiEntry(**dict(_TV_HOST, rois="rois"), aliases=("boxes",)),
}


def ps_pool_options(draft, pair, cells):
    """ps_roi_pool's options: (call values, pooled size or None)."""
    size_value, pooled = size_pair(draft, "output_size", pair, allow_int=True)
    return dict(output_size=size_value, spatial_scale=spatial_scale(draft)), pooled


def ps_pool_affordable(rows, pooled, channels_out, call, F):
    """The rows in ``F``, or None for more than 64 bins a side (the reference lists every
    bin) or roi corners and extents that overflow ``F`` once scaled (the backward rounds
    them through float32): torchvision casts those to int, undefined; the reference has no
    integer for them."""
    if not all(size <= 64 for size in pooled):
        return None
    rows = rows.astype(F)
    scale = F(call["spatial_scale"]) if F is F64 else F(F32(call["spatial_scale"]))
    with np.errstate(all="ignore"):
        corners = (rows[:, 1:] * scale).astype(F32)
        extents = (corners[:, 2:].astype(F64) - corners[:, :2]).astype(F)
    return rows if np.isfinite(corners).all() and np.isfinite(extents).all() else None


def ps_pool_forward_reference(features, rows, pooled, call, F):
    return ps_pool_reference.ps_roi_pool(features, rows, pooled, call["spatial_scale"], F=F)


def ps_pool_grad_reference(grads, rows, dims, pooled, call, F):
    return ps_pool_reference.ps_roi_pool_grad_input(grads, rows, dims, pooled,
                                                    call["spatial_scale"], F=F)


@dataclass
class PsOperator:
    """What differs between the position-sensitive operators: their entry points, options,
    reference cost rule and references."""
    entries: dict
    options: object  # (draft, pair, cells) -> (call options, pooled size or None)
    affordable: object  # (rows, pooled, C_out, call options, F) -> rows in F, or None
    forward: object  # (features, rows, pooled, call options, F) -> result in F
    grad_input: object  # (grads, rows, input dims, pooled, call options, F) -> result in F


PS_ALIGN = PsOperator(PS_ALIGN_ENTRIES, ps_align_options, ps_align_affordable,
                      ps_align_forward_reference, ps_align_grad_reference)
PS_POOL = PsOperator(PS_POOL_ENTRIES, ps_pool_options, ps_pool_affordable,
                     ps_pool_forward_reference, ps_pool_grad_reference)
PS_OPERATORS = (PS_ALIGN, PS_POOL)


def ps_entry(name):
    """(entry, operator) of a position-sensitive entry point."""
    operator = next(op for op in PS_OPERATORS if name in op.entries)
    return operator.entries[name], operator


def ps_forward(draft, name):
    entry, operator = ps_entry(name)
    maker = draft.maker
    batch, channels, height, width, count, *pair = ps_dims(draft)
    features, features_ok = maker.array(draft, entry.input, data_values(
        draft, (batch, channels, height, width)), entry.dtypes)
    if features_ok and (height == 0 or width == 0):
        draft.refuse(f"{entry.input} of size {height}x{width}", (entry.input,), ValueError)
    call, pooled = operator.options(draft, tuple(pair), count * channels)
    channels_out = ps_output_channels(draft, entry.input, channels, pooled)
    rois, rows, F, _ = typed_rois(draft, entry, features, (batch, height, width, count,
                                                            call["spatial_scale"]))
    if rows is not None:
        refuse_bad_rois(draft, entry.rois, rows, batch, False)
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    shape = output_shape(draft, count, channels_out, pooled, maker.numpy_dtype(data_dtype))
    out = None
    if name in ("ps_roi_align", "ps_roi_pool") and shape is not None:
        out = out_argument(draft, shape, maker.numpy_dtype(data_dtype), features)

    def expected():
        affordable = operator.affordable(rows, pooled, channels_out, call, F)
        if affordable is None:
            return maker.shaped(shape, data_dtype)
        want = operator.forward(maker.values(features), affordable, pooled, call, F)
        return maker.rounded(want, data_dtype)

    arguments = {entry.input: features, entry.rois: rois, **call}
    if name in ("ps_roi_align", "ps_roi_pool"):
        arguments["out"] = out
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def ps_grad_input(draft, name):
    entry, operator = ps_entry(name)
    maker = draft.maker
    batch, channels, height, width, count, *pair = ps_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(
        draft, entry, count, channels // (pair[0] * pair[1]), pair)
    call, pooled = operator.options(draft, pair, count * channels)
    rois, rows, F, _ = typed_rois(draft, entry, grads, (batch, height, width, count,
                                                         call["spatial_scale"]))
    data_dtype = maker.dtype_name(grads) if grads_ok else "float32"
    shape_value, dims = shape_argument(draft, entry.shape, (batch, channels, height, width))
    channels_out = None
    if dims is not None:
        if dims[2] == 0 or dims[3] == 0:
            draft.refuse(f"{entry.shape} of size {dims[2]}x{dims[3]}", (entry.shape,),
                         ValueError)
        channels_out = ps_output_channels(draft, entry.shape, dims[1], pooled)
        if channels_out is not None and (grads_channels, pair) != (channels_out, pooled):
            draft.refuse(f"{entry.grads} of {grads_channels} channels and pooled size {pair}",
                         (entry.grads,), ValueError)
        if rows is not None:
            refuse_bad_rois(draft, entry.rois, rows, dims[0], False)
        refuse_if_too_big(draft, entry.shape, dims, 8)

    def expected():
        affordable = operator.affordable(rows, pooled, channels_out, call, F)
        if affordable is None:
            return maker.shaped(dims, data_dtype)
        want = operator.grad_input(maker.values(grads), affordable, dims, pooled, call, F)
        return maker.rounded(want, data_dtype)

    arguments = {entry.grads: grads, entry.rois: rois, entry.shape: shape_value, **call}
    return draft.call(name, arguments, expected, aliases=entry.aliases)


def ps_grad_boxes(draft, name):
    entry = PS_ALIGN_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = ps_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(
        draft, entry, count, channels // (pair[0] * pair[1]), pair)
    features, features_ok = maker.array(draft, "input", data_values(
        draft, (batch, channels, height, width)), entry.dtypes)
    if features_ok and (height == 0 or width == 0):
        draft.refuse(f"input of size {height}x{width}", ("input",), ValueError)
    call, pooled = ps_align_options(draft, pair, count * channels)
    channels_out = ps_output_channels(draft, "input", channels, pooled)
    if channels_out is not None and (grads_channels, pair) != (channels_out, pooled):
        draft.refuse(f"grads of {grads_channels} channels and pooled size {pair}", ("grads",),
                     ValueError)
    rois, rows, F, _ = typed_rois(draft, entry, features, (batch, height, width, count,
                                                            call["spatial_scale"]))
    if rows is not None:
        refuse_bad_rois(draft, "rois", rows, batch, False)
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    close = grad_boxes_tolerance(maker, grads, features, data_dtype, call["spatial_scale"]) \
        if grads_ok and features_ok else None

    def expected():
        affordable = ps_align_affordable(rows, pooled, channels_out, call, F)
        if affordable is None or close is None:
            return maker.shaped((count, 5), data_dtype)
        want = ps_align_reference.ps_roi_align_grad_boxes(
            maker.values(grads).astype(F), maker.values(features).astype(F), affordable, pooled,
            call["spatial_scale"], call["sampling_ratio"], F=F)
        return maker.rounded(want, data_dtype)

    arguments = {"grads": grads, "input": features, "rois": rois, **call}
    return draft.call(name, arguments, expected, close=close or False)


# ---------------------------------------------------------------------------------------------
# roi_align_rotated entry points
# ---------------------------------------------------------------------------------------------

@dataclass
class RotatedEntry:
    """How one rotated roi_align entry point takes its options: ``family`` "native" (all of
    them, convention included), "detectron2" (no aligned/clockwise) or "mmcv"; detectron2 and
    mmcv hold the scale as a C float (rounded to float32)."""
    family: str = "native"


ROTATED_ENTRIES = {
    "roi_align_rotated": RotatedEntry(),
    "roi_align_rotated_grad_input": RotatedEntry(),
    "roi_align_rotated_grad_boxes": RotatedEntry(),
    "nn.RoIAlignRotated": RotatedEntry(),
    "detectron2.ROIAlignRotated": RotatedEntry("detectron2"),
    "mmcv.roi_align_rotated": RotatedEntry("mmcv"),
    "mmcv.RoIAlignRotated": RotatedEntry("mmcv"),
}
ANGLES = (0.0, -0.0, 90.0, -30.0, 45.5, 1.5707964, 3.0, -2.5, 720.25, 1e10)
# the frameworks count a roi's samples per channel in a C int
MAX_SAMPLES_PER_ROI = 2**31 - 1
# the arrays' names and dtypes: roi_align's native ones
ROTATED_ARRAYS = RoiEntry()


def rotated_rows(draft, batch, height, width, count):
    """``[count, 6]`` float64 rows ``(batch_index, cx, cy, w, h, angle)``: a corner and the
    extent of :func:`box_rows`' boxes, any angle; rarely a flipped box's negative size (the
    aligned conventions refuse it)."""
    draw = draft.draw
    boxes = box_rows(draft, count, 2.0 * height + 1, 2.0 * width + 1)
    with np.errstate(invalid="ignore", over="ignore"):
        extents = boxes[:, [3, 2]] - boxes[:, [1, 0]]
    if not draft.rarely():
        extents = np.abs(extents)
    index = roi_rows(draft, batch, height, width, count, False)[:, 0]
    angles = [draw(st.sampled_from(ANGLES)) for _ in range(count)]
    return np.column_stack([index, boxes[:, [1, 0]], extents, angles]).reshape(count, 6)


def rotated_convention(draft, family):
    """(convention, aligned, clockwise) call values; rarely one the convention refuses."""
    if family == "detectron2":
        return "detectron2", True, False
    bools = [(1, TypeError), (None, TypeError), ("yes", TypeError)]
    convention = "mmcv" if family == "mmcv" else draft.pick(
        "convention", ["detectron2", "mmcv"], ["Detectron2", "mmcv ", None, "torchvision"])
    if convention == "detectron2":
        aligned = draft.pick("aligned", [True, np.bool_(True)], [(False, ValueError)] + bools)
        clockwise = draft.pick("clockwise", [False], [(True, ValueError)] + bools)
    else:
        aligned = draft.pick("aligned", [True, False, np.bool_(False)], bools)
        clockwise = draft.pick("clockwise", [False, True], bools)
    return convention, aligned, clockwise


def rotated_options(draft, entry, pair, cells):
    """(call options, reference options, pooled size or None, geometry or None)."""
    size_value, pooled = size_pair(draft, "output_size", pair, allow_int=True)
    call = dict(output_size=size_value, spatial_scale=spatial_scale(draft),
                sampling_ratio=sampling_ratio(draft, cells=cells))
    convention, aligned, clockwise = rotated_convention(draft, entry.family)
    if entry.family == "native":
        call["convention"] = convention
    if entry.family != "detectron2":
        call.update(aligned=aligned, clockwise=clockwise)
    reference = dict(spatial_scale=call["spatial_scale"], sampling_ratio=call["sampling_ratio"],
                     aligned=aligned, clockwise=clockwise, convention=convention)
    try:
        geometry = rotated_conventions.convention(convention, aligned, clockwise).geometry
    except (TypeError, ValueError):  # refused above
        geometry = None
    return call, reference, pooled, geometry


def rotated_scale(draft, entry, scale, data_dtype):
    """(scale as the kernels take it, compute type F, half): the overflow rules recorded.
    detectron2 and mmcv round the scale to float32; mmcv's float16 runs in half."""
    F = compute_type(draft.maker.numpy_dtype(data_dtype))
    half = entry.family == "mmcv" and data_dtype == "float16"
    chain = (F,) if entry.family == "native" else (F32, np.float16) if half else (F32, F)
    refuse_overflow(draft, "spatial_scale", scale, *chain)
    try:
        value = float(scale)
    except (TypeError, ValueError, OverflowError):  # refused
        return scale, F, half
    if entry.family != "native":
        with np.errstate(over="ignore"):
            value = float(np.float16(F32(value)) if half else F32(value))
    return value, F, half


def refuse_rotated_rois(draft, rows, batch, geometry, pooled, options, F):
    """docs/errors.md: finite rows and batch indices (torchvision's truncation), sizes >= 0
    once scaled in the aligned conventions, and at most 2**31 - 1 samples per roi."""
    refuse_bad_rois(draft, "rois", rows, batch, False)
    if geometry is None or not np.isfinite(rows).all():
        return
    if not isinstance(options["spatial_scale"], float):  # refused
        return
    with np.errstate(all="ignore"):
        sizes = rows[:, 3:5].astype(F) * F(options["spatial_scale"])
    if not geometry.min_size_one and (sizes < 0).any():
        draft.refuse("rois: a negative size in an aligned convention", ("rois",), ValueError)
    if pooled is not None and len(rows):
        grids = rotated_grids(sizes, pooled, options["sampling_ratio"], geometry, F)
        if (grids.prod(axis=1) * pooled[0] * pooled[1] > MAX_SAMPLES_PER_ROI).any():
            draft.refuse("rois: a roi of more than 2**31 - 1 samples", ("rois",), ValueError)


def rotated_grids(sizes, pooled, ratio, geometry, F):
    """``[K, 2]`` float64 sample grids (gh, gw): ``ratio``, or the ceiling of the bin size
    (sizes held at 1 when ``min_size_one``; mmcv's in float32), saturated at 2**31 - 1."""
    if isinstance(ratio, (int, np.integer)) and 0 < ratio <= 1024:
        return np.full((len(sizes), 2), float(ratio))
    sizes = np.maximum(sizes, F(1)) if geometry.min_size_one else sizes
    with np.errstate(all="ignore"):
        bins = (sizes[:, ::-1] / np.array(pooled, F).astype(F)).astype(F)
        if geometry.grid_in_float32:
            bins = bins.astype(F32)
        grids = np.ceil(bins.astype(F64))
    return np.clip(np.nan_to_num(grids, nan=0.0), 0, MAX_SAMPLES_PER_ROI)


def rotated_affordable(rows, pooled, channels, options, geometry, F):
    """The rows in ``F``, or None where the reference would cost too much: per bin it lists
    the ``gh`` and ``gw`` sample offsets (a huge ``gh`` costs also when ``gw`` is 0), then
    evaluates ``gh * gw`` samples per channel."""
    rows = rows.astype(F)
    with np.errstate(all="ignore"):
        sizes = rows[:, 3:5] * F(options["spatial_scale"])
    grids = rotated_grids(sizes, pooled, options["sampling_ratio"], geometry, F)
    per_bin = grids.prod(axis=1) * (max(channels, 1) + 1) + grids.sum(axis=1)
    cost = pooled[0] * pooled[1] * per_bin.sum()
    return rows if cost <= REFERENCE_BUDGET else None


def rotated_arguments(draft, entry, data, dims, pair):
    """Options and rois of a rotated call whose data argument is ``data``, for ``dims``
    (N, C, H, W, K): (call options, reference options with the scale as the kernels take it,
    pooled size or None, geometry or None, rois value, its rows as float64 or None, compute
    type F, half)."""
    maker = draft.maker
    batch, channels, height, width, count = dims
    call, options, pooled, geometry = rotated_options(draft, entry, pair,
                                                      count * channels * pair[0] * pair[1])
    rois, rois_ok = maker.array(draft, "rois", rotated_rows(draft, batch, height, width, count),
                                NATIVE_FLOATS)
    options["spatial_scale"], F, half = rotated_scale(draft, entry, call["spatial_scale"],
                                                      known_dtype(maker, data))
    rows = maker.values(rois).astype(F64) if rois_ok else None
    return call, options, pooled, geometry, rois, rows, F, half


def rotated_forward(draft, name):
    entry = ROTATED_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    features, features_ok = feature_maps(draft, "input", (batch, channels, height, width),
                                         NATIVE_FLOATS)
    call, options, pooled, geometry, rois, rows, F, half = rotated_arguments(
        draft, entry, features, (batch, channels, height, width, count), tuple(pair))
    if rows is not None:
        if half:  # mmcv's half path converts the rois to float16 first
            rows = half_rows(draft, rois, rows)
        refuse_rotated_rois(draft, rows, batch, geometry, pooled, options, F)
    if half:
        refuse_host_grad(draft)
    result_dtype = maker.dtype_name(features) if features_ok else "float32"
    shape = output_shape(draft, count, channels, pooled, maker.numpy_dtype(result_dtype))

    def expected():
        affordable = None if half else rotated_affordable(rows, pooled, channels, options,
                                                          geometry, F)
        if affordable is None:  # too costly, or mmcv's half arithmetic (not the reference's)
            return maker.shaped(shape, result_dtype)
        want = rotated_reference.roi_align_rotated(maker.values(features), affordable, pooled,
                                                   F=F, **options)
        return maker.rounded(want, result_dtype)

    return draft.call(name, {"input": features, "rois": rois, **call}, expected)


def half_rows(draft, rois, rows):
    """mmcv's float16 path: rois converted to float16 on the host (no bfloat16 there)."""
    if draft.maker.dtype_name(rois) == "bfloat16":
        draft.refuse("bfloat16 rois to mmcv's half path (on the host)", ("rois",), TypeError)
    with np.errstate(over="ignore"):
        return rows.astype(np.float16).astype(F64)


def refuse_host_grad(draft):
    """docs/errors.md: mmcv's half path runs on the host, without autograd."""
    if any(getattr(value, "requires_grad", False) for value in draft.inputs):
        draft.refuse("a tensor that requires grad to mmcv's half path", (), RuntimeError)


def rotated_grad_input(draft, name):
    entry = ROTATED_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(draft, ROTATED_ARRAYS, count, channels, pair)
    call, options, pooled, geometry, rois, rows, F, _ = rotated_arguments(
        draft, entry, grads, (batch, channels, height, width, count), pair)
    data_dtype = maker.dtype_name(grads) if grads_ok else "float32"
    shape_value, dims = shape_argument(draft, "input_shape", (batch, channels, height, width))
    if dims is not None:
        if dims[2] == 0 or dims[3] == 0:
            draft.refuse(f"input_shape of size {dims[2]}x{dims[3]}", ("input_shape",),
                         ValueError)
        refuse_gradient_shape(draft, ROTATED_ARRAYS, grads_channels, dims[1], pooled, pair)
        if rows is not None:
            refuse_rotated_rois(draft, rows, dims[0], geometry, pooled, options, F)
        refuse_if_too_big(draft, "input_shape", dims, 8)

    def expected():
        affordable = rotated_affordable(rows, pooled, channels, options, geometry, F)
        if affordable is None:
            return maker.shaped(dims, data_dtype)
        want = rotated_reference.roi_align_rotated_grad_input(
            maker.values(grads), affordable, dims, pooled, F=F, **options)
        return maker.rounded(want, data_dtype)

    arguments = {"grads": grads, "rois": rois, "input_shape": shape_value, **call}
    return draft.call(name, arguments, expected)


def rotated_grad_boxes(draft, name):
    entry = ROTATED_ENTRIES[name]
    maker = draft.maker
    batch, channels, height, width, count, *pair = roi_dims(draft)
    pair = tuple(pair)
    grads, grads_ok, grads_channels = roi_gradients(draft, ROTATED_ARRAYS, count, channels, pair)
    features, features_ok = feature_maps(draft, "input", (batch, channels, height, width),
                                         NATIVE_FLOATS)
    call, options, pooled, geometry, rois, rows, F, _ = rotated_arguments(
        draft, entry, features, (batch, channels, height, width, count), pair)
    refuse_gradient_shape(draft, ROTATED_ARRAYS, grads_channels, channels, pooled, pair)
    if rows is not None:
        refuse_rotated_rois(draft, rows, batch, geometry, pooled, options, F)
    data_dtype = maker.dtype_name(features) if features_ok else "float32"
    close = None
    if grads_ok and features_ok and rows is not None:
        close = grad_boxes_tolerance(maker, grads, features, data_dtype, call["spatial_scale"],
                                     rotated_reach(rows, options["spatial_scale"]))

    def expected():
        affordable = rotated_affordable(rows, pooled, channels, options, geometry, F)
        if affordable is None or close is None:
            return maker.shaped((count, 6), data_dtype)
        want = rotated_reference.roi_align_rotated_grad_boxes(
            maker.values(grads).astype(F), maker.values(features).astype(F), affordable, pooled,
            F=F, **options)
        return maker.rounded(want, data_dtype)

    arguments = {"grads": grads, "input": features, "rois": rois, **call}
    return draft.call(name, arguments, expected, close=close or False)


def rotated_reach(rows, scale):
    """The angle's terms grow with the samples' distance from the centre: at most the roi's
    width plus height, scaled (a size held at 1: 1)."""
    try:
        scale = abs(float(scale))
    except (TypeError, ValueError, OverflowError):  # refused
        return 1.0
    with np.errstate(all="ignore"):
        return 1.0 + (np.abs(rows[:, 3]) + np.abs(rows[:, 4])).max(initial=0) * scale


# ---------------------------------------------------------------------------------------------
# multi_scale_roi_align entry points
# ---------------------------------------------------------------------------------------------

# The native functions take roi_align's arrays (NATIVE_FLOATS maps, rois and gradients);
# torchvision's MultiScaleRoIAlign takes its maps in a dict ``x`` and its boxes as
# torchvision's roi_align does (a list of [L, 4] per image, or [K, 5]).
MS_ARRAYS = RoiEntry()
MS_MODULE = RoiEntry(family="torchvision", input="x", rois="boxes")
# A map of the pyramid's first level, and the image it was computed from is 1/scale larger.
MS_TOPS = ((4, 4), (8, 6), (5, 3), (2, 8))
MS_FIRST_SCALES = (1.0, 0.5, 0.25, 0.125)


def pyramid_dims(draft):
    """(N, C, [(H_l, W_l)], K, (PH, PW)): batch, channels, each level's map size, roi count,
    pooled size. One to three levels (rarely none); mostly a pyramid (each level half the
    size of the one before, at least 1), else any sizes, coarse before fine too; a size
    rarely 0."""
    draw = draft.draw
    batch, channels, count = (dimension(draft, sizes) for sizes in ([1, 2], [1, 2, 3],
                                                                    [1, 2, 3, 4]))
    levels = 0 if draft.rarely() else draw(st.integers(1, 3))
    top = draw(st.sampled_from(MS_TOPS))
    if draw(st.integers(0, 3)):
        sizes = [(max(top[0] >> level, 1), max(top[1] >> level, 1)) for level in range(levels)]
    else:
        sizes = [(draw(st.sampled_from([1, 2, 3, 5, 8])), draw(st.sampled_from([1, 2, 4, 7])))
                 for _ in range(levels)]
    sizes = [(dimension(draft, [h]), dimension(draft, [w])) for h, w in sizes]
    return batch, channels, sizes, count, (draw(st.integers(1, 3)), draw(st.integers(1, 3)))


def pyramid(draft, name, batch, channels, sizes, dtypes):
    """The maps ``name[i]`` of a pyramid of ``sizes``: (list, ok, dtype name of the first).
    Rarely a level of another batch size or channel count; a level whose dtype differs from
    the first's is refused (TypeError), as one whose batch size or channels differ
    (ValueError)."""
    maker, draw = draft.maker, draft.draw
    maps, dims, oks = [], [], []
    for i, (height, width) in enumerate(sizes):
        n, c = batch, channels
        if i and draft.rarely():
            n, c = (batch + 1, c) if draw(st.booleans()) else (n, channels + 1)
        # the first map's dtype for all (each may rarely change it)
        dtype = maker.dtype_name(maps[0]) if i and oks[0] else None
        value, ok = maker.array(draft, f"{name}[{i}]", data_values(draft, (n, c, height, width)),
                                dtypes, dtype)
        if ok and (height == 0 or width == 0):
            draft.refuse(f"{name}[{i}] of size {height}x{width}", (name,), ValueError)
        maps.append(value)
        dims.append((n, c))
        oks.append(ok)
    for i in range(1, len(maps)):
        if oks[0] and oks[i]:
            if maker.dtype_name(maps[i]) != maker.dtype_name(maps[0]):
                draft.refuse(f"{name}[{i}] of another dtype", (name,), TypeError)
            elif dims[i] != dims[0]:
                draft.refuse(f"{name}[{i}] of batch and channels {dims[i]}", (name,), ValueError)
    first = known_dtype(maker, maps[0]) if maps else "float32"
    return maps, all(oks), first


def map_list(draft, name, maps):
    """The list argument ``name``: a list or a tuple; rarely its first map alone or a dict."""
    if not maps:
        draft.refuse(f"{name}: no level", (name,), ValueError)
    if draft.rarely():  # the first map alone: a list when it is drawn as one (a ValueError)
        kind = draft.draw(st.sampled_from(["alone", "dict"]))
        draft.refuse(f"{name} as {kind}", (name,), TypeError, ValueError)
        return maps[0] if kind == "alone" and maps else {"p2": maps}
    return tuple(maps) if draft.draw(st.booleans()) else maps


def level_scales(draft, levels):
    """``scales``: (value, the scales as checked Python floats, or None when refused).
    Mostly each half the one before; rarely any positive scales (levels with gaps, out of
    order); rarely a huge one, which :func:`refuse_scale_overflow` judges."""
    draw = draft.draw
    first = draw(st.sampled_from(MS_FIRST_SCALES))
    scales = [first / 2**level for level in range(levels)]
    if draft.rarely():
        scales = [draw(st.sampled_from([0.3, 2.0, 0.0625, 1e-3, 7.0, 1e-40]))
                  for _ in range(levels)]
    if levels and draft.rarely():
        scales[draw(st.integers(0, levels - 1))] = draw(st.sampled_from([1e39, 1e300, 1e5]))
    forms = [float, float, np.float32, Fraction]
    value = [draw(st.sampled_from(forms))(s) if s in MS_FIRST_SCALES else s for s in scales]
    checked = [float(v) for v in value]
    if levels and draft.rarely():
        bad, types = draw(st.sampled_from(not_a_number(False) + [
            (0.0, ValueError), (-0.25, ValueError), (math.nan, ValueError),
            (math.inf, ValueError)]))
        at = draw(st.integers(0, levels - 1))
        value[at] = bad
        draft.refuse(f"scales[{at}]={bad!r}", ("scales",), types)
        checked = None
    if draft.rarely():
        value, types = draw(st.sampled_from([
            (np.array(checked or scales), TypeError), (None, TypeError), (0.25, TypeError),
            (value + [0.5], ValueError), (value[:-1], ValueError)]))
        draft.refuse(f"scales={describe_array(value)}", ("scales",), types)
        return value, None
    return (tuple(value) if draw(st.booleans()) else value), checked


def refuse_scale_overflow(draft, scales, F):
    """docs/errors.md: a scale that becomes inf in the compute type."""
    for i, scale in enumerate(scales or ()):
        refuse_overflow(draft, f"scales[{i}]", scale, F)


def level_indices(draft, count, levels, required):
    """``levels``: (value, int64 levels or None). Integers in ``[-1, L)`` (-1: no level),
    rarely outside or one too many or few; for the forward, often None (mapped); for the
    gradients rarely None (refused)."""
    draw = draft.draw
    if not required and draw(st.booleans()):
        return None, None
    if required and draft.rarely():
        draft.refuse("levels=None", ("levels",), TypeError)
        return None, None
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.integers(-1, max(levels, 1), count).astype(F64)
    if count and draft.rarely():
        values[rng.integers(count)] = draw(st.sampled_from([-2, levels, 2**31 - 1, 2**62]))
    if draft.rarely():
        values = np.append(values, 0) if draw(st.booleans()) or not count else values[1:]
        draft.refuse(f"levels of length {len(values)} for {count} rois", ("levels",),
                     ValueError)
    recorded = len(draft.refusals)
    value, ok = draft.maker.array(draft, "levels", values, INTEGERS)
    if value is None and not required:  # a valid forward, the levels mapped: none refused
        del draft.refusals[recorded:]
        return None, None
    if not ok:
        return value, None
    given = draft.maker.values(value)
    if given.size and ((given < -1) | (given >= levels)).any():
        draft.refuse(f"levels outside [-1, {levels})", ("levels",), ValueError)
    return value, given.astype(np.int64)


def level_constants(draft):
    """canonical_scale and canonical_level: (call values, the mapper's values)."""
    scale = draft.pick("canonical_scale", [224, 224.0, 8, 16.0, 2.5, np.float32(8),
                                           Fraction(16, 3), 1e-300, 1e300, 10**30],
                       not_a_number(False) + [(0, ValueError), (-8.0, ValueError),
                                              (math.nan, ValueError), (math.inf, ValueError)])
    # beyond int64: refused, as sampling_ratio's -2**64
    level = draft.pick("canonical_level", [4, 2, 0, -1, 7, np.int64(3), np.uint8(2),
                                           np.uint64(4), 2**62],
                       [(4.0, TypeError), (True, TypeError), ("4", TypeError),
                        (None, TypeError), (2**70, ValueError), (-10**400, ValueError)])
    call = dict(canonical_scale=scale, canonical_level=level)
    try:
        return call, (float(scale), int(level))
    except (TypeError, ValueError, OverflowError):  # refused
        return call, None


def mapped_levels(maker, rows, wide, scales, constants):
    """The level of every roi by torchvision's level mapper (one level: 0; none: -1) in the
    boxes' arithmetic (``wide``: float64 boxes); a level without a map (scales not halving
    one by one) has no level, as in torchvision, which pools no roi there."""
    if len(scales) == 1:
        return np.zeros(len(rows), np.int64)
    k_min, k_max = level_mapper.level_range(scales)
    boxes = np.ascontiguousarray(rows[:, 1:5]).astype(F64 if wide else F32)
    return np.asarray(maker.fpn_levels(boxes, k_min, k_max, len(scales), *constants))


def ms_options(draft, pair, cells, aligned=True):
    """output_size, sampling_ratio and (``aligned``) aligned: (call values, pooled size or
    None)."""
    size_value, pooled = size_pair(draft, "output_size", pair, allow_int=True)
    call = dict(output_size=size_value, sampling_ratio=sampling_ratio(draft, cells=cells))
    if aligned:
        call["aligned"] = draft.pick("aligned", [False, True, np.bool_(True)],
                                     [(1, TypeError), ("yes", TypeError), (None, TypeError)])
    return call, pooled


def ms_geometry(call):
    return dict(sampling_ratio=call["sampling_ratio"], aligned=bool(call.get("aligned", False)))


def ms_affordable(rows, levels, scales, pooled, channels, call, F):
    """The rows in ``F``, or None where roi_align's reference would cost too much on the
    rois' levels."""
    rows = rows.astype(F)
    total = 0
    for level, scale in enumerate(scales):
        options = dict(ms_geometry(call), spatial_scale=scale, convention="torchvision",
                       roi_end_mode=1)
        cost = roi_cost(rows[levels == level], pooled, channels, options, F)
        if cost is None:
            return None
        total += cost
    return rows if total <= REFERENCE_BUDGET else None


def image_rows(draft, batch, sizes, scales, count):
    """``[count, 5]`` rows in image pixels: the first level's map size over its scale."""
    height, width = sizes[0] if sizes else (1, 1)
    scale = scales[0] if scales and 1e-3 <= scales[0] <= 1e3 else 1.0
    # whole pixels: box_rows draws float32 coordinates within bounds of float32 values
    return roi_rows(draft, batch, max(math.ceil(height / scale), 1),
                    max(math.ceil(width / scale), 1), count, False)


def ms_forward_result(maker, maps, rows, levels, scales, pooled, channels, call, F, shape,
                      data_dtype):
    """The expected forward: the plain reference on the levels in ``F`` where it is
    affordable, else only the result's shape and dtype."""
    affordable = ms_affordable(rows, levels, scales, pooled, channels, call, F)
    if affordable is None:
        return maker.shaped(shape, data_dtype)
    want = ms_reference.multi_scale_roi_align(
        [maker.values(m).astype(F) for m in maps], affordable, levels, scales, pooled, F=F,
        **ms_geometry(call))
    return maker.rounded(want, data_dtype)

def ms_forward(draft, name):
    maker = draft.maker
    batch, channels, sizes, count, pair = pyramid_dims(draft)
    maps, _, data_dtype = pyramid(draft, "features", batch, channels, sizes, NATIVE_FLOATS)
    features = map_list(draft, "features", maps)
    scales_value, scales = level_scales(draft, len(sizes))
    F = compute_type(maker.numpy_dtype(data_dtype))
    refuse_scale_overflow(draft, scales, F)
    call, pooled = ms_options(draft, pair, count * channels * pair[0] * pair[1])
    constants_call, constants = level_constants(draft)
    rows = image_rows(draft, batch, sizes, scales, count)
    rois, rois_ok = maker.array(draft, "rois", rows, NATIVE_FLOATS)
    levels_value, given = level_indices(draft, count, len(sizes), required=False)
    if rois_ok:
        rows = maker.values(rois).astype(F64)
        refuse_bad_rois(draft, "rois", rows, batch, False)
    shape = output_shape(draft, count, channels, pooled, maker.numpy_dtype(data_dtype))

    def expected():
        levels = given if given is not None else mapped_levels(
            maker, rows, known_dtype(maker, rois) == "float64", scales, constants)
        return ms_forward_result(maker, maps, rows, levels, scales, pooled, channels, call,
                                 F, shape, data_dtype)

    arguments = {"features": features, "rois": rois, **call, "scales": scales_value,
                 **constants_call}
    if levels_value is not None or draft.draw(st.booleans()):
        arguments["levels"] = levels_value
    return draft.call(name, arguments, expected)


def level_shapes_argument(draft, batch, channels, sizes):
    """``level_shapes``: (value, the shapes or None). Each as :func:`shape_argument`; a
    level's height or width 0, another batch size or channel count, or a level too large to
    allocate, refused; rarely not a list."""
    values, shapes = [], []
    for i, (height, width) in enumerate(sizes):
        name = f"level_shapes[{i}]"
        value, dims = shape_argument(draft, name, (batch, channels, height, width))
        values.append(value)
        shapes.append(dims)
        if dims is None:
            continue
        if dims[2] == 0 or dims[3] == 0:
            draft.refuse(f"{name} of size {dims[2]}x{dims[3]}", (name,), ValueError)
        if shapes[0] is not None and dims[:2] != shapes[0][:2]:
            draft.refuse(f"{name} of batch and channels {dims[:2]}", (name,), ValueError)
        if too_big(dims, 8):  # the memory check names the argument, all levels together
            draft.refuse(f"{name}: a result of shape {dims} cannot be allocated",
                         (name, "level_shapes"), ValueError)
    if not values:
        draft.refuse("level_shapes: no level", ("level_shapes",), ValueError)
    if draft.rarely():
        value, types = draft.draw(st.sampled_from([
            (None, ValueError), (np.array([[batch, channels, 1, 1]]), ValueError),
            ((batch, channels, 2, 2), (TypeError, ValueError))]))
        draft.refuse(f"level_shapes={value!r}", ("level_shapes",),
                     *(types if isinstance(types, tuple) else (types,)))
        return value, None
    value = tuple(values) if draft.draw(st.booleans()) else values
    return value, shapes if None not in shapes else None


def ms_grad_input(draft, name):
    maker = draft.maker
    batch, channels, sizes, count, pair = pyramid_dims(draft)
    grads, grads_ok, grads_channels = roi_gradients(draft, MS_ARRAYS, count, channels, pair)
    data_dtype = maker.dtype_name(grads) if grads_ok else "float32"
    scales_value, scales = level_scales(draft, len(sizes))
    F = compute_type(maker.numpy_dtype(known_dtype(maker, grads)))
    refuse_scale_overflow(draft, scales, F)
    call, pooled = ms_options(draft, pair, count * channels * pair[0] * pair[1])
    rows = image_rows(draft, batch, sizes, scales, count)
    rois, rois_ok = maker.array(draft, "rois", rows, NATIVE_FLOATS)
    levels_value, levels = level_indices(draft, count, len(sizes), required=True)
    shapes_value, shapes = level_shapes_argument(draft, batch, channels, sizes)
    if shapes:
        refuse_gradient_shape(draft, MS_ARRAYS, grads_channels, shapes[0][1], pooled, pair)
        if rois_ok:
            rows = maker.values(rois).astype(F64)
            refuse_bad_rois(draft, "rois", rows, shapes[0][0], False)

    def expected():
        affordable = ms_affordable(rows, levels, scales, pooled, channels, call, F)
        if affordable is None:
            return [maker.shaped(shape, data_dtype) for shape in shapes]
        want = ms_reference.multi_scale_roi_align_grad_input(
            maker.values(grads).astype(F), affordable, levels, shapes, scales, pooled, F=F,
            **ms_geometry(call))
        return [maker.rounded(level, data_dtype) for level in want]

    arguments = {"grads": grads, "rois": rois, "levels": levels_value,
                 "level_shapes": shapes_value, "output_size": call.pop("output_size"),
                 "scales": scales_value, **call}
    return draft.call(name, arguments, expected)


def ms_grad_boxes(draft, name):
    maker = draft.maker
    batch, channels, sizes, count, pair = pyramid_dims(draft)
    grads, grads_ok, grads_channels = roi_gradients(draft, MS_ARRAYS, count, channels, pair)
    maps, maps_ok, data_dtype = pyramid(draft, "features", batch, channels, sizes,
                                        NATIVE_FLOATS)
    features = map_list(draft, "features", maps)
    scales_value, scales = level_scales(draft, len(sizes))
    F = compute_type(maker.numpy_dtype(data_dtype))
    refuse_scale_overflow(draft, scales, F)
    call, pooled = ms_options(draft, pair, count * channels * pair[0] * pair[1])
    refuse_gradient_shape(draft, MS_ARRAYS, grads_channels, channels, pooled, pair)
    rows = image_rows(draft, batch, sizes, scales, count)
    rois, rois_ok = maker.array(draft, "rois", rows, NATIVE_FLOATS)
    levels_value, levels = level_indices(draft, count, len(sizes), required=True)
    if rois_ok:
        rows = maker.values(rois).astype(F64)
        refuse_bad_rois(draft, "rois", rows, batch, False)
    close = grad_boxes_tolerance(maker, grads, maps, data_dtype, scales_value) \
        if grads_ok and maps_ok else None

    def expected():
        affordable = ms_affordable(rows, levels, scales, pooled, channels, call, F)
        if affordable is None or close is None:
            return maker.shaped((count, 5), data_dtype)
        want = ms_reference.multi_scale_roi_align_grad_boxes(
            maker.values(grads).astype(F), [maker.values(m).astype(F) for m in maps],
            affordable, levels, scales, pooled, F=F, **ms_geometry(call))
        return maker.rounded(want, data_dtype)

    arguments = {"grads": grads, "features": features, "rois": rois, "levels": levels_value,
                 "output_size": call.pop("output_size"), "scales": scales_value, **call}
    return draft.call(name, arguments, expected, close=close or False)


def feature_dict(draft, maps):
    """``x`` and ``featmap_names``: (x, featmap_names value): the maps under names that
    ``featmap_names`` lists (in any order, with names ``x`` lacks), in the maps' order;
    other entries (any value: never read) between them. Rarely names that select none."""
    draw = draft.draw
    names = [f"p{i + 2}" for i in range(len(maps))]
    items = list(zip(names, maps))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        items.insert(draw(st.integers(0, len(items))),
                     (draw(st.sampled_from(["pool", "0", "p9"])) + str(len(items)),
                      draw(st.sampled_from([None, "junk", [1.0], 7]))))
    x = dict(items)
    selected = draw(st.permutations(names + draw(st.sampled_from([[], ["p1"]]))))
    featmap_names = tuple(selected) if draw(st.booleans()) else list(selected)
    if draft.rarely():
        featmap_names, types = draw(st.sampled_from([
            (None, (TypeError,)), (5, (TypeError,)), ([], (ValueError,)),
            (["p1"], (ValueError,))]))
        draft.refuse(f"featmap_names={featmap_names!r}", ("featmap_names", "x"), *types)
    elif not maps:
        draft.refuse("x: none of featmap_names", ("featmap_names", "x"), ValueError)
    if draft.rarely():
        draft.refuse("x as a list", ("x",), TypeError)
        x = list(x.values())
    draft.inputs.append(x)
    return x, featmap_names


def image_shapes_argument(draft, height, width):
    """``image_shapes``: (value, the largest height or None): one or two ``(h, w)``, the
    largest ``(height, width)``; rarely a refused value."""
    draw = draft.draw
    shapes = [(height, width)]
    if draw(st.booleans()):
        shapes.insert(draw(st.integers(0, 1)), (draw(st.integers(1, height)),
                                                 draw(st.integers(1, width))))
    value = [draw(st.sampled_from([pair, list(pair), np.array(pair)]
                                  + draft.maker.shape_forms(pair))) for pair in shapes]
    if draft.rarely():
        bad, types = draw(st.sampled_from([
            ((height,), ValueError), ((height, width, 3), ValueError), ((0, width), ValueError),
            ((-1, width), ValueError), ((float(height), width), ValueError),
            ((True, width), ValueError), ((str(height), width), ValueError),
            (None, (TypeError, ValueError)), (height, (TypeError, ValueError))]))
        value[draw(st.integers(0, len(value) - 1))] = bad
        draft.refuse(f"image_shapes holding {bad!r}", ("image_shapes",),
                     *(types if isinstance(types, tuple) else (types,)))
        return value, None
    if draft.rarely():
        value, types = draw(st.sampled_from([
            (None, (TypeError,)), (f"{height}x{width}", (TypeError,)), ([], (ValueError,)),
            ((height, width), (TypeError, ValueError))]))
        draft.refuse(f"image_shapes={value!r}", ("image_shapes",), *types)
        return value, None
    return (tuple(value) if draw(st.booleans()) else value), height


def ms_module(draft, name):
    maker, draw = draft.maker, draft.draw
    batch, channels, sizes, count, pair = pyramid_dims(draft)
    maps, _, data_dtype = pyramid(draft, "x", batch, channels, sizes, MS_MODULE.dtypes)
    x, featmap_names = feature_dict(draft, maps)
    call, pooled = ms_options(draft, pair, count * channels * pair[0] * pair[1], aligned=False)
    constants_call, constants = level_constants(draft)
    first = draw(st.sampled_from(MS_FIRST_SCALES))
    top = sizes[0] if sizes else (1, 1)
    image_value, image_height = image_shapes_argument(
        draft, max(int(top[0] / first), 1), max(int(top[1] / first), 1))
    boxes, rows = call_rois(draft, MS_MODULE, image_rows(draft, batch, sizes, [first], count))
    half = data_dtype == "float16"
    data_type = maker.numpy_dtype(data_dtype)
    F = np.float16 if half else compute_type(data_type)
    data_rows = None
    if rows is not None:  # converted to the maps' dtype
        with np.errstate(over="ignore"):
            data_rows = rows.astype(data_type).astype(F64)
        refuse_bad_rois(draft, "boxes", data_rows, batch, False)
    shape = output_shape(draft, count, channels, pooled, data_type)

    def expected():
        # each level's scale inferred from its height and the largest image height, then
        # held in the maps' dtype; the levels mapped in the boxes' dtype
        scales = [level_mapper.infer_scale(height, image_height) for height, _ in sizes]
        wide = any(known_dtype(maker, b) == "float64"
                   for b in (boxes if isinstance(boxes, list) else [boxes]))
        levels = mapped_levels(maker, rows, wide, scales, constants)
        if data_dtype != "float64":
            scales = [float(data_type.type(F32(s))) for s in scales]
        return ms_forward_result(maker, maps, data_rows, levels, scales, pooled, channels,
                                 call, F, shape, data_dtype)

    arguments = {"featmap_names": featmap_names, **call, **constants_call, "x": x,
                 "boxes": boxes, "image_shapes": image_value}
    return draft.call(name, arguments, expected)


# ---------------------------------------------------------------------------------------------
# the entry points
# ---------------------------------------------------------------------------------------------

BUILDERS = {
    "crop_and_resize": crop_forward,
    "crop_and_resize_grad_image": crop_grad_image,
    "crop_and_resize_grad_boxes": crop_grad_boxes,
    "roi_align": roi_forward,
    "roi_align_grad_input": roi_grad_input,
    "roi_align_grad_boxes": roi_grad_boxes,
    "tensorflow.crop_and_resize": crop_forward,
    "tensorflow.raw_ops.CropAndResize": crop_forward,
    "tensorflow.raw_ops.CropAndResizeGradImage": crop_grad_image,
    "tensorflow.raw_ops.CropAndResizeGradBoxes": crop_grad_boxes,
    "mindspore.CropAndResize": crop_forward,
    "mindspore.CropAndResizeGradImage": crop_grad_image,
    "mindspore.CropAndResizeGradBoxes": crop_grad_boxes,
    "mindspore.ROIAlign": roi_forward,
    "mindspore.ROIAlignGrad": roi_grad_input,
    "torchvision.roi_align": roi_forward,
    "torchvision.roi_align_backward": roi_grad_input,
    "torchvision.RoIAlign": roi_forward,
    "roi_pool": pool_forward,
    "roi_pool_grad_input": pool_grad_input,
    "torchvision.roi_pool": pool_forward,
    "torchvision.roi_pool_backward": pool_grad_input,
    "torchvision.RoIPool": pool_forward,
    "ps_roi_align": ps_forward,
    "ps_roi_align_grad_input": ps_grad_input,
    "ps_roi_align_grad_boxes": ps_grad_boxes,
    "torchvision.ps_roi_align": ps_forward,
    "torchvision.ps_roi_align_backward": ps_grad_input,
    "torchvision.PSRoIAlign": ps_forward,
    "ps_roi_pool": ps_forward,
    "ps_roi_pool_grad_input": ps_grad_input,
    "torchvision.ps_roi_pool": ps_forward,
    "torchvision.ps_roi_pool_backward": ps_grad_input,
    "torchvision.PSRoIPool": ps_forward,
    "roi_align_rotated": rotated_forward,
    "roi_align_rotated_grad_input": rotated_grad_input,
    "roi_align_rotated_grad_boxes": rotated_grad_boxes,
    "detectron2.ROIAlignRotated": rotated_forward,
    "mmcv.roi_align_rotated": rotated_forward,
    "mmcv.RoIAlignRotated": rotated_forward,
    "multi_scale_roi_align": ms_forward,
    "multi_scale_roi_align_grad_input": ms_grad_input,
    "multi_scale_roi_align_grad_boxes": ms_grad_boxes,
    "torchvision.MultiScaleRoIAlign": ms_module,
    # torch modules (roiops.nn)
    "nn.CropAndResize": crop_forward,
    "nn.MindSporeCropAndResize": crop_forward,
    "nn.RoIAlign": roi_forward,
    "nn.MindSporeROIAlign": roi_forward,
    "nn.RoIPool": pool_forward,
    "nn.PSRoIAlign": ps_forward,
    "nn.PSRoIPool": ps_forward,
    "nn.RoIAlignRotated": rotated_forward,
}
NUMPY_ENTRY_POINTS = [name for name in BUILDERS if not name.startswith("nn.")]


def calls(name, maker):
    """A strategy of :class:`Call` s of the entry point ``name`` with ``maker``'s arrays."""
    return st.composite(lambda draw: BUILDERS[name](Draft(draw, maker, name), name))()
