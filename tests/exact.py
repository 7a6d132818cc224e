"""One definition of "the same result, bit for bit", for every test.

Two results are the same when they have the same dtype and shape, NaN at the same places (any
NaN matches any NaN: its sign and payload are not part of any contract), and every other
element has the same bits, so -0.0 differs from +0.0. NumPy arrays and torch tensors (any
device; bfloat16 compared through its exact float32 value) mix freely; torch is never
imported here.
"""
import numpy as np

__all__ = ["as_numpy", "assert_same_bits", "same_bits"]

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _dtype_name(value):
    """``float32``, ``bfloat16``, ... for a NumPy array, a torch tensor or a scalar."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return np.asarray(value).dtype.name
    return str(dtype).removeprefix("torch.")


def as_numpy(value):
    """``value`` as a NumPy array: a torch tensor is detached and copied to the host, and a
    bfloat16 tensor widened to float32 (exact)."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _differences(actual, expected):
    """Boolean mask of the elements that differ (both arrays of one dtype and shape)."""
    if actual.dtype.kind != "f":
        return np.asarray(actual != expected)
    unsigned = _UNSIGNED[actual.dtype.itemsize]
    nan_actual, nan_expected = np.isnan(actual), np.isnan(expected)
    bits_differ = (np.ascontiguousarray(actual).view(unsigned)
                   != np.ascontiguousarray(expected).view(unsigned))
    return np.where(nan_actual | nan_expected, nan_actual != nan_expected, bits_differ)


def same_bits(actual, expected):
    """True when ``actual`` and ``expected`` are the same result (see the module docstring)."""
    if _dtype_name(actual) != _dtype_name(expected):
        return False
    a, e = as_numpy(actual), as_numpy(expected)
    return a.shape == e.shape and not _differences(a, e).any()


def assert_same_bits(actual, expected, what="result"):
    """Assert ``same_bits``; the message names what differs and shows the first elements."""
    assert _dtype_name(actual) == _dtype_name(expected), (
        f"{what}: dtype {_dtype_name(actual)}, expected {_dtype_name(expected)}")
    a, e = as_numpy(actual), as_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}"
    different = _differences(a, e)
    if different.any():
        places = np.argwhere(different)
        lines = [f"{what}: {len(places)} of {different.size} elements differ; the first:"]
        for place in places[:8]:
            index = tuple(int(i) for i in place)
            lines.append(f"  {index}: got {a[index]!r}, expected {e[index]!r}")
        raise AssertionError("\n".join(lines))
