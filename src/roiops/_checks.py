"""Argument validation shared by every entry point (docs/errors.md lists the rules).

Every check runs before any allocation or kernel, raises the documented exception type and
names the argument, what was expected and what was given.
"""
import math
import numbers
import operator
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
IMAGE_DTYPES = (
    np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64),
    np.dtype(np.uint8), np.dtype(np.uint16),
) + FLOAT_DTYPES
# By name, for the frameworks' dtype rules that apply to arrays and tensors alike.
FLOAT_NAMES = tuple(str(d) for d in FLOAT_DTYPES)
IMAGE_NAMES = tuple(str(d) for d in IMAGE_DTYPES)

# Samples per bin axis. A bin averages sampling_ratio**2 bilinear samples, so the work grows
# with its square; 1024 already resolves a 1024-pixel bin at every pixel, and more samples
# cannot change a bilinear average meaningfully (30,000 took minutes for one small roi).
MAX_SAMPLING_RATIO = 1024
# The largest size of an array dimension and of an array in bytes (NumPy's and torch's index
# type): larger sizes cannot be allocated at all, whatever the memory.
MAX_INDEX = sys.maxsize


def describe(value):
    """``repr(value)``, shortened when it is long (a 10**400 would fill the screen)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:24]}...{text[-12:]} ({len(text)} characters)"


def any_tensor(*values):
    """True if any value is a torch.Tensor, or the ``torch.fx.Proxy`` of one (``torch.fx``
    traces the public functions as leaves: ``roiops.torch.tracing``); never imports torch
    (roiops works without it).

    If torch was never imported, no value can be a tensor.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    fx = sys.modules.get("torch.fx")
    kinds = (torch.Tensor, fx.Proxy) if fx is not None else torch.Tensor
    return any(isinstance(v, kinds) for v in values)


def unsupported_subclass(value):
    """The name of an ndarray subclass whose meaning the kernels would drop, else None.

    A masked array's mask would be ignored and an ``np.matrix`` changes what indexing means;
    other subclasses (``np.memmap``) are plain arrays to the kernels.
    """
    if isinstance(value, (np.ma.MaskedArray, np.matrix)):
        return type(value).__name__
    return None


def require_array(name, value):
    """The argument as a NumPy array; TypeError for anything that is not a plain array."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    subclass = unsupported_subclass(value)
    if subclass:
        raise TypeError(f"{name} must be a plain numpy.ndarray, got {subclass} (convert it "
                        f"with np.asarray, after filling masked values if any)")
    return value


class ArrayKind(NamedTuple):
    """How the validators read one kind of array: NumPy's (:data:`NUMPY`) or torch's
    (``roiops.torch.api.TORCH``). The validators only read metadata (types, dtypes, shapes,
    devices), so one validator per operator serves both."""
    # TypeError (or ValueError: mixed devices) unless every value of a {name: value} dict is
    # an array of this kind the kernels can read.
    require: Callable[[dict], None]
    # dtype by name ("float32") -> this kind's dtype object
    dtype: Callable[[str], Any]
    float_dtypes: tuple
    image_dtypes: tuple
    is_integer: Callable[[Any], bool]
    # the NumPy dtype the kernels compute and write a dtype's values as (bfloat16: float32)
    numpy_dtype: Callable[[Any], np.dtype]
    # (name, a float dtype of any spelling) -> this kind's dtype; TypeError naming ``name``
    float_dtype: Callable[[str, Any], Any]

    def dtypes(self, names):
        """This kind's dtypes named ``names`` (a framework's own dtype rule)."""
        return tuple(self.dtype(name) for name in names)

    def result_dtype(self, dtype):
        """docs/api.md#dtypes: a float dtype as it is; float32 for integer images."""
        return dtype if dtype in self.float_dtypes else self.dtype("float32")


def require_arrays(named):
    """TypeError unless every value of the ``{name: value}`` dict is a plain NumPy array."""
    for name, value in named.items():
        require_array(name, value)


def require_dtype(name, array, allowed):
    if array.dtype not in allowed:
        supported = ", ".join(str(d) for d in allowed)
        raise TypeError(f"{name} must have dtype in ({supported}), got {array.dtype}")


def _same(dtype):
    """A NumPy array's dtype is already the one the kernels compute and write."""
    return dtype


def _is_integer_dtype(dtype):
    return dtype.kind in "iu"


