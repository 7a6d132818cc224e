"""Reading images and writing crops with Pillow, for ``roiops crop``.

Every image is decoded to 8-bit RGB (grayscale replicated to three channels, palettes
expanded, alpha dropped, CMYK converted) and, unless told otherwise, turned as its EXIF
orientation says (Pillow's ``ImageOps.exif_transpose``: what viewers, annotation tools,
OpenCV's ``imread`` and torchvision show). Images of more than 8 bits per channel are refused
rather than silently clipped. Crops are float32 (crop_and_resize's output for integer images);
:func:`to_uint8` rounds them half to even and clips them to ``[0, 255]`` for PNG and JPEG.

PNG crops are written with the settings OpenCV's ``imwrite`` uses for PNG by default (and
so ultralytics' ``save_crop``): every row filtered with Sub (each byte minus the byte of the
pixel on its left), compressed with zlib at level 1 with the RLE strategy. That is 4 to 5
times faster than Pillow's PNG writer at its own level 1 (which tries five filters on every
row), for files of about the same size; PNG is lossless, so the pixels are the same.
"""
import contextlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import files
from .sources import RemoteImage

JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # zlib's fastest; PNG is lossless at any level
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SUB_FILTER = 1      # the filter type byte that starts each row
_WIDE_MODES = {"I", "F"}
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transposition that shows the image upright (the table of Pillow's
# ImageOps.exif_transpose); 1 is upright already.
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}
SWAPS_AXES = {5, 6, 7, 8}  # orientations that turn the image by a quarter


@dataclass
class Decoded:
    """A decoded image: ``[H, W, 3]`` uint8 pixels (oriented unless told otherwise) and the
    EXIF orientation of the file (1 when it has none)."""

    pixels: np.ndarray
    orientation: int = 1


class ImageError(Exception):
    """An image that cannot be read (the message says why)."""


def read_rgb(path, orient=True):
    """The image at ``path`` as a ``[H, W, 3]`` uint8 array, turned as its EXIF orientation
    says when ``orient``; ImageError if it cannot be read."""
    return decode(path, orient).pixels


def decode(path, orient=True):
    """The image at ``path`` (a file, or a :class:`RemoteImage`) as :class:`Decoded`;
    ImageError if it cannot be read."""
    with _image_errors(), Image.open(_readable(path)) as image:
        if image.mode in _WIDE_MODES or image.mode.startswith("I;16"):
            raise ImageError(f"unsupported pixel mode {image.mode} (more than 8 bits per "
                             "channel); convert it to 8-bit RGB first")
        image.load()
        # After load(): Pillow's TIFF reader turns the image itself and drops the tag.
        orientation = exif_orientation(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        # (convert() copies even an RGB image: most JPEGs are RGB already)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if orient and orientation != 1:
            rgb = rgb.transpose(TRANSPOSE[orientation])
        return Decoded(np.asarray(rgb), orientation)


def read_size(path, orient=True):
    """``(height, width)`` of the image at ``path`` as :func:`decode` gives it, read from its
    header (nothing is decoded); ImageError if it cannot be read."""
    with _image_errors(), Image.open(_readable(path)) as image:
        width, height = image.size
        # Pillow's TIFF reader gives the turned size already (and turns the pixels on load).
        if orient and image.format != "TIFF" and exif_orientation(image) in SWAPS_AXES:
            width, height = height, width
        return height, width


def _readable(path):
    """What Pillow opens: a file's path, or a remote file's bytes."""
    return path.open() if isinstance(path, RemoteImage) else path


def exif_orientation(image):
    """The EXIF orientation of an opened image: 1 (as stored) when absent or not 1 to 8."""
    orientation = image.getexif().get(ORIENTATION_TAG, 1)
    return orientation if orientation in TRANSPOSE or orientation == 1 else 1


@contextlib.contextmanager
def _image_errors():
    """What Pillow raises for a missing, unreadable, truncated or oversized image (a
    decompression bomb warning included) as ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as error:
        raise ImageError(f"cannot decode: {error}") from None


def to_uint8(crops, in_place=False):
    """float crops to uint8: rounded (half to even) and clipped to ``[0, 255]``.

    ``in_place`` rounds and clips ``crops`` itself, which saves a float copy when the float
    crops are not needed any more.
    """
    rounded = np.rint(crops, out=crops if in_place else None)
    np.clip(rounded, 0, 255, out=rounded)
    return rounded.astype(np.uint8)


def encode(crop, image_format):
    """The file of a uint8 ``[h, w, 3]`` crop as PNG or JPEG (bytes)."""
    if image_format == "png":
        return png_bytes(crop)
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def png_bytes(crop):
    """A uint8 ``[h, w, 3]`` crop as an 8-bit RGB PNG file: rows Sub-filtered, zlib level 1
    with the RLE strategy (OpenCV's default)."""
    height, width, channels = crop.shape
    rows = crop.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = PNG_SUB_FILTER
    filtered[:, 1:channels + 1] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, channels + 1:])
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 8,
                                  zlib.Z_RLE)
    data = compressor.compress(filtered) + compressor.flush()
    # IHDR: width, height, 8 bits per sample, colour type 2 (RGB), deflate, adaptive
    # filtering, no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", data),
                     _png_chunk(b"IEND", b"")))


def _png_chunk(kind, data):
    return b"".join((struct.pack(">I", len(data)), kind, data,
                     struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))))


def write_image(array, path, image_format):
    """Write a uint8 ``[h, w, 3]`` crop as PNG or JPEG, atomically (:mod:`.files`): a run
    that is killed never leaves a partial image that a resume would take for finished."""
    files.write_bytes(path, encode(array, image_format))
