"""Dtype rules, output allocation and the views the kernels read and write.

Kernels compute in ``F`` (np.float32 or np.float64) and cannot hold float16 (Numba has no
half type on the CPU): float16 inputs are widened exactly to float32 here, and float16 outputs
are handed to the kernels as their uint16 bit pattern, which the kernels write directly.
"""
import numpy as np


def native_compute_type(dtype):
    """API.md §2: float64 for float64 data, float32 for everything else."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def native_output_dtype(dtype):
    """API.md §2: the input's float dtype; float32 for integer images."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


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


def allocate_output(shape, dtype, out):
    """A fresh ``np.empty`` result, or ``out`` after checking it (API.md §2 ``out=``)."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous array of shape {tuple(shape)} and dtype {dtype}, "
            f"got shape {out.shape}, dtype {out.dtype}, "
            f"{'C-contiguous' if out.flags.c_contiguous else 'not C-contiguous'}"
        )
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out


def nhwc_view(array, data_format):
    """The NHWC-ordered view of a 4-D array stored as ``data_format`` (no copy)."""
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)