def require_integer_dtype(kind, name, array):
    """TypeError unless ``array`` (of ``kind``) holds integers (box indices)."""
    if not kind.is_integer(array.dtype):
        raise TypeError(f"{name} must have an integer dtype, got {array.dtype}")


def require_same_depth(name, depth, other, other_depth):
    """ValueError unless ``name``'s depth equals ``other``'s (a gradient's consistency)."""
    if depth != other_depth:
        raise ValueError(f"{name} depth must equal {other} depth {other_depth}, got {depth}")


def float_dtype(name, value):
    """A float16/32/64 NumPy dtype from anything ``np.dtype`` accepts or a torch dtype.

    ``None`` is refused: ``np.dtype(None)`` would silently mean float64.
    """
    text = str(value)
    try:
        dtype = None if value is None else np.dtype(
            text.removeprefix("torch.") if text.startswith("torch.") else value)
    except (TypeError, ValueError):
        dtype = None
    # ``dtype in FLOAT_DTYPES`` would be true for None: NumPy compares None equal to float64.
    if dtype is None or dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, float32 or float64, got {describe(value)}")
    return dtype


def require_shape(name, array, expected):
    """Check rank and the fixed dimensions of ``expected`` (``None`` matches any size).

    ``expected`` is written as in the error message, e.g. ``("num_boxes", 4)``.
    """
    shape = array.shape
    ok = len(shape) == len(expected) and all(
        isinstance(e, str) or e == s for e, s in zip(expected, shape)
    )
    if not ok:
        wanted = ", ".join(str(e) for e in expected)
        raise ValueError(f"{name} must have shape [{wanted}], got {tuple(shape)}")


