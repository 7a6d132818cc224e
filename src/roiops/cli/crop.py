"""The ``roiops crop`` job: annotations in, one crop per box out (files or one .npz).

The work is split by image: a worker decodes an image, crops all its boxes with one
:func:`roiops.crop_and_resize` call and encodes the crops. Images go to a process pool (each
worker with one Numba thread) and their results come back in annotation order, so messages,
the .npz and the contact sheet are the same for any number of workers. Bad items (an image that
cannot be read, a malformed annotation, a box outside its image) print one line each and the
run goes on; :class:`UsageError` (an unreadable annotation file, an output that would replace an
input) stops it before any work.
"""
import concurrent.futures
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

import roiops

from . import annotations as annotation_files
from . import imageio, sheet
from .boxes import BoxError, sample_box
from .errors import UsageError
from .progress import Progress

NPZ_NAME = "crops.npz"
STAGES = ("decode", "crop", "encode")
IMAGES_PER_WORKER = 16


@dataclass(frozen=True)
class CropOptions:
    """How to cut the crops (the ``roiops crop`` flags)."""

    size: tuple = (64, 64)
    method: str = "bilinear"
    extrapolation_value: float = 0.0
    margin: float = 0.0
    square: bool = False
    normalized: bool = False
    image_format: str = "png"
    overwrite: bool = False

    def settings(self):
        """The options that decide the pixels of a crop (kept in the .npz to check a resume)."""
        return {"size": np.array(self.size, np.int64), "method": np.array(self.method),
                "extrapolation_value": np.array(self.extrapolation_value, np.float64),
                "margin": np.array(self.margin, np.float64), "square": np.array(self.square),
                "normalized": np.array(self.normalized)}


@dataclass
class Item:
    """One annotation of this run: its position in annotation order and its output file."""

    number: int
    annotation: annotation_files.Annotation
    output: Path = None


@dataclass
class ImageResult:
    """What a worker did with one image."""

    written: list = field(default_factory=list)  # item numbers
    failed: int = 0
    problems: list = field(default_factory=list)
    timings: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    crops: dict = field(default_factory=dict)     # number -> float32 crop (npz only)
    boxes: dict = field(default_factory=dict)     # number -> sampled [y1, x1, y2, x2] (npz)
    thumbs: dict = field(default_factory=dict)    # number -> uint8 crop (contact sheet)


