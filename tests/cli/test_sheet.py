"""Contact sheets: captions, samples outside the image hatched, the first crops in --out even
when boxes failed (issue 17 item 5)."""
import numpy as np

from roiops.cli import boxes, sheet
from roiops.cli.main import main


def test_cells_are_hatched_where_they_sample_outside_the_image():
    crop = np.zeros((40, 40, 3), np.uint8)
    # A box over the right half of a 40-pixel-wide image and 20 pixels beyond it.
    sampled = boxes.sample_box((20, 0, 60, 40), 40, 40)
    outside = boxes.samples_outside(sampled, 40, 40, 40, 40)
    assert not outside[0].any() and outside[1].tolist() == [False] * 20 + [True] * 20
    cell = sheet.fit_cell(crop, 40, 40, outside=outside)
    hatched = (cell == sheet.HATCH_COLOUR).all(axis=-1)
    assert not hatched[:, :20].any() and hatched[:, 20:].mean() == 1 / sheet.HATCH_PERIOD
    assert not crop.any()  # the crop itself is left as it is
    inside = sheet.fit_cell(crop, 40, 40, outside=boxes.samples_outside(
        boxes.sample_box((0, 0, 40, 40), 40, 40), 40, 40, 40, 40))
    assert inside is crop


def test_captions_under_wide_cells_only():
    crops = [np.zeros((40, 40, 3), np.uint8)] * 2
    image = np.asarray(sheet.contact_sheet(crops, 40, 40, ["cat", "a very long label"]))
    assert image.shape == (sheet.sheet_size(2, 40, 40)[0], 2 * 42 + 2, 3)
    strip = image[42:42 + sheet.CAPTION_HEIGHT]
    assert (strip[:, 2:42] > sheet.BACKGROUND).any()   # text drawn
    assert (strip[:, 44:84] > sheet.BACKGROUND).any()
    narrow = sheet.contact_sheet([np.zeros((10, 10, 3), np.uint8)], 10, 10, ["cat"])
    assert narrow.size == (14, 14)  # no strip under 10-pixel cells


def run(dataset, annotations, out, *flags):
    return main(["crop", str(annotations), "--images", str(dataset / "images"), "--out",
                 str(out), "--size", "6", "--workers", "1", "--contact-sheet",
                 str(dataset / "sheet.png"), *flags])


def test_failed_boxes_leave_no_hole_in_the_sheet(dataset, monkeypatch, rgb):
    """The sheet shows the first MAX_CROPS crops there are, in annotation order: crops after
    a failed box are read back from the outputs (files, shards) to fill it."""
    monkeypatch.setattr(sheet, "MAX_CROPS", 4)
    annotations = dataset / "holes.csv"
    annotations.write_text("image,x1,y1,x2,y2\n" + "".join(
        f"street.png,{k},0,{k + 6},6\n" for k in range(4)) + "missing.png,0,0,6,6\n"
        + "gray.png,0,0,6,6\ngray.png,1,1,7,7\n")
    lines = annotations.read_text().splitlines()
    lines[2] = "street.png,90,0,96,6"  # row 2 lies outside its image
    annotations.write_text("\n".join(lines) + "\n")
    for image_format in ("png", "npz"):
        out = dataset / image_format
        assert run(dataset, annotations, out, "--format", image_format) == 1
        cells = rgb(dataset / "sheet.png")
        assert cells.shape == sheet.sheet_size(4, 6, 6) + (3,)
        # rows 1, 3, 4, then row 6 (gray.png) in the last cell
        gray = rgb(dataset / "images" / "gray.png")
        np.testing.assert_array_equal(cells[10:16, 10:16], gray[0:6, 0:6])
