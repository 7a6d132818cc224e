"""``roiops crop`` against the loops people write and against decoding the images alone.

    python benchmarks/bench_cli.py [--images 200] [--boxes 10] [--size 64] [--formats png jpg]
                                   [--workers 1 2] [--rounds 5] [--dir DIR] [--ray]

Generates ``--images`` 640x480 JPEGs (smooth shapes, texture noise; quality 90) with
``--boxes`` random boxes each (20 to 240 pixels a side) into a temporary folder in ``--dir``
(the file system matters: every contender creates one file per crop), then, for each format
and each number of workers, times on the same data:

* **decode alone**: every image decoded to an RGB array, nothing else: as roiops decodes
  (Pillow, :func:`roiops.cli.imageio.decode`) and with ``cv2.imread`` (the floor of any job
  that reads these images);
* **OpenCV loop**: ``cv2.imread``, then per box ``cv2.resize(image[y1:y2, x1:x2], size)``
  and ``cv2.imwrite`` with OpenCV's defaults (PNG) or quality 95 (JPEG): the loop a user
  writes (and ultralytics' ``save_one_box``);
* **Pillow loop**: ``Image.open().load()``, per box ``crop(box).resize(size, BILINEAR)`` and
  ``save`` (PNG compress level 1, JPEG quality 95);
* **roiops crop** with its default settings, in this process (``CropJob``), with the local
  process pool, and with ``--ray`` on a local Ray instance (started before the timings; its
  worker processes are warm after the first round).

The loops run in N forked processes for N workers (the images split in N parts); OpenCV with
one thread per process. Contenders take turns in every round (the order rotates); the table
gives the median of ``--rounds`` rounds, crops/s per worker against the OpenCV loop, and the
time against decoding alone. The load average before and after is printed: the machine may be
shared. Semantics differ: roiops is crop_and_resize (TensorFlow); OpenCV's and Pillow's
resizes are not.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from roiops.cli import imageio
from roiops.cli.crop import CropJob, CropOptions

WIDTH, HEIGHT = 640, 480


def make_dataset(folder, images, boxes_per_image, seed=0):
    """JPEGs and a COCO file in ``folder``; returns the annotation file's path."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    for number in range(images):
        base = np.stack([(np.sin(xx / rng.uniform(40, 200) + rng.uniform(0, 6)) + 1) * 100
                         + rng.uniform(0, 50) for _ in range(3)], axis=-1)
        noise = rng.normal(0, 6, base.shape)
        image = Image.fromarray(np.clip(base + noise + yy[..., None] * 0.05, 0, 255).astype(
            np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            r = rng.uniform(10, 80)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r),
                                                                     fill=colour)
        name = f"img{number:04d}.jpg"
        image.save(folder / name, quality=90)
        coco["images"].append({"id": number, "file_name": name, "width": WIDTH,
                               "height": HEIGHT})
        for _ in range(boxes_per_image):
            w, h = rng.uniform(20, 240, 2)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": number,
                                        "bbox": [round(x, 1), round(y, 1), round(w, 1),
                                                 round(h, 1)], "category_id": 1})
    path = folder / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def work_list(annotations_path, images):
    """``[(image path, stem, [(id, x, y, w, h)])]`` from the COCO file."""
    coco = json.loads(annotations_path.read_text())
    boxes = {}
    for item in coco["annotations"]:
        boxes.setdefault(item["image_id"], []).append((item["id"], *item["bbox"]))
    return [(str(images / info["file_name"]), Path(info["file_name"]).stem,
             boxes.get(info["id"], [])) for info in coco["images"]]


def in_processes(function, work, out, size, image_format, workers):
    """``function(part, out, size, image_format)`` over ``work`` split in ``workers`` parts
    (forked processes, or this one); returns the crops it counted."""
    if workers == 1:
        return function(work, out, size, image_format)
    parts = [work[k::workers] for k in range(workers)]
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        return sum(pool.starmap(function, [(part, out, size, image_format) for part in parts]))
    finally:
        # close + join, not terminate: the forked processes inherit the SIGTERM handler Ray
        # installs in this process (--ray), which prints a stack trace
        pool.close()
        pool.join()


def pillow_decode(work, out, size, image_format):
    for path, _, _ in work:
        imageio.decode(path)
    return sum(len(boxes) for _, _, boxes in work)


def opencv_decode(work, out, size, image_format):
    import cv2
    cv2.setNumThreads(1)
    for path, _, _ in work:
        cv2.imread(path)
    return sum(len(boxes) for _, _, boxes in work)


def opencv_loop(work, out, size, image_format):
    import cv2
    cv2.setNumThreads(1)
    options = [cv2.IMWRITE_JPEG_QUALITY, imageio.JPEG_QUALITY] if image_format == "jpg" else []
    written = 0
    for path, stem, boxes in work:
        image = cv2.imread(path)
        for ident, x, y, w, h in boxes:
            crop = image[int(y):int(y + h), int(x):int(x + w)]
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
            written += cv2.imwrite(f"{out}/{stem}_{ident}_object.{image_format}", crop, options)
    return written


