"""Make ``torch_cases`` (the shared inputs of these tests) importable.

This folder mirrors ``roiops.torch``. It is deliberately not named ``torch``: ``tests`` is on
the path (pyproject), and a ``tests/torch`` folder would be imported as the torch package
wherever torch is not installed, so ``pytest.importorskip("torch")`` would not skip.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
