"""Reading images and writing crops with Pillow, for ``roiops crop``.

Every image is decoded to 8-bit RGB (grayscale replicated to three channels, palettes
expanded, alpha dropped, CMYK converted). Images of more than 8 bits per channel are refused
rather than silently clipped. Crops are float32 (crop_and_resize's output for integer images);
:func:`to_uint8` rounds them half to even and clips them to ``[0, 255]`` for PNG and JPEG.
"""
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # fast; PNG is lossless at any level
_WIDE_MODES = {"I", "F"}


class ImageError(Exception):
    """An image that cannot be read (the message says why)."""


def read_rgb(path):
    """The image at ``path`` as a ``[H, W, 3]`` uint8 array; ImageError if it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.mode in _WIDE_MODES or image.mode.startswith("I;16"):
                    raise ImageError(f"unsupported pixel mode {image.mode} (more than 8 bits per "
                                     "channel); convert it to 8-bit RGB first")
                image.load()
                if image.mode == "P" and "transparency" in image.info:
                    image = image.convert("RGBA")
                return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as error:
        raise ImageError(f"cannot decode: {error}") from None


def to_uint8(crops):
    """float crops to uint8: rounded (half to even) and clipped to ``[0, 255]``."""
    return np.clip(np.rint(crops), 0, 255).astype(np.uint8)


def write_image(array, path, image_format):
    """Write a uint8 ``[h, w, 3]`` crop as PNG or JPEG.

    The file is encoded in memory and written with a single ``write``, so a run that is killed
    leaves either no file, an empty one (which a resume redoes, see :func:`is_written`) or the
    whole file; never a truncated image that a resume would take for finished. (A temporary
    file renamed into place would also do, but costs a quarter more per crop on some file
    systems.)
    """
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(array).save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        Image.fromarray(array).save(buffer, "JPEG", quality=JPEG_QUALITY)
    with open(path, "wb") as file:
        file.write(buffer.getbuffer())


def is_written(path):
    """Whether a crop file from an earlier run is there (an empty file does not count)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
