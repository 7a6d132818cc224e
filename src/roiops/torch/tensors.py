"""Tensors as the operators' validators read them: the :data:`TORCH` array kind
(``roiops._checks.ArrayKind``), with torch's dtypes and the dense, one-device rule."""
import numpy as np
import torch

from .. import _checks

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
IMAGE_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                torch.uint16) + FLOAT_DTYPES
# Quantized (per tensor) input is accepted by torchvision's roi_align only, computed dequantized
# in float32 (roiops.torch.compat); every other entry point refuses these dtypes.
QUANTIZED_DTYPES = (torch.qint8, torch.quint8, torch.qint32)


def require_dense(name, tensor):
    """TypeError for a sparse (or other non-strided) tensor: the kernels read strided memory."""
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {tensor.layout} "
                        f"(call .to_dense() first)")


def require_tensors(named):
    """TypeError unless every value of the ``{name: value}`` dict is a dense tensor;
    ValueError for mixed devices."""
    for name, value in named.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor like the other array arguments, "
                            f"got {type(value).__name__}")
        require_dense(name, value)
    devices = {value.device for value in named.values()}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {value.device}" for name, value in named.items())
        raise ValueError(f"tensors must be on one device, got {where}")


def float_dtype(name, value):
    """A torch float dtype from a torch dtype or anything ``np.dtype`` accepts."""
    if isinstance(value, torch.dtype) and value in FLOAT_DTYPES:
        return value
    return getattr(torch, str(_checks.float_dtype(name, value)))


def numpy_dtype(dtype):
    """The NumPy dtype the kernels compute and write a torch dtype's values as: bfloat16 has
    none, it is computed in float32 and rounded once; quantized data is computed dequantized,
    in float32, and quantized once."""
    if dtype == torch.bfloat16 or dtype in QUANTIZED_DTYPES:
        dtype = torch.float32
    return np.dtype(str(dtype).removeprefix("torch."))


def _is_integer(dtype):
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


TORCH = _checks.ArrayKind(require=require_tensors, dtype=lambda name: getattr(torch, name),
                          float_dtypes=FLOAT_DTYPES, image_dtypes=IMAGE_DTYPES,
                          is_integer=_is_integer, numpy_dtype=numpy_dtype,
                          float_dtype=float_dtype)


def refuse_quantized(library, name):
    """Register at the quantized dispatch keys of ``roiops::<name>`` (through ``library``, a
    ``torch.library.Library`` of the namespace) a kernel that raises TypeError naming the
    first quantized tensor argument: the op computes on float tensors, and without it a
    direct call would end in the dispatcher's NotImplementedError, which names no argument.
    A kernel there is only reached when an argument is quantized."""
    op = getattr(torch.ops.roiops, name).default
    argument_names = [argument.name for argument in op._schema.arguments]

    def kernel(*args, **kwargs):
        named = {**dict(zip(argument_names, args)), **kwargs}
        argument, tensor = next(
            (argument, tensor) for argument, value in named.items()
            for tensor in (value if isinstance(value, (list, tuple)) else [value])
            if isinstance(tensor, torch.Tensor) and tensor.is_quantized)
        raise TypeError(f"{argument} must not be quantized: roiops::{name} computes on float "
                        f"tensors (call .dequantize() first), got {tensor.dtype}")

    for key in ("QuantizedCPU", "QuantizedCUDA"):
        library.impl(name, kernel, key)
