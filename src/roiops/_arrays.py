"""Dtype rules, output allocation and the views the kernels read and write.

Kernels compute in ``F`` (np.float32 or np.float64) and cannot hold float16 (Numba has no
half type on the CPU): float16 inputs are widened exactly to float32 here, and float16 outputs
are handed to the kernels as their uint16 bit pattern, which the kernels write directly.
"""
import numpy as np

from . import _checks


def native_byte_order(*values):
    """``values`` with every array (also inside a list or tuple) in native byte order.

    Big-endian data (``'>f4'`` on a little-endian machine) is converted, a copy of that input
    only; everything else is returned as it is, for the checks to judge. The kernels, the
    dtype rules and the output dtypes then see native dtypes only.
    """
    def native(value):
        if isinstance(value, np.ndarray) and not value.dtype.isnative:
            return value.astype(value.dtype.newbyteorder("="))
        if isinstance(value, (list, tuple)):
            return type(value)(native(v) for v in value)
        return value

    converted = tuple(native(v) for v in values)
    return converted[0] if len(values) == 1 else converted


def native_compute_type(dtype):
    """docs/api.md#dtypes: float64 for float64 data, float32 for everything else."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def kernel_input(array, F):
    """``array`` as the kernel reads it: float arrays in ``F``, integer images unchanged.

    Converting copies, but only inputs (never an output-sized temporary in the forward).
    float64 values beyond float32's range become inf, as the peers' conversion makes them.
    """
    if array.dtype.kind == "f" and array.dtype != F:
        with np.errstate(over="ignore"):
            return array.astype(F)
    return array


def kernel_output(array):
    """(view, is_half): float16 outputs are written by the kernels as uint16 bits."""
    if array.dtype == np.float16:
        return array.view(np.uint16), True
    return array, False


def check_out(out, shape, dtype, inputs):
    """ValueError unless ``out`` can hold the result (docs/api.md#reusing-memory-with-out).

    ``inputs`` maps names to the input arrays: ``out`` must not share memory with any of them
    (the kernels would read values they already overwrote). The test is on memory bounds,
    so an ``out`` interleaved with an input is refused too.
    """
    dtype = np.dtype(dtype)
    if not isinstance(out, np.ndarray) or _checks.unsupported_subclass(out):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous array of shape {tuple(shape)} and dtype {dtype}, "
            f"got shape {out.shape}, dtype {out.dtype}, "
            f"{'C-contiguous' if out.flags.c_contiguous else 'not C-contiguous'}"
        )
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    for name, array in inputs.items():
        if np.may_share_memory(out, array):
            raise ValueError(f"out must not share memory with {name} (the result would "
                             f"overwrite the values it is computed from)")


def nhwc_view(array, data_format):
    """The NHWC-ordered view of a 4-D array stored as ``data_format`` (no copy)."""
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)