def pillow_loop(work, out, size, image_format):
    save = ({"format": "PNG", "compress_level": 1} if image_format == "png" else
            {"format": "JPEG", "quality": imageio.JPEG_QUALITY})
    written = 0
    for path, stem, boxes in work:
        with Image.open(path) as image:
            image = image.convert("RGB")
        for ident, x, y, w, h in boxes:
            crop = image.crop((x, y, x + w, y + h)).resize((size, size),
                                                         Image.Resampling.BILINEAR)
            crop.save(f"{out}/{stem}_{ident}_object.{image_format}", **save)
            written += 1
    return written


class Roiops:
    """``roiops crop`` in this process: the local pool, or the Ray engine."""

    def __init__(self, annotations, images, engine):
        self.annotations, self.images, self.engine = annotations, images, engine
        self.timings = []

    def __call__(self, work, out, size, image_format, workers):
        options = CropOptions(size=(size, size), image_format=image_format)
        summary = CropJob(self.annotations, self.images, out, options, workers=workers,
                          progress=False, engine=self.engine).run()
        assert summary.failed == 0 and summary.written == sum(len(b) for _, _, b in work)
        self.timings.append(summary.timings)
        return summary.written


def contenders(annotations, images, ray):
    """``[(name, run(work, out, size, format, workers) -> crops, Roiops or None)]``."""
    listed = [("decode alone (Pillow, as roiops)", pillow_decode),
              ("decode alone (cv2.imread)", opencv_decode),
              ("OpenCV loop", opencv_loop),
              ("Pillow loop", pillow_loop)]
    runs = [(name, lambda *a, f=f: in_processes(f, *a), None) for name, f in listed]
    local = Roiops(annotations, images, "local")
    runs.append(("roiops crop", local, local))
    if ray:
        on_ray = Roiops(annotations, images, "ray")
        runs.append(("roiops crop --engine ray", on_ray, on_ray))
    return runs


def start_ray(workers):
    """A local Ray instance with ``workers`` CPUs (before any timing); its start seconds."""
    import ray
    clock = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    return time.perf_counter() - clock


def measure(work, runs, folder, size, image_format, workers, rounds):
    """``{name: [seconds of each round]}``, contenders taking turns (the order rotates)."""
    seconds = {name: [] for name, _, _ in runs}
    for round_number in range(rounds):
        turn = runs[round_number % len(runs):] + runs[:round_number % len(runs)]
        for name, run, _ in turn:
            out = folder / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            clock = time.perf_counter()
            run(work, out, size, image_format, workers)
            seconds[name].append(time.perf_counter() - clock)
    shutil.rmtree(folder / "out", ignore_errors=True)
    return seconds


def report(seconds, runs, crops, image_format, workers):
    """Markdown rows: crops/s, per worker against the OpenCV loop, time against decoding
    alone (Pillow, as roiops decodes)."""
    median = {name: statistics.median(values) for name, values in seconds.items()}
    loop = crops / median["OpenCV loop"]
    decode = median["decode alone (Pillow, as roiops)"]
    for name, _, roiops in runs:
        rate = crops / median[name]
        split = ""
        if roiops is not None:
            timings = roiops.timings[-len(seconds[name]):]
            split = " / ".join(f"{statistics.median(t[stage] for t in timings):.2f}"
                               for stage in ("decode", "crop", "encode"))
        print(f"| {name} | {image_format} | {workers} | {rate:.0f} | {median[name]:.2f} | "
              f"{rate / loop:.2f}x | {median[name] / decode:.2f}x | {split} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--formats", nargs="+", default=["png", "jpg"], choices=["png", "jpg"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="where to make the temporary folder (default: the "
                        "system's temporary folder)")
    parser.add_argument("--ray", action="store_true", help="also roiops crop --engine ray")
    args = parser.parse_args()
    started = f"{os.getloadavg()[0]:.2f}"
    ray_start = start_ray(max(args.workers)) if args.ray else None
    with tempfile.TemporaryDirectory(prefix="roiops-bench-cli-", dir=args.dir) as temporary:
        folder = Path(temporary)
        images = folder / "images"
        images.mkdir()
        annotations = make_dataset(images, args.images, args.boxes)
        megabytes = sum(p.stat().st_size for p in images.glob("*.jpg")) / 1e6
        work = work_list(annotations, images)
        crops = args.images * args.boxes
        runs = contenders(annotations, images, args.ray)
        print(f"## roiops crop, the loops people write, and decoding alone\n\n{args.images} "
              f"JPEGs of {WIDTH}x{HEIGHT} ({megabytes:.1f} MB), {args.boxes} boxes each, crops "
              f"{args.size}x{args.size}, in {folder.parent}; {os.cpu_count()} CPUs, "
              f"Pillow {Image.__version__}; medians of {args.rounds} rounds\n")
        print("| contender | format | workers | crops/s | s | crops/s vs OpenCV loop | "
              "time vs decode alone | roiops decode / crop / encode s (summed) |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for image_format in args.formats:
            for workers in args.workers:
                seconds = measure(work, runs, folder, args.size, image_format, workers,
                                  args.rounds)
                report(seconds, runs, crops, image_format, workers)
    print(f"\nload average (1 min) {started} before, {os.getloadavg()[0]:.2f} after"
          + (f"; Ray started in {ray_start:.1f} s (not timed)" if ray_start else ""))


if __name__ == "__main__":
    main()
