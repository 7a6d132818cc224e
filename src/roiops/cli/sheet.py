"""Contact sheets: crops laid out on a grid in one PNG, each with its label under it and the
part of it that lies outside its image hatched."""
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD = 2
BACKGROUND = 32
MAX_CROPS = 400
MAX_CELL = 128
CAPTION_HEIGHT = 12     # a strip under each cell with the crop's label ...
CAPTION_MIN_WIDTH = 32  # ... when cells are wide enough to hold a few letters
CAPTION_COLOUR = (230, 230, 230)
# Samples outside the image (extrapolated, or the edge repeated by bilinear_v2) get every
# fourth diagonal in this colour, so that they cannot pass for image pixels or the background.
HATCH_COLOUR = (255, 0, 255)
HATCH_PERIOD = 4


def cell_size(crop_height, crop_width, max_cell=MAX_CELL):
    """The size of one cell: the crop size, scaled down to fit ``max_cell`` pixels if larger."""
    scale = min(1.0, max_cell / max(crop_height, crop_width))
    return max(1, round(crop_height * scale)), max(1, round(crop_width * scale))


def fit_cell(crop, crop_height, crop_width, outside=None):
    """A uint8 crop as its contact sheet cell shows it: reduced to :func:`cell_size` if
    larger, and hatched where ``outside = (rows, columns)`` (boolean arrays over the crop's
    rows and columns) says that it samples outside its image. ``crop`` is not changed.

    Workers make the cells, so a sheet of large crops costs the main process little memory.
    """
    cell_h, cell_w = cell_size(crop_height, crop_width)
    if crop.shape[:2] != (cell_h, cell_w):
        crop = np.asarray(Image.fromarray(crop).resize((cell_w, cell_h), Image.Resampling.BOX))
    if outside is None or not (outside[0].any() or outside[1].any()):
        return crop
    rows = outside[0][_nearest(cell_h, len(outside[0]))]
    columns = outside[1][_nearest(cell_w, len(outside[1]))]
    diagonal = np.add.outer(np.arange(cell_h), np.arange(cell_w)) % HATCH_PERIOD == 0
    cell = crop.copy()
    cell[(rows[:, None] | columns[None, :]) & diagonal] = HATCH_COLOUR
    return cell


def _nearest(cells, samples):
    """For each of ``cells`` positions, the nearest of ``samples`` evenly spread positions."""
    return np.minimum(((np.arange(cells) + 0.5) * samples / cells).astype(int), samples - 1)


def has_captions(crop_height, crop_width):
    return cell_size(crop_height, crop_width)[1] >= CAPTION_MIN_WIDTH


def sheet_size(count, crop_height, crop_width):
    """``(height, width)`` of the sheet for ``count`` crops: ``ceil(sqrt(count))`` columns, cells
    of :func:`cell_size` (and a caption strip under each when they are wide enough), ``PAD``
    pixels around and between them."""
    count = min(count, MAX_CROPS)
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    cell_h, cell_w = cell_size(crop_height, crop_width)
    cell_h += CAPTION_HEIGHT if has_captions(crop_height, crop_width) else 0
    return rows * (cell_h + PAD) + PAD, columns * (cell_w + PAD) + PAD


def contact_sheet(crops, crop_height, crop_width, captions=None):
    """An RGB image of the first ``MAX_CROPS`` uint8 crops (``[h, w, 3]`` arrays, full size or
    already made cells by :func:`fit_cell`), row by row, with ``captions`` (one text per crop)
    under the cells when they are at least ``CAPTION_MIN_WIDTH`` wide.

    Crops larger than ``MAX_CELL`` pixels are shown reduced. An empty list gives a sheet with
    one blank cell.
    """
    crops = list(crops)[:MAX_CROPS]
    captions = list(captions or [])
    height, width = sheet_size(len(crops), crop_height, crop_width)
    cell_h, cell_w = cell_size(crop_height, crop_width)
    strip = CAPTION_HEIGHT if has_captions(crop_height, crop_width) else 0
    columns = (width - PAD) // (cell_w + PAD)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    places = []
    for number, crop in enumerate(crops):
        crop = fit_cell(crop, crop_height, crop_width)
        top = PAD + (number // columns) * (cell_h + strip + PAD)
        left = PAD + (number % columns) * (cell_w + PAD)
        sheet[top:top + cell_h, left:left + cell_w] = crop
        places.append((left, top + cell_h))
    image = Image.fromarray(sheet)
    if strip and captions:
        _draw_captions(image, places, captions, cell_w)
    return image


def _draw_captions(image, places, captions, cell_width):
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=CAPTION_HEIGHT - 2)
    for (left, top), text in zip(places, captions):
        draw.text((left, top), _fitted(text, font, cell_width), fill=CAPTION_COLOUR, font=font)


def _fitted(text, font, width):
    """``text``, cut and ended with an ellipsis if it is wider than ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"
