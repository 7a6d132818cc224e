"""Shared inputs for the torch tests: small shapes, layouts and a bit-exact NumPy reference."""
import numpy as np
import torch

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LAYOUTS = ["contiguous", "channels_last", "non_contiguous"]

# Boxes away from pixel boundaries and clamps, so finite differences see smooth functions.
BOXES = [[0.11, 0.07, 0.83, 0.91], [0.62, 0.18, 0.24, 0.77], [0.05, 0.55, 0.46, 0.12]]
BOX_INDICES = [0, 1, 1]
ROIS = [[0, 1.13, 0.71, 6.37, 4.58], [1, 2.41, 1.29, 7.66, 5.87], [1, 0.33, 2.07, 3.21, 3.96]]


def layout(tensor, kind):
    """``tensor`` (4-D) stored contiguously, as channels_last, or as a strided slice."""
    if kind == "contiguous":
        return tensor.contiguous()
    if kind == "channels_last":
        return tensor.contiguous(memory_format=torch.channels_last)
    # every other column of a twice-as-wide buffer: non-contiguous in the last dimension
    wide = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype)
    wide[..., ::2] = tensor
    return wide[..., ::2]


def randn(*shape, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)


def to_numpy(tensor):
    """The NumPy array the reference path gets: bfloat16 widened to float32 (exact)."""
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def reference(fn, *args, dtype, **kwargs):
    """``fn`` on NumPy arrays, as a tensor of ``dtype`` (bfloat16: rounded once from float32)."""
    args = [to_numpy(a) if isinstance(a, torch.Tensor) else a for a in args]
    return torch.from_numpy(np.asarray(fn(*args, **kwargs))).to(dtype)
