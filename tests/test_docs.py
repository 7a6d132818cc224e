"""Every docstring example runs and prints what it says."""
import doctest
import importlib

import pytest

MODULES = [
    "roiops.crop_and_resize.api",
    "roiops.roi_align.api",
    "roiops.compat.tensorflow",
    "roiops.compat.mindspore",
    "roiops.compat.torchvision",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
