"""The fused multi-scale input-gradient kernel (``roiops.multi_scale_roi_align.cpu``) against
the plain reference, called directly: it writes every element of the levels' results, which
are handed to it uninitialized."""
import numpy as np
import pytest
from exact import assert_same_bits

from roiops.multi_scale_roi_align import checks, cpu, reference

SCALES = (1 / 4, 1 / 8, 1 / 16)
SHAPES = [(2, 70, 24 // s, 32 // s) for s in (1, 2, 4)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_element_is_written_with_the_reference_bits(dtype):
    """70 channels (two channel blocks, one of 6); dense rois; image 1 has rois on level 0
    only, so that the other (image, level) tasks write zeros without scattering."""
    rng = np.random.default_rng(4)
    count = 150
    corner = rng.uniform(-8, 100, (count, 2))
    size = rng.uniform(-4, 90, (count, 2))
    levels = rng.integers(-1, 3, count)
    image = np.where(rng.random(count) < 0.2, 1, 0)
    levels[image == 1] = 0
    rois = np.concatenate([image[:, None], corner, corner + size], axis=1).astype(dtype)
    grads = rng.standard_normal((count, 70, 2, 3)).astype(dtype)
    gradients = [np.full(shape, np.nan, dtype) for shape in SHAPES]
    geometry = checks.options((2, 3), 2, False).convention.geometry
    cpu.grad_input(grads, rois, image.astype(np.int64), levels, tuple(dtype(s) for s in SCALES),
                   2, geometry, False, gradients, dtype)
    expected = reference.multi_scale_roi_align_grad_input(grads, rois, levels, SHAPES, SCALES,
                                                          (2, 3), 2, F=dtype)
    for got, want in zip(gradients, expected):
        assert_same_bits(got, want)
    assert not gradients[1][1].any() and not gradients[2][1].any()
