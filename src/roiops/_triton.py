"""Helpers shared by the Triton kernels of every operator (``roiops.<op>.cuda``).

Device helpers (``@triton.jit``) and the host side of their conventions: float arguments as
bit patterns, the compute type. Imported only with triton (a CUDA call, or the tests).

The helpers call only Triton builtins (``tl.full``, ``tl.reduce``, not the ``@jit`` helpers of
triton's standard library such as ``tl.zeros`` or ``tl.max``): the interpreter tests load this
module and the kernels with ``TRITON_INTERPRET=1`` after triton itself was imported without
it, and a library ``@jit`` helper decorated then cannot run under the interpreter.
"""
import struct

import torch
import triton
import triton.language as tl

__all__ = ["add", "bit_length", "compute_dtype", "div", "float_arg", "float_bits", "i64",
           "largest", "tile_lanes"]


def compute_dtype(dtype):
    """F: float64 for float64 storage, float32 otherwise (docs/api.md#dtypes)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def float_bits(value, F):
    """``value`` rounded to ``F`` and passed as its bit pattern, a signed int (``float_arg``):
    a Python float would reach a kernel as float32, and a device tensor would cost a copy."""
    if F == torch.float64:
        return struct.unpack("<q", struct.pack("<d", value))[0]
    return struct.unpack("<i", struct.pack("<f", value))[0]


@triton.jit
def float_arg(bits, FLOAT64: tl.constexpr):
    """The float a ``float_bits`` argument carries, exact in float64 too."""
    if FLOAT64:
        return bits.to(tl.int64).to(tl.float64, bitcast=True)
    else:
        return bits.to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def div(x, y):
    """IEEE division in the operands' type: ``div_rn`` for float32 (``/`` is an approximate
    reciprocal there); float64 ``/`` is already correctly rounded (``div.rn.f64``)."""
    if x.dtype == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def i64(i):
    """A loop index or int argument as an int64 tensor (the interpreter hands out ints)."""
    return i + tl.full([], 0, tl.int64)


@triton.jit
def bit_length(n):
    """Halvings that narrow ``[0, n]`` to one point (the bit length of ``n``, 0 for n <= 0):
    a scalar loop, so that a bisection of many lanes needs no reduction across them."""
    remaining = tl.maximum(n, 0)
    steps = tl.full([], 0, tl.int64)
    while remaining > 0:
        remaining = remaining // 2
        steps += 1
    return steps


@triton.jit
def add(a, b):
    """``a + b``: the combine function of a fixed-shape ``tl.reduce`` sum."""
    return a + b


@triton.jit
def _maximum(a, b):
    return tl.maximum(a, b)


@triton.jit
def largest(x):
    """The largest element of ``x`` (a reduction over all of it)."""
    return tl.reduce(x, None, _maximum)


@triton.jit
def tile_lanes(channels, pooled_h, pooled_w, BLOCK_C: tl.constexpr, BLOCK_BINS: tl.constexpr):
    """The lanes of a forward tile of one roi (program axes 1 and 2: a block of channels, a
    block of bins): ``(channel [BLOCK_C, 1], bin_id [1, BLOCK_BINS], in_roi, ph, pw, mask)``
    as int64, lanes past the last bin on bin (0, 0) and masked."""
    channel = (tl.program_id(1).to(tl.int64) * BLOCK_C
               + tl.arange(0, BLOCK_C).to(tl.int64))[:, None]
    bin_id = (tl.program_id(2).to(tl.int64) * BLOCK_BINS
              + tl.arange(0, BLOCK_BINS).to(tl.int64))[None, :]
    in_roi = bin_id < i64(pooled_h) * pooled_w
    ph = tl.where(in_roi, bin_id // pooled_w, 0)
    pw = tl.where(in_roi, bin_id % pooled_w, 0)
    return channel, bin_id, in_roi, ph, pw, (channel < channels) & in_roi
