"""``roiops demo``, ``roiops bench``, help texts, the console script, and the CLI's helpers."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roiops.cli import boxes, sheet
from roiops.cli.main import main
from roiops.cli.progress import Progress


def test_console_script_runs_the_demo(tmp_path):
    """The installed ``roiops`` script, in a fresh process, with stdout a pipe."""
    script = Path(sys.executable).with_name("roiops")
    if not script.exists():
        pytest.skip("the roiops console script is not installed in this environment")
    result = subprocess.run([str(script), "demo", "--out", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "12 written, 0 skipped, 0 failed" in result.stdout
    assert f"contact sheet: {tmp_path / 'demo' / 'contact_sheet.png'}" in result.stdout
    assert "\r" not in result.stderr  # no progress bar into a pipe
    crops = sorted((tmp_path / "demo" / "crops").glob("*.png"))
    assert len(crops) == 12 and crops[0].name == "sample_10_car.png"
    with Image.open(crops[0]) as crop:
        assert crop.size == (96, 96)


def test_demo_through_main(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "contact_sheet.png") as image:
        # 12 crops of 96x96 on a 4x3 grid, a caption strip under each
        assert image.size == (4 * 98 + 2, 3 * (98 + sheet.CAPTION_HEIGHT) + 2)
    assert "crops: " + str(tmp_path / "crops") in capsys.readouterr().out


@pytest.mark.parametrize("command, words", [
    ([], ["roiops demo", "roiops crop", "roiops bench", "exit status"]),
    (["crop"], ["COCO", "image,x1,y1,x2,y2", "pixel-edge", "(x2-1)/(W-1)", "--overwrite",
                "rounded", "examples:", "exit status", "YOLO", "Pascal VOC", "--columns",
                "EXIF", "--antialias", "--layout", "manifest.csv", "crops-00000.npz",
                "--dry-run", "--limit", "--quiet", "--category", "--min-size"]),
    (["demo"], ["contact sheet", "example:"]),
    (["bench"], ["--chart", "examples:"]),
])
def test_help(capsys, command, words):
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert all(word in text for word in words), text


def test_bench_prints_a_table(capsys):
    assert main(["bench", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| workload | contender | median ms | peer / roiops |" in out
    assert out.count("| roiops") >= 3


def test_bench_chart_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "--chart", str(tmp_path / "c.png")]) == 2
    assert "--chart needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_bench_chart(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from roiops.cli import bench

    monkeypatch.setattr(bench, "workloads", lambda peers, rng: [
        ("tiny", {"roiops": lambda: None, "peer": lambda: None})])
    assert bench.run(chart=str(tmp_path / "chart.png"), repeats=1, stdout=io.StringIO()) == 0
    with Image.open(tmp_path / "chart.png") as image:
        assert image.format == "PNG"


def test_pixel_box_convention():
    # A COCO [x, y, w, h] = [2, 3, 10, 8] box in a 30x40 image samples pixels 2..11, 3..10.
    box = boxes.sample_box((2, 3, 12, 11), 30, 40)
    np.testing.assert_allclose(box * [29, 39, 29, 39], [3, 2, 10, 11], rtol=1e-6)
    # The whole image is [0, 1] normalized.
    np.testing.assert_array_equal(boxes.sample_box((0, 0, 40, 30), 30, 40), [0, 0, 1, 1])


def test_margin_and_square():
    grown = boxes.sample_box((10, 10, 20, 30), 101, 101, margin=0.1)  # w 10, h 20
    np.testing.assert_allclose(grown * 100, [8, 9, 31, 20], rtol=1e-6)
    square = boxes.sample_box((10, 10, 20, 30), 101, 101, square=True)
    np.testing.assert_allclose(square * 100, [10, 5, 29, 24], rtol=1e-6)
    normalized = boxes.sample_box((0.2, 0.1, 0.4, 0.5), 11, 11, units="normalized", square=True)
    np.testing.assert_allclose(normalized, [0.1, 0.1, 0.5, 0.5], atol=1e-7)


@pytest.mark.parametrize("box, normalized, message", [
    ((5, 5, 5, 9), False, "empty box"),
    ((8, 2, 4, 6), False, "empty box"),
    ((40, 0, 50, 5), False, "outside"),
    ((-9, -9, 0, 0), False, "outside"),
    ((1.1, 0, 1.5, 1), True, "outside"),
])
def test_bad_boxes(box, normalized, message):
    with pytest.raises(boxes.BoxError, match=message):
        boxes.sample_box(box, 30, 40, units="normalized" if normalized else "pixels")


def test_sheet_size_and_large_crops_are_reduced():
    assert sheet.sheet_size(10, 20, 30) == (3 * 22 + 2, 4 * 32 + 2)
    assert sheet.cell_size(512, 256) == (128, 64)
    crops = [np.full((512, 256, 3), k, np.uint8) for k in range(3)]
    image = sheet.contact_sheet(crops, 512, 256)
    assert image.size == (2 * 66 + 2, 2 * (130 + sheet.CAPTION_HEIGHT) + 2)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only():
    stream = Terminal()
    bar = Progress(4, stream)
    bar.update(2)
    bar.write("error: something")
    bar.update(2)
    bar.close()
    text = stream.getvalue()
    assert "roiops crop:" in text and "0/4" in text and "error: something\n" in text
    assert text.endswith("\r")  # closed: the bar's line is cleared
    quiet = io.StringIO()  # not a terminal: nothing drawn, lines printed as they are
    bar = Progress(4, quiet)
    bar.update(4)
    bar.write("error: x")
    bar.close()
    assert quiet.getvalue() == "error: x\n"


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "roiops.cli", "--version"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONWARNINGS": "error"})
    assert result.returncode == 0 and result.stdout.startswith("roiops ")
