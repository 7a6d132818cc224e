"""The one dispatch point from the NumPy entry points to their torch implementations.

``roiops`` and ``roiops.compat`` never import torch: a function that receives a tensor asks
:func:`tensor_implementation` for the torch implementation registered under its name, and
``roiops.torch`` fills this registry when it is imported. So the import graph has no cycle:
``roiops.torch`` imports the NumPy modules, never the other way round.
"""
import importlib

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
