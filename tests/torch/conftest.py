"""Make ``torch_cases`` (the shared inputs of these tests) importable.

``tests`` is on the path (pyproject), but this folder is named like the torch package and
holds no ``__init__``: its modules are imported from here instead.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
