"""Reading images and writing crops with Pillow, for ``roiops crop``.

Every image is decoded to 8-bit RGB (grayscale replicated to three channels, palettes
expanded, alpha dropped, CMYK converted). Images of more than 8 bits per channel are refused
rather than silently clipped. Crops are float32 (crop_and_resize's output for integer images);
:func:`to_uint8` rounds them half to even and clips them to ``[0, 255]`` for PNG and JPEG.
"""
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import files

JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # fast; PNG is lossless at any level
SAVE_OPTIONS = {"png": {"format": "PNG", "compress_level": PNG_COMPRESS_LEVEL},
                "jpg": {"format": "JPEG", "quality": JPEG_QUALITY}}
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


def to_uint8(crops, in_place=False):
    """float crops to uint8: rounded (half to even) and clipped to ``[0, 255]``.

    ``in_place`` rounds and clips ``crops`` itself, which saves a float copy when the float
    crops are not needed any more.
    """
    rounded = np.rint(crops, out=crops if in_place else None)
    np.clip(rounded, 0, 255, out=rounded)
    return rounded.astype(np.uint8)


def write_image(array, path, image_format):
    """Write a uint8 ``[h, w, 3]`` crop as PNG or JPEG, atomically (:mod:`.files`): a run
    that is killed never leaves a partial image that a resume would take for finished."""
    image = Image.fromarray(array)
    files.write_atomically(path, lambda file: image.save(file, **SAVE_OPTIONS[image_format]))
