"""The one dispatch point from the NumPy entry points to their torch implementations.

``roiops`` and ``roiops.compat`` never import torch: a function that receives a tensor asks
:func:`tensor_implementation` for the torch implementation registered under its name, and
``roiops.torch`` fills this registry when it is imported. So the import graph has no cycle:
``roiops.torch`` imports the NumPy modules, never the other way round.
"""
import importlib
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable)

_IMPLEMENTATIONS = {}


def register(name, implementation):
    """Make ``implementation`` the torch implementation of the entry point ``name``."""
    _IMPLEMENTATIONS[name] = implementation


def tensor_implementation(name):
    """The torch implementation of the entry point ``name``, importing ``roiops.torch`` first
    if needed; ImportError when torch is not installed."""
    if name not in _IMPLEMENTATIONS:
        # The one deferred import of the package: torch is optional and takes seconds to
        # import, so it is loaded when the first tensor (or torch-only class) is asked for.
        importlib.import_module("roiops.torch")
    return _IMPLEMENTATIONS[name]


def script_as(name: str) -> Callable[[_F], _F]:
    """Decorator: ``torch.jit.script`` compiles the torch function registered under ``name``
    in place of the decorated one, directly or when it compiles a caller.

    The public functions take NumPy arrays too and check them in Python that TorchScript
    cannot compile. torch's hook for this is the ``__prepare_scriptable__`` attribute (a dunder
    torch calls, not a private function; torchvision's transforms use it too): it returns
    the object to script instead, here a TorchScript twin from ``roiops.torch.tracing``.
    """
    def decorate(function: _F) -> _F:
        function.__prepare_scriptable__ = lambda: tensor_implementation(name)  # type: ignore[attr-defined]
        return function
    return decorate