def require_length(name, array, length, other):
    if array.shape[0] != length:
        raise ValueError(
            f"{name} must have one entry per {other} ({length}), got {array.shape[0]}"
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def size_pair(name, value, allow_int=False):
    """A pair of positive Python ints from an int (if ``allow_int``) or a length-2 sequence.

    Each size is at most ``MAX_INDEX`` (an array dimension); whether the result fits in
    memory is :func:`require_memory`'s to say.
    """
    if allow_int and _is_int(value):
        items = (value, value)
    else:
        try:
            if isinstance(value, np.ndarray):
                items = tuple(np.asarray(value).tolist())
            else:
                items = tuple(value)
        except TypeError:
            items = None
    if (
        items is None
        or len(items) != 2
        or not all(_is_int(v) and 0 < v <= MAX_INDEX for v in items)
    ):
        kind = "an int or two positive ints" if allow_int else "two positive ints"
        raise ValueError(f"{name} must be {kind} (at most 2**63 - 1), got {describe(value)}")
    return int(items[0]), int(items[1])


def array_shape(name, value, description):
    """A shape argument (``image_shape``, ``input_shape``) as a tuple of Python ints.

    ``description`` says what it holds, e.g. ``"(B, H, W, D)"``. TypeError unless it is a
    sequence of ints (a str, a float or a bool is never truncated into one); ValueError for
    the wrong length or an entry outside ``[0, 2**63)``.
    """
    length = description.count(",") + 1
    wanted = f"{name} must be {length} non-negative ints {description}"
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{wanted}, got the {type(value).__name__} {describe(value)}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{wanted}, got {type(value).__name__} {describe(value)}") from None
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{wanted}, got {describe(value)}: {item!r} is a bool")
        try:
            operator.index(item)  # ints, NumPy ints, torch SymInts; never floats or strs
        except TypeError:
            raise TypeError(f"{wanted}, got {describe(value)}: {describe(item)} is a "
                            f"{type(item).__name__}") from None
    dims = tuple(operator.index(item) for item in items)
    if len(dims) != length or not all(0 <= d <= MAX_INDEX for d in dims):
        raise ValueError(f"{wanted}, got {describe(value)}")
    return dims


def require_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {describe(value)}")


def require_int(name, value):
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {describe(value)}")
    return int(value)


def require_sampling_ratio(name, value):
    """An int in ``[-2**63, MAX_SAMPLING_RATIO]`` (``<= 0``: the adaptive grid)."""
    ratio = require_int(name, value)
    if ratio > MAX_SAMPLING_RATIO:
        raise ValueError(
            f"{name} must be at most {MAX_SAMPLING_RATIO} samples per bin axis (the work grows "
            f"with its square, and more samples cannot change a bilinear average), "
            f"got {describe(value)}")
    if ratio < -MAX_INDEX - 1:
        raise ValueError(f"{name} must be at least -2**63 (any value <= 0 picks the samples "
                         f"from the roi size), got {describe(value)}")
    return ratio


def require_number(name, value):
    """A real number as a Python float; ValueError for one beyond float64's range (10**400)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} "
                        f"{describe(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a real number within float64's range, got "
                         f"{describe(value)}") from None


def representable(name, value, *dtypes):
    """``value`` rounded to each of ``dtypes`` in turn, as a Python float.

    ValueError if a finite ``value`` overflows to inf on the way (``1e39`` in float32): the
    caller asked for a number, not an infinity. Non-finite values pass through unchanged;
    each caller decides whether they are allowed.
    """
    rounded = value
    with np.errstate(over="ignore"):
        for dtype in dtypes:
            rounded = np.dtype(dtype).type(rounded)
    if math.isfinite(value) and not math.isfinite(rounded):
        names = " then ".join(str(np.dtype(d)) for d in dtypes)
        raise ValueError(f"{name} must stay finite when rounded to {names}, the type it is "
                         f"computed in; got {describe(value)}, which rounds to {float(rounded)}")
    return float(rounded)


def require_positive_image_size(name, height, width):
    if height < 1 or width < 1:
        raise ValueError(f"{name} must have height and width >= 1, got {height}x{width}")


def require_finite_rows(name, array):
    """ValueError naming the first row holding NaN or +-inf (docs/decisions.md#non-finite-boxes)."""
    if array.size == 0:
        return
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite, row {row} is {array[row].tolist()}")


def require_indices_in_range(name, indices, batch, shown=None):
    """ValueError naming the first batch index outside ``[0, batch)``.

    ``shown`` holds the values to print (the raw values when ``indices`` were derived from them).
    """
    if indices.size == 0:
        return
    if indices.dtype.kind == "f":  # the batch may not fit a narrow float: 2049 is 2048 in half
        indices = indices.astype(np.float64)
    bad = (indices < 0) | (indices >= batch)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = (shown if shown is not None else indices)[row]
        raise ValueError(
            f"{name} must be in [0, {batch}) (the batch size), row {row} is {value.item()!r}"
        )


def _bytes_text(count):
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit} ({count} bytes)"
    return f"{count} bytes"


def memory_limit(device=None):
    """(bytes, where): the total memory of ``device``'s kind of memory.

    ``device`` is None or a torch device: a CUDA device's total memory, otherwise the total
    physical memory of this machine (``MAX_INDEX`` where the system does not say).
    """
    if device is not None and device.type == "cuda":
        torch = sys.modules["torch"]  # a CUDA device implies torch is imported
        return torch.cuda.get_device_properties(device).total_memory, f"the device {device}"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine"
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return MAX_INDEX, "this machine's address space"


def require_memory(name, value, buffers, device=None):
    """ValueError naming the size argument ``name`` (given as ``value``) when the arrays a call
    would allocate cannot exist: ``buffers`` are ``(shape, itemsize)`` pairs (the result and
    any result-sized buffer of the path), in Python ints so nothing overflows.

    Run before any allocation: an array beyond ``MAX_INDEX`` bytes (even an empty one, counting
    its non-zero dimensions as NumPy does) or all of them together beyond the total memory.
    """
    for shape, itemsize in buffers:
        if math.prod(d for d in shape if d) * itemsize > MAX_INDEX:
            raise ValueError(f"{name} {describe(value)} asks for an array of shape "
                             f"{describe(tuple(shape))}, larger than any array can be "
                             f"(2**63 - 1 bytes)")
    needed = sum(math.prod(shape) * itemsize for shape, itemsize in buffers)
    limit, where = memory_limit(device)
    if needed > limit:
        raise ValueError(f"{name} {describe(value)} needs {_bytes_text(needed)} for the result "
                         f"and its working buffers, more than the {_bytes_text(limit)} of "
                         f"memory of {where}")


NUMPY = ArrayKind(require=require_arrays, dtype=np.dtype, float_dtypes=FLOAT_DTYPES,
                  image_dtypes=IMAGE_DTYPES, is_integer=_is_integer_dtype,
                  numpy_dtype=_same, float_dtype=float_dtype)
