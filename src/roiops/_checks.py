"""Argument validation shared by every entry point (API.md §3).

Every check runs before any kernel, raises the documented exception type and names the
argument, what was expected and what was given.
"""
import numbers
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
IMAGE_DTYPES = (
    np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64),
    np.dtype(np.uint8), np.dtype(np.uint16),
) + FLOAT_DTYPES


def any_tensor(*values):
    """True if any value is a torch.Tensor; never imports torch (roiops works without it).

    If torch was never imported, no value can be a tensor.
    """
    torch = sys.modules.get("torch")
    return torch is not None and any(isinstance(v, torch.Tensor) for v in values)


def require_array(name, value):
    """The argument as a NumPy array; TypeError for anything that is not an array."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    return value


def require_dtype(name, array, allowed):
    if array.dtype not in allowed:
        supported = ", ".join(str(d) for d in allowed)
        raise TypeError(f"{name} must have dtype in ({supported}), got {array.dtype}")


def float_dtype(name, value):
    """A float16/32/64 NumPy dtype from anything ``np.dtype`` accepts or a torch dtype."""
    text = str(value)
    try:
        dtype = np.dtype(text.removeprefix("torch.") if text.startswith("torch.") else value)
    except TypeError:
        dtype = None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, float32 or float64, got {value!r}")
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


def size_pair(name, value, allow_int=False):
    """A pair of positive Python ints from an int (if ``allow_int``) or a length-2 sequence."""
    if allow_int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (value, value)
    else:
        try:
            items = tuple(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else tuple(value)
        except TypeError:
            items = None
    if (
        items is None
        or len(items) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items)
        or not all(v > 0 for v in items)
    ):
        kind = "an int or two positive ints" if allow_int else "two positive ints"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(items[0]), int(items[1])


def require_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")


def require_int(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def require_number(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def require_positive_image_size(name, height, width):
    if height < 1 or width < 1:
        raise ValueError(f"{name} must have height and width >= 1, got {height}x{width}")


def require_finite_rows(name, array):
    """ValueError naming the first row holding NaN or +-inf (API.md §4.1)."""
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
    bad = (indices < 0) | (indices >= batch)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = (shown if shown is not None else indices)[row]
        raise ValueError(
            f"{name} must be in [0, {batch}) (the batch size), row {row} is {value.item()!r}"
        )