@dataclass
class Summary:
    """Counts and times of a run; ``failed`` counts crops, ``errors`` other failures."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    errors: int = 0
    seconds: float = 0.0
    workers: int = 1
    timings: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    outputs: list = field(default_factory=list)

    @property
    def exit_status(self):
        return 1 if self.failed or self.errors else 0

    def lines(self):
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        split = ", ".join(f"{stage} {self.timings[stage]:.2f} s" for stage in STAGES)
        over = f", summed over {self.workers} workers" if self.workers > 1 else ""
        lines = [f"{self.written} written, {self.skipped} skipped, {self.failed} failed "
                 f"in {self.seconds:.2f} s ({rate:.0f} crops/s)",
                 f"time: {split}{over}"]
        other = self.seconds - sum(self.timings.values())
        if self.workers == 1 and other >= 0.5:
            # Otherwise a first run's kernel compilation looks like a slow crop rate.
            lines.append(f"other: {other:.2f} s (reading annotations, planning, and on a "
                         f"first run compiling the kernels, which are cached for later runs)")
        lines += [f"{what}: {where}" for what, where in self.outputs]
        return lines


def output_name(annotation, extension):
    """``<image stem>_<id>_<label>.<ext>``, the label sanitized (left out when empty)."""
    parts = [Path(annotation.image).stem, str(annotation.id)]
    label = annotation_files.sanitize(annotation.label)
    if label:
        parts.append(label)
    return "_".join(parts) + "." + extension


def crop_image(task):
    """Decode one image, crop its boxes with one crop_and_resize call, write or keep the crops.

    ``task`` is ``(path, items, options, keep_crops, thumb_limit)``: with ``keep_crops`` (npz)
    the float32 crops come back instead of being written; uint8 copies of the crops whose
    item number is below ``thumb_limit`` come back for the contact sheet.
    """
    path, items, options, keep_crops, thumb_limit = task
    result = ImageResult()
    clock = time.perf_counter()
    try:
        pixels = imageio.read_rgb(path)
    except imageio.ImageError as error:
        count = len(items)
        result.problems.append(f"{path}: {error} ({count} box{'es' * (count != 1)} not cropped)")
        result.failed = count
        return result
    finally:
        result.timings["decode"] = time.perf_counter() - clock

    clock = time.perf_counter()
    height, width = pixels.shape[:2]
    good, boxes = [], []
    for item in items:
        try:
            boxes.append(sample_box(item.annotation.box, height, width,
                                    normalized=options.normalized, margin=options.margin,
                                    square=options.square))
            good.append(item)
        except BoxError as error:
            result.problems.append(f"{item.annotation.where}: {error} (image {path})")
            result.failed += 1
    crops = roiops.crop_and_resize(
        pixels[None], np.array(boxes, np.float32).reshape(-1, 4), np.zeros(len(good), np.int64),
        options.size, method=options.method, extrapolation_value=options.extrapolation_value)
    result.timings["crop"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if keep_crops:
        for item, box, crop in zip(good, boxes, crops):
            result.crops[item.number], result.boxes[item.number] = crop, box
            result.written.append(item.number)
            if item.number < thumb_limit:
                result.thumbs[item.number] = imageio.to_uint8(crop)
    else:
        for item, crop in zip(good, imageio.to_uint8(crops)):
            try:
                imageio.write_image(crop, item.output, options.image_format)
            except OSError as error:
                result.problems.append(f"{item.output}: cannot write: {error}")
                result.failed += 1
                continue
            result.written.append(item.number)
            if item.number < thumb_limit:
                result.thumbs[item.number] = crop
    result.timings["encode"] = time.perf_counter() - clock
    return result


def default_workers():
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def warm_up():
    """Load the compiled crop kernel for decoded images (read-only uint8; from Numba's cache,
    or compile it), so that this one-time cost is not counted as crop time."""
    image = np.zeros((1, 2, 2, 3), np.uint8)
    image.flags.writeable = False
    roiops.crop_and_resize(image, np.zeros((1, 4), np.float32), np.zeros(1, np.int64), (1, 1))


def _init_worker():
    numba.set_num_threads(1)
    warm_up()


def _map_images(tasks, workers):
    """``crop_image`` over ``tasks`` in order: in this process for one worker, else a pool.

    Every image is cropped with one Numba thread: a few boxes are far too little work to share
    (waking threads costs more, and much more on a busy machine); processes give the
    parallelism.
    """
    if not tasks:
        return
    if workers <= 1:
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            warm_up()
            yield from map(crop_image, tasks)
        finally:
            numba.set_num_threads(threads)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])
    chunksize = max(1, min(8, len(tasks) // (workers * 4)))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                initializer=_init_worker) as pool:
        yield from pool.map(crop_image, tasks, chunksize=chunksize)


class CropJob:
    """One ``roiops crop`` run; :meth:`run` does it and returns the :class:`Summary`."""

    def __init__(self, annotations, images, out, options, *, contact_sheet=None, workers=None,
                 stderr=None, progress=None):
        self.annotations_path = Path(annotations)
        self.images = Path(images)
        self.out = Path(out)
        self.options = options
        self.contact_sheet = Path(contact_sheet) if contact_sheet else None
        self.workers = workers
        self.stderr = sys.stderr if stderr is None else stderr
        self.progress_enabled = progress
        self.summary = Summary()
        self.thumbs = {}
        self._progress = None

    def run(self):
        start = time.perf_counter()
        annotations, problems = annotation_files.load(self.annotations_path)
        items = [Item(number, annotation) for number, annotation in enumerate(annotations)]
        protected = self._protected_paths(items)
        self._prepare_out(protected)
        for line in problems:
            self._error(line)
        self.summary.failed += len(problems)
        npz = self.options.image_format == "npz"
        previous = self._load_previous_npz() if npz else {}
        todo = self._plan(items, protected, previous)
        tasks = self._tasks(todo)
        self.summary.workers = self._worker_count(len(tasks))
        results = self._collect(tasks, sum(len(task[1]) for task in tasks))
        if npz:
            self._write_npz(items, results, previous)
        if self.contact_sheet:
            self._write_contact_sheet()
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    # -- planning ---------------------------------------------------------------------------

    def _worker_count(self, images):
        """``--workers`` (at most one per image); by default one per CPU, but at most one per
        ``IMAGES_PER_WORKER`` images, since starting a worker costs about as much as that."""
        if self.workers is not None:
            return max(1, min(self.workers, images))
        return max(1, min(default_workers(), images // IMAGES_PER_WORKER))

    def _protected_paths(self, items):
        """The input files (never written): the annotation file and every image it names."""
        paths = {self.annotations_path.resolve()}
        names = {item.annotation.image for item in items}
        paths.update((self.images / name).resolve() for name in names)
        return paths

    def _prepare_out(self, protected):
        if self.contact_sheet and self.contact_sheet.resolve() in protected:
            raise UsageError(f"--contact-sheet {self.contact_sheet} would overwrite an input file")
        if (self.out / NPZ_NAME).resolve() in protected and self.options.image_format == "npz":
            raise UsageError(f"{self.out / NPZ_NAME} would overwrite an input file")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create output folder {self.out}: {error}") from None

    def _plan(self, items, protected, previous):
        """The items to crop now; count and collect (for the sheet) those already done."""
        todo, names = [], set()
        for item in items:
            if self.options.image_format == "npz":
                key = (item.annotation.image, item.annotation.id)
                if key in previous:
                    self._skip(item, previous[key]["crop"])
                else:
                    todo.append(item)
                continue
            item.output = self.out / output_name(item.annotation, self.options.image_format)
            if item.output.name in names:
                self._fail(f"{item.annotation.where}: output name {item.output.name} is already "
                           "used by another annotation (ids must be unique per image)")
                continue
            names.add(item.output.name)
            if item.output.resolve() in protected:
                self._fail(f"{item.annotation.where}: output {item.output} would overwrite an "
                           "input file")
            elif not self.options.overwrite and imageio.is_written(item.output):
                self._skip(item, item.output)
            else:
                todo.append(item)
        return todo

    def _skip(self, item, crop):
        """A crop done by an earlier run: ``crop`` is its float array or its file."""
        self.summary.skipped += 1
        if not self.contact_sheet or item.number >= sheet.MAX_CROPS:
            return
        if isinstance(crop, Path):
            try:
                self.thumbs[item.number] = imageio.read_rgb(crop)
            except imageio.ImageError as error:
                self._error(f"{crop}: {error} (left out of the contact sheet)")
        else:
            self.thumbs[item.number] = imageio.to_uint8(crop)

    def _tasks(self, todo):
        """One task per image, in the order images first appear in the annotations."""
        by_image = {}
        for item in todo:
            by_image.setdefault(item.annotation.image, []).append(item)
        keep_crops = self.options.image_format == "npz"
        thumb_limit = sheet.MAX_CROPS if self.contact_sheet else 0
        return [(str(self.images / image), image_items, self.options, keep_crops, thumb_limit)
                for image, image_items in by_image.items()]

    # -- running ----------------------------------------------------------------------------

    def _collect(self, tasks, total):
        results = []
        self._progress = Progress(total, label="roiops crop ", stream=self.stderr,
                                  enabled=self.progress_enabled)
        try:
            for (_, items, *_), result in zip(tasks, _map_images(tasks, self.summary.workers)):
                for line in result.problems:
                    self._error(line)
                self.summary.failed += result.failed
                for stage in STAGES:
                    self.summary.timings[stage] += result.timings[stage]
                self.thumbs.update(result.thumbs)
                if self.options.image_format != "npz":
                    self.summary.written += len(result.written)
                    result.crops = None
                results.append(result)
                self._progress.update(len(items))
        finally:
            self._progress.close()
            self._progress = None
        if self.options.image_format != "npz":
            self.summary.outputs.append(("crops", str(self.out)))
        return results

    # -- npz --------------------------------------------------------------------------------

    def _load_previous_npz(self):
        """Crops of an earlier run's crops.npz by (image, id), if resuming; {} otherwise."""
        path = self.out / NPZ_NAME
        if self.options.overwrite or not path.exists():
            return {}
        try:
            with np.load(path) as data:
                stored = {key: data[key] for key in data.files}
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read the existing {path} to resume ({error}); pass "
                             "--overwrite to replace it") from None
        for key, value in self.options.settings().items():
            if key not in stored or not np.array_equal(stored[key], value):
                raise UsageError(f"{path} was made with other settings ({key}); pass "
                                 "--overwrite to replace it")
        return {(str(image), int(ident)): {"crop": crop, "box": box, "sampled_box": sampled,
                                           "label": str(label)}
                for image, ident, crop, box, sampled, label in zip(
                    stored["image"], stored["id"], stored["crops"], stored["box"],
                    stored["sampled_box"], stored["label"])}

    def _write_npz(self, items, results, previous):
        """crops.npz with every available crop of this annotation file, in annotation order."""
        clock = time.perf_counter()
        crops, boxes = {}, {}
        for result in results:
            crops.update(result.crops)
            boxes.update(result.boxes)
        rows = []
        for item in items:
            annotation = item.annotation
            old = previous.get((annotation.image, annotation.id))
            if item.number in crops:
                rows.append((item, crops[item.number], boxes[item.number]))
            elif old is not None:
                rows.append((item, old["crop"], old["sampled_box"]))
        path = self.out / NPZ_NAME
        self.summary.outputs.append(("crops", str(path)))
        if not crops and len(rows) == len(previous):
            return  # a resumed run with nothing new: crops.npz is already complete
        height, width = self.options.size
        arrays = {
            "crops": np.array([row[1] for row in rows], np.float32).reshape(-1, height, width, 3),
            "image": np.array([row[0].annotation.image for row in rows], dtype=str),
            "id": np.array([row[0].annotation.id for row in rows], np.int64),
            "label": np.array([row[0].annotation.label for row in rows], dtype=str),
            "box": np.array([row[0].annotation.box for row in rows], np.float64).reshape(-1, 4),
            "sampled_box": np.array([row[2] for row in rows], np.float32).reshape(-1, 4),
            **self.options.settings(),
        }
        temporary = self.out / f"{NPZ_NAME}.part{os.getpid()}.npz"
        try:
            np.savez(temporary, **arrays)
            os.replace(temporary, path)
            self.summary.written += len(crops)
        except OSError as error:
            self._error(f"{path}: cannot write: {error}")
            self.summary.failed += len(crops)
        finally:
            temporary.unlink(missing_ok=True)
        self.summary.timings["encode"] += time.perf_counter() - clock

    # -- contact sheet and messages ---------------------------------------------------------

    def _write_contact_sheet(self):
        clock = time.perf_counter()
        crops = [self.thumbs[number] for number in sorted(self.thumbs)]
        try:
            self.contact_sheet.parent.mkdir(parents=True, exist_ok=True)
            sheet.contact_sheet(crops, *self.options.size).save(self.contact_sheet)
            self.summary.outputs.append(("contact sheet", str(self.contact_sheet)))
        except OSError as error:
            self._error(f"{self.contact_sheet}: cannot write the contact sheet: {error}")
            self.summary.errors += 1
        self.summary.timings["encode"] += time.perf_counter() - clock

    def _fail(self, line):
        self._error(line)
        self.summary.failed += 1

    def _error(self, line):
        text = f"error: {line}"
        if self._progress is not None:
            self._progress.write(text)
        else:
            print(text, file=self.stderr, flush=True)
