"""Images 2**24 + 4 pixels high or wide: every sample on the far edge stays inside the image.

In float32, ``size - 1 = 16777219`` rounds up to ``16777220 = size``, so the kernels' float
inside test accepts a coordinate whose floor and ceil are pixel ``size``: one past the edge,
the first pixel of the next image or past the buffer (issue 13). Such a sample reads, and its
gradient writes, pixel ``size - 1``. Each test puts a sentinel right after the image's last
pixel and checks that no result sees it and no gradient reaches it. The Numba kernels are
called directly with depth 1, uint8 images where the kernel takes them, and at most 67 MB of
memory per test.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from roiops.crop_and_resize import cpu as crop
from roiops.roi_align import api as align_api
from roiops.roi_align import cpu as align

SIZE = 2 ** 24 + 4
F32 = np.float32
SENTINEL = 99
EDGE_VALUE = 7
AXES = ["height", "width"]
CROP_METHODS = [crop.BILINEAR, crop.NEAREST, crop.BILINEAR_V2]


def test_float32_rounds_the_last_pixel_up_to_the_size():
    assert F32(SIZE - 1) == SIZE


def nhwc_shape(axis, batch, across):
    """``[batch, H, W, 1]`` with ``SIZE`` along ``axis`` and ``across`` pixels along the other."""
    return (batch, SIZE, across, 1) if axis == "height" else (batch, across, SIZE, 1)


def edge_box(axis):
    """A normalised box on the far edge of ``axis`` and on the near edge of the other."""
    return np.array([[1, 0, 1, 0]] if axis == "height" else [[0, 1, 0, 1]], F32)


def crop_image(axis):
    """Two uint8 images, one pixel across ``axis``: image 0 holds ``EDGE_VALUE`` at its last
    pixel, image 1, the memory right after it, starts with ``SENTINEL``."""
    image = np.zeros(nhwc_shape(axis, 2, 1), np.uint8)
    image[0, -1, -1, 0] = EDGE_VALUE
    image[1, 0, 0, 0] = SENTINEL
    return image


# ---------------------------------------------------------------------------------------------
# crop_and_resize
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("out_half", [False, True])
@pytest.mark.parametrize("method", CROP_METHODS)
@pytest.mark.parametrize("axis", AXES)
def test_crop_forward_reads_the_last_pixel(axis, method, out_half):
    image = crop_image(axis)
    for crop_size in [(1, 1), (2, 2)]:  # the box centre, and the start-and-step samples
        out = np.empty((1, *crop_size, 1), np.uint16 if out_half else F32)
        crop.forward(image, edge_box(axis), np.zeros(1, np.int64), method, F32(-1), out,
                     out_half, F32)
        values = out.view(np.float16) if out_half else out
        assert (values == EDGE_VALUE).all(), (crop_size, values.ravel())


def crop_gradient_target(axis, batch):
    """(buffer, out): a zeroed float32 ``out`` [batch, H, W, 1] over ``buffer``'s first
    ``SIZE`` elements, ``buffer[SIZE]`` being the memory right after the image.

    Its images share that memory (a zero batch stride): two images of 2**24 pixels would take
    twice the memory, and only image 0 receives boxes.
    """
    buffer = np.zeros(SIZE + 1, F32)
    shape = nhwc_shape(axis, batch, 1)
    item = buffer.itemsize
    return buffer, as_strided(buffer, shape=shape, strides=(0, shape[2] * item, item, item))


# One image: tiles of columns, each checking what it owns; two: the whole-row fast path.
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("method", CROP_METHODS)
@pytest.mark.parametrize("axis", AXES)
def test_crop_grad_image_lands_on_the_last_pixel(axis, method, batch):
    buffer, out = crop_gradient_target(axis, batch)
    grads = np.ones((1, 2, 2, 1), F32)
    crop.grad_image(grads, edge_box(axis), np.zeros(1, np.int64), method, out, False, F32)
    assert buffer[SIZE] == 0  # nothing written past the image
    assert buffer[SIZE - 1] == grads.sum()  # all of it on the last pixel
    assert buffer.sum() == grads.sum()


@pytest.mark.parametrize("axis", AXES)
def test_crop_grad_boxes_reads_the_last_pixels(axis):
    # Two pixels across the huge axis, 0 then 5, on the far edge; a crop of one samples
    # halfway between them at 0.25, so d/d(near edges and far edges) = 0.5 * 5 = 2.5 each
    # along the other axis and 0 along the huge one. Reading past the edge would see the
    # sentinel of image 1 instead.
    image = np.zeros(nhwc_shape(axis, 2, 2), np.uint8)
    if axis == "height":
        image[0, -1, 1, 0] = 5
        boxes = np.array([[1, 0, 1, 0.5]], F32)
        expected = [0, 2.5, 0, 2.5]
    else:
        image[0, 1, -1, 0] = 5
        boxes = np.array([[0, 1, 0.5, 1]], F32)
        expected = [2.5, 0, 2.5, 0]
    image[1, 0, :, 0] = SENTINEL
    out = np.zeros((1, 4), F32)
    crop.grad_boxes(np.ones((1, 1, 1, 1), F32), image, boxes, np.zeros(1, np.int64), True,
                    out, F32)
    np.testing.assert_array_equal(out[0], expected)


# ---------------------------------------------------------------------------------------------
# roi_align: its sample tables pin a coordinate past the last pixel to it in integers
# ---------------------------------------------------------------------------------------------

def nchw_map(axis, buffer):
    """``[1, 1, H, W]`` over ``buffer``'s first ``SIZE`` elements, ``SIZE`` along ``axis``."""
    shape = (1, 1, SIZE, 1) if axis == "height" else (1, 1, 1, SIZE)
    return buffer[:SIZE].reshape(shape)


