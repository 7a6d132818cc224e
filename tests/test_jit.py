"""A call the kernels were compiled for compiles nothing more: each later call reuses it.

Regression: kernels once made their half switches compile-time constants with
``numba.literally``; a Python bool never matched the literal overload, so every call went
back through the compiler (0.1-1 s per call instead of well under a millisecond).
"""
import pytest
from numba.core.event import install_recorder

from roiops.cli import warmup

# The paths with half switches and both roi_align plans, through the public API.
VARIANTS = ["crop_and_resize uint8 C bilinear", "crop_and_resize float16 C bilinear",
            "crop_and_resize float16 C bilinear_v2",
            "crop_and_resize_grad_image float16 C bilinear",
            "crop_and_resize_grad_image float32 C bilinear_v2", "roi_align float16 C in place",
            "roi_align float32 C channels last", "roi_align_grad_input float16 C in place",
            "roi_align_grad_boxes float32 C"]


@pytest.mark.parametrize("name", VARIANTS)
def test_a_second_call_compiles_nothing(name):
    variant = next(v for v in warmup.variants() if v.name == name)
    variant.run()
    with install_recorder("numba:compile") as compiles:
        variant.run()
    assert [e.data["dispatcher"].py_func.__qualname__ for _, e in compiles.buffer] == []
