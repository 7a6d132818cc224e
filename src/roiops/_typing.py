"""The types of the public API's annotations.

Every operator takes NumPy arrays, or torch tensors when torch is installed, and returns what
it was given: ``ArrayOrTensor`` is that kind (the arrays of one call are all of one kind).
torch is named for type checkers only, so ``import roiops`` stays free of it.
"""
from typing import TYPE_CHECKING, TypeVar, Union

import numpy as np
from numpy.typing import DTypeLike

if TYPE_CHECKING:
    import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, "torch.Tensor")
# A float dtype: anything ``np.dtype`` accepts, or a torch dtype.
FloatDtype = Union[DTypeLike, "torch.dtype"]