def edge_rois(axis):
    """A roi from the last pixel to the far edge of ``axis`` (image coordinates), 0 across."""
    edge = F32(SIZE - 1)
    return np.array([[0, 0, edge, 0, SIZE]] if axis == "height" else [[0, edge, 0, SIZE, 0]],
                    F32)


ALIGN_CONVENTIONS = [dict(aligned=False, convention="torchvision", roi_end_mode=1),
                     dict(aligned=True, convention="torchvision", roi_end_mode=1),
                     dict(aligned=False, convention="mindspore", roi_end_mode=1)]


def align_args(axis, convention):
    """The kernels' arguments before ``half_arithmetic``: rois, batch indices and the
    convention's arguments as the API makes them (sampling ratio 2, 2x2 output)."""
    options = align_api.Options((2, 2), 1.0, 2, convention["aligned"], convention["convention"],
                                convention["roi_end_mode"])
    return (edge_rois(axis), np.zeros(1, np.int64), *options.kernel_args(F32))


@pytest.mark.parametrize("convention", ALIGN_CONVENTIONS)
@pytest.mark.parametrize("axis", AXES)
def test_roi_align_reads_and_writes_only_the_map(axis, convention):
    buffer = np.zeros(SIZE + 1, F32)
    buffer[SIZE - 1] = EDGE_VALUE
    buffer[SIZE] = np.nan  # right after the map
    input = nchw_map(axis, buffer)
    args = align_args(axis, convention)

    out = np.empty((1, 1, 2, 2), F32)
    align.forward(input, *args, False, out, False, F32)
    assert (out == EDGE_VALUE).all(), out.ravel()

    boxes_gradient = np.zeros((1, 5), F32)
    align.grad_boxes(np.ones((1, 1, 2, 2), F32), input, *args, boxes_gradient, F32)
    assert np.isfinite(boxes_gradient).all()

    buffer[:] = 0  # now the gradient's
    align.grad_input(np.ones((1, 1, 2, 2), F32), *args, False, nchw_map(axis, buffer),
                     np.empty((0, 0, 0, 0), F32), F32)
    assert buffer[SIZE] == 0
    assert buffer[SIZE - 1] == 4  # each bin's gradient, 1, on the last pixel
    assert buffer.sum() == 4
