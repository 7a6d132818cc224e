"""Contact sheets: crops laid out on a grid in one PNG."""
import math

import numpy as np
from PIL import Image

PAD = 2
BACKGROUND = 32
MAX_CROPS = 400
MAX_CELL = 128


def cell_size(crop_height, crop_width, max_cell=MAX_CELL):
    """The size of one cell: the crop size, scaled down to fit ``max_cell`` pixels if larger."""
    scale = min(1.0, max_cell / max(crop_height, crop_width))
    return max(1, round(crop_height * scale)), max(1, round(crop_width * scale))


def fit_cell(crop, crop_height, crop_width):
    """A uint8 crop as its contact sheet cell shows it: reduced to :func:`cell_size` if larger.

    Workers reduce crops before sending them back, so a sheet of large crops costs little
    memory.
    """
    cell_h, cell_w = cell_size(crop_height, crop_width)
    if crop.shape[:2] == (cell_h, cell_w):
        return crop
    return np.asarray(Image.fromarray(crop).resize((cell_w, cell_h), Image.Resampling.BOX))


def sheet_size(count, crop_height, crop_width):
    """``(height, width)`` of the sheet for ``count`` crops: ``ceil(sqrt(count))`` columns, cells
    of :func:`cell_size`, ``PAD`` pixels around and between them."""
    count = min(count, MAX_CROPS)
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    cell_h, cell_w = cell_size(crop_height, crop_width)
    return rows * (cell_h + PAD) + PAD, columns * (cell_w + PAD) + PAD


def contact_sheet(crops, crop_height, crop_width):
    """An RGB image of the first ``MAX_CROPS`` uint8 crops (``[h, w, 3]`` arrays, full size or
    already reduced by :func:`fit_cell`), row by row.

    Crops larger than ``MAX_CELL`` pixels are shown reduced. An empty list gives a sheet with
    one blank cell.
    """
    crops = list(crops)[:MAX_CROPS]
    height, width = sheet_size(len(crops), crop_height, crop_width)
    cell_h, cell_w = cell_size(crop_height, crop_width)
    columns = (width - PAD) // (cell_w + PAD)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    for number, crop in enumerate(crops):
        crop = fit_cell(crop, crop_height, crop_width)
        top = PAD + (number // columns) * (cell_h + PAD)
        left = PAD + (number % columns) * (cell_w + PAD)
        sheet[top:top + cell_h, left:left + cell_w] = crop
    return Image.fromarray(sheet)
