"""``roiops crop`` on a realistic folder vs a per-box Pillow ``crop().resize()`` loop, one run.

    python benchmarks/bench_cli.py [--images 200] [--boxes 10] [--size 64] [--formats png jpg]

Generates ``--images`` 640x480 JPEGs (smooth shapes, texture noise; quality 90) with
``--boxes`` random boxes each (20 to 240 pixels a side) into a temporary folder, then crops
every box to ``--size`` and writes it, with:

* ``roiops crop`` (the real job, in this process: decode, one crop_and_resize call per image,
  encode), with 1 worker and with one worker per CPU;
* a per-box Pillow loop: ``Image.open().load()``, then ``image.crop(box).resize(size,
  BILINEAR)`` and ``save`` per box, single process (Pillow's resize is not crop_and_resize's
  semantics; it is the loop people write).

Both encode with the same settings (PNG compress level 1, JPEG quality 95). Prints a Markdown
table of crops/s and the time split (decode, crop, encode; summed over workers).
"""
import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from roiops.cli import imageio
from roiops.cli.crop import CropJob, CropOptions, default_workers

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


def pillow_loop(annotations_path, images, out, size, image_format):
    """The per-box Pillow loop; returns (crops written, seconds, {stage: seconds})."""
    coco = json.loads(annotations_path.read_text())
    by_image = {}
    for item in coco["annotations"]:
        by_image.setdefault(item["image_id"], []).append(item)
    timings = dict.fromkeys(("decode", "crop", "encode"), 0.0)
    written = 0
    start = time.perf_counter()
    for image_info in coco["images"]:
        clock = time.perf_counter()
        image = Image.open(images / image_info["file_name"])
        image.load()
        image = image.convert("RGB")
        timings["decode"] += time.perf_counter() - clock
        stem = Path(image_info["file_name"]).stem
        for item in by_image.get(image_info["id"], []):
            x, y, w, h = item["bbox"]
            clock = time.perf_counter()
            crop = image.crop((x, y, x + w, y + h)).resize((size, size),
                                                           Image.Resampling.BILINEAR)
            timings["crop"] += time.perf_counter() - clock
            clock = time.perf_counter()
            name = out / f"{stem}_{item['id']}_object.{image_format}"
            if image_format == "png":
                crop.save(name, "PNG", compress_level=imageio.PNG_COMPRESS_LEVEL)
            else:
                crop.save(name, "JPEG", quality=imageio.JPEG_QUALITY)
            timings["encode"] += time.perf_counter() - clock
            written += 1
    return written, time.perf_counter() - start, timings


def roiops_crop(annotations_path, images, out, size, image_format, workers):
    options = CropOptions(size=(size, size), image_format=image_format)
    summary = CropJob(annotations_path, images, out, options, workers=workers,
                      progress=False).run()
    assert summary.failed == 0
    return summary.written, summary.seconds, summary.timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--formats", nargs="+", default=["png", "jpg"], choices=["png", "jpg"])
    args = parser.parse_args()
    cpus = default_workers()
    with tempfile.TemporaryDirectory(prefix="roiops-bench-cli-") as temporary:
        folder = Path(temporary)
        images = folder / "images"
        images.mkdir()
        annotations = make_dataset(images, args.images, args.boxes)
        megabytes = sum(p.stat().st_size for p in images.glob("*.jpg")) / 1e6
        print(f"## roiops crop vs a per-box Pillow loop\n\n{args.images} JPEGs of {WIDTH}x"
              f"{HEIGHT} ({megabytes:.1f} MB), {args.boxes} boxes each, crops {args.size}x"
              f"{args.size}; {cpus} CPUs, Pillow {Image.__version__}\n")
        print("| contender | format | workers | crops/s | wall s | decode s | crop s | "
              "encode s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        contenders = [("Pillow crop().resize() loop", 1, pillow_loop),
                      ("roiops crop", 1, None), ("roiops crop", cpus, None)]
        for image_format in args.formats:
            for name, workers, loop in contenders:
                out = folder / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if loop is None:
                    written, seconds, timings = roiops_crop(annotations, images, out, args.size,
                                                            image_format, workers)
                else:
                    written, seconds, timings = loop(annotations, images, out, args.size,
                                                     image_format)
                print(f"| {name} | {image_format} | {workers} | {written / seconds:.0f} | "
                      f"{seconds:.2f} | {timings['decode']:.2f} | {timings['crop']:.2f} | "
                      f"{timings['encode']:.2f} |", flush=True)
        print("\ncrop and resize semantics differ: roiops is crop_and_resize (TensorFlow), "
              "Pillow's BILINEAR resize filters over the reduction. Times are wall-clock for "
              "the whole run (roiops: including its worker start-up); the split is summed "
              "over workers.")


if __name__ == "__main__":
    main()
