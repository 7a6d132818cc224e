"""Scalar helpers shared by the Numba kernels: IEEE half emulation and C rounding rules.

Numba has no float16 arithmetic on the CPU, so half values live in float32 registers and in
uint16 arrays (the bits of a float16 array seen through ``.view(np.uint16)``). Every helper is
exact: ``round_to_half`` equals ``np.float32(np.float16(x))`` for every float32 ``x``, and the
bit conversions equal NumPy's.
"""
import math

import numpy as np
from numba import njit

_HALF_MAX_ROUNDING = 65520.0  # values at or above this round to inf in binary16
_HALF_MIN_NORMAL = 2.0 ** -14


@njit(cache=True, inline="always")
def round_to_half(x):
    """Round a float32 to the nearest binary16 value (ties to even), returned as float32.

    Half arithmetic (c10::Half, MindSpore Float16, NumPy float16) is a float32 operation
    followed by this rounding.
    """
    a = np.float64(x)
    if a != a:
        return np.float32(np.nan)
    magnitude = abs(a)
    if magnitude >= _HALF_MAX_ROUNDING:
        return np.float32(math.copysign(np.inf, a))
    if magnitude < _HALF_MIN_NORMAL:
        quantum = 2.0 ** -24
    else:
        quantum = 2.0 ** (math.frexp(magnitude)[1] - 11)
    # magnitude / quantum is exact (a power-of-two division) and below 2**11, so rint is the
    # only rounding: ties go to even as in IEEE.
    return np.float32(math.copysign(np.rint(magnitude / quantum) * quantum, a))


@njit(cache=True, inline="always")
def float_to_half_bits(x):
    """The binary16 bits (uint16) of float32 ``x`` rounded to half, ties to even."""
    h = np.float64(round_to_half(np.float32(x)))
    if h != h:
        return np.uint16(0x7E00)
    sign = 0x8000 if math.copysign(1.0, h) < 0 else 0
    magnitude = abs(h)
    if magnitude == np.inf:
        return np.uint16(sign | 0x7C00)
    if magnitude < _HALF_MIN_NORMAL:
        return np.uint16(sign | np.int64(magnitude * 2.0 ** 24))
    mantissa, exponent = math.frexp(magnitude)  # magnitude = mantissa * 2**exponent, 0.5 <= m < 1
    fraction = np.int64((mantissa * 2.0 - 1.0) * 1024.0)
    return np.uint16(sign | ((exponent + 14) << 10) | fraction)


@njit(cache=True, inline="always")
def round_half_away(x):
    """C ``roundf``: the nearest integer, halves away from zero (not NumPy's half to even).

    ``floor(x + 0.5)`` is not the same: at 0.49999997 the sum rounds up to 1.0.
    """
    k = math.floor(x)
    if x - k >= 0.5:
        k += 1.0
    if x < 0 and x - math.ceil(x) == -0.5:  # negative halves also go away from zero
        k = math.ceil(x) - 1.0
    return k
