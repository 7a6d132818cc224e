"""Crop sizes that cannot fit in memory are a usage error before any work (issue 13 item 12)."""
import subprocess
import sys

import pytest

from roiops.cli import annotations, crop, memory, worker
from roiops.cli.crop import CropJob, CropOptions
from roiops.cli.main import main

MiB = 2 ** 20


def run(dataset, *flags, annotations="coco.json"):
    return main(["crop", str(dataset / annotations), "--images", str(dataset / "images"),
                 "--out", str(dataset / "out"), *flags])


def test_available_memory_is_known_here_and_positive():
    available = memory.available()
    assert isinstance(available, int) and available > 0


def test_describe():
    assert memory.describe(512) == "512 bytes"
    assert memory.describe(3 * 2 ** 30) == "3,221,225,472 bytes (3.0 GiB)"


def test_a_size_that_cannot_fit_is_a_usage_error_naming_size_and_bytes(dataset, capsys):
    # 10^12 pixels: far beyond any machine (was an allocation traceback, or an OOM kill).
    assert run(dataset, "--size", "1000000", "--workers", "1") == 2
    err = capsys.readouterr().err
    assert err.startswith("roiops crop: error: --size 1000000x1000000 needs ") and "bytes" in err
    assert len(err.splitlines()) == 1
    assert not (dataset / "out").exists()


def test_the_needed_bytes_follow_the_model(dataset, capsys, monkeypatch):
    size = (300, 200)
    need = crop.worker_bytes(size, "png", 2)
    monkeypatch.setattr(memory, "available", lambda: need - 1)
    assert run(dataset, "--size", "300x200", "--workers", "1") == 2
    err = capsys.readouterr().err
    assert f"needs {memory.describe(need)}" in err
    assert f"the {memory.describe(need - 1)} of memory available" in err
    monkeypatch.setattr(memory, "available", lambda: need)
    assert run(dataset, "--size", "300x200", "--workers", "1") == 0


def test_workers_that_do_not_fit(dataset, capsys, monkeypatch):
    """An explicit --workers is refused; the default count is lowered to what fits."""
    need = crop.worker_bytes((64, 64), "png", 2)
    monkeypatch.setattr(memory, "available", lambda: 2 * need)
    assert run(dataset, "--workers", "3") == 2  # three images, so three workers
    err = capsys.readouterr().err
    assert err.startswith("roiops crop: error: --workers 3 with --size 64x64 need ")
    assert "use --workers 2 or fewer" in err
    assert not (dataset / "out").exists()
    monkeypatch.setattr(crop, "default_workers", lambda: 8)
    monkeypatch.setattr(crop, "IMAGES_PER_WORKER", 1)
    job = CropJob(dataset / "coco.json", dataset / "images", dataset / "out", CropOptions())
    loaded, _ = annotations.load(dataset / "coco.json")
    job._check_memory([worker.Item(number, item) for number, item in enumerate(loaded)])
    assert job._worker_count(3) == 2


def test_npz_counts_every_crop(dataset, capsys, monkeypatch):
    need = crop.npz_bytes((64, 64), 5) + crop.worker_bytes((64, 64), "npz", 2)
    monkeypatch.setattr(memory, "available", lambda: need - 1)
    assert run(dataset, "--format", "npz", "--workers", "1") == 2
    assert "a shard of crops" in capsys.readouterr().err
    monkeypatch.setattr(memory, "available", lambda: need)
    assert run(dataset, "--format", "npz", "--workers", "1") == 0


def test_boxes_per_call_bounds_a_call_to_the_budget():
    assert worker.boxes_per_call((64, 64)) == worker.CALL_BYTES // (64 * 64 * 12)
    assert worker.boxes_per_call((5000, 5000)) == 1


MEASURE = """
import resource, sys
from pathlib import Path
from roiops.cli import annotations, imageio, worker
size, count, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
source = Path(sys.argv[4])
worker.warm_up()
imageio.read_rgb(source)
items = [worker.Item(k, annotations.Annotation(source.name, k, "", (1, 1, 30, 20), "test"),
                     out / f"{k}.png") for k in range(count)]
task = worker.ImageTask(str(source), source, items, worker.CropOptions(size=(size, size)),
                        False, 400)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert not worker.crop_image(task).problems
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("size, count", [(1500, 3), (96, 800)])
def test_a_worker_stays_within_the_model(dataset, size, count):
    """The peak memory of cropping one image (in a fresh process) stays under the model."""
    (dataset / "out").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(size), str(count), str(dataset / "out"),
         str(dataset / "images" / "street.png")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    grown = int(result.stdout.split()[-1])
    assert grown <= crop.worker_bytes((size, size), "png", count) * 1.1 + 8 * MiB


NPZ_RUN = """
import resource, sys
from pathlib import Path
import numpy as np
from PIL import Image
from roiops.cli import shards, worker
from roiops.cli.crop import CropJob, CropOptions
folder = Path(sys.argv[1])
(folder / "images").mkdir()
Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "images" / "a.png")
(folder / "boxes.csv").write_text("image,x1,y1,x2,y2\\n" + "a.png,1,1,39,39\\n" * 1000)
shards.SHARD_BYTES = 2 * 2 ** 20
worker.warm_up()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2):  # the crops, then a resume that does nothing
    summary = CropJob(folder / "boxes.csv", folder / "images", folder / "out",
                      CropOptions(size=(48, 48), image_format="npz", dtype="float32"),
                      workers=1, progress=False).run()
    assert summary.failed == 0, summary
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_npz_memory_does_not_grow_with_the_crops(tmp_path):
    """Issue 17 item 3: all crops were held (three float32 copies) to write one crops.npz,
    and loaded again by a resume. 1000 float32 crops of 48x48 are 26 MiB; in shards of 2 MiB
    the run holds a few shards' worth."""
    result = subprocess.run([sys.executable, "-c", NPZ_RUN, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("crops-*.npz"))) == 14  # 75 crops each
    grown = int(result.stdout.split()[-1])
    assert grown < 16 * MiB
