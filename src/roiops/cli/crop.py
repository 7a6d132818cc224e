"""The ``roiops crop`` job: annotations in, one crop per box out (files or one .npz).

The work is split by image: a worker decodes an image, crops all its boxes with one
:func:`roiops.crop_and_resize` call (or one per group of ``CALL_BYTES`` of crops) and encodes
the crops. Images go to a process pool (each worker with one Numba thread) and their results
come back in annotation order, so messages, the .npz and the contact sheet are the same for any
number of workers. Bad items (an image that
cannot be read, a malformed annotation, a box outside its image) print one line each and the
run goes on; :class:`UsageError` (an unreadable annotation file, an output that would replace an
input, crops too large for the memory) stops it before any work.

Outputs are written atomically and never through a link (:mod:`.files`). Pool workers exit as
soon as the main process closes their lifeline pipe: when it stops them early (Ctrl-C, SIGTERM)
or when it dies, even by ``kill -9``.
"""
import concurrent.futures
import contextlib
import math
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from PIL import Image

import roiops

from . import annotations as annotation_files
from . import files, imageio, memory, sheet
from .boxes import BoxError, sample_box
from .errors import UsageError
from .progress import Progress

NPZ_NAME = "crops.npz"
STAGES = ("decode", "crop", "encode")
IMAGES_PER_WORKER = 16
# The float32 crops of one crop_and_resize call stay under this (the boxes of an image with
# many or large crops are cropped in groups), so a worker's memory does not grow with the
# number of boxes of an image. Boxes are cropped independently: grouping changes no bit.
CALL_BYTES = 64 * 2 ** 20
FLOAT_CROP_BYTES = 3 * 4  # per crop pixel: float32 RGB
# The longest crop side an encoder takes: JPEG's own limit (libjpeg), and for PNG (and the
# contact sheet, made with Pillow from the crops) a bound well inside Pillow's (about 89
# million pixels a row). npz has none.
MAX_SIDE = {"jpg": 65500, "png": 2 ** 24}


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
class ImageTask:
    """One image for a worker: where to report it, the file to read, its items to crop."""

    path: str                # the image as --images and the annotation name it, for messages
    source: Path             # the resolved file to read
    items: list
    options: CropOptions
    keep_crops: bool         # npz: return the float32 crops instead of writing files
    thumb_limit: int         # return contact sheet cells for item numbers below this


@dataclass
class ImageResult:
    """What a worker did with one image."""

    written: list = field(default_factory=list)  # item numbers
    failed: int = 0
    problems: list = field(default_factory=list)
    timings: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    crops: dict = field(default_factory=dict)     # number -> float32 crop (npz only)
    boxes: dict = field(default_factory=dict)     # number -> sampled [y1, x1, y2, x2] (npz)
    thumbs: dict = field(default_factory=dict)    # number -> contact sheet cell (uint8)


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


def boxes_per_call(size):
    """How many crops of ``size`` one crop_and_resize call makes (at least one)."""
    return max(1, CALL_BYTES // (size[0] * size[1] * FLOAT_CROP_BYTES))


def worker_bytes(size, image_format, boxes_per_image):
    """About the most memory a worker holds for crops of ``size`` at once (the decoded image,
    bounded by Pillow's decompression bomb limit, is not counted).

    PNG and JPEG: one call's float32 crops, rounded in place, and their uint8 copies, plus
    Pillow's copies of the crop being encoded (its bytes, then 4 bytes a pixel). npz: all
    float32 crops of the image with the most boxes and their pickled copy on the way back, plus
    a rounded copy of one crop. Both: the contact sheet cells that go back.
    """
    pixels = size[0] * size[1]
    cells = sheet.MAX_CROPS * math.prod(sheet.cell_size(*size)) * 3
    if image_format == "npz":
        per_pixel = 2 * boxes_per_image * FLOAT_CROP_BYTES + FLOAT_CROP_BYTES + 3
    else:
        per_pixel = boxes_per_call(size) * (FLOAT_CROP_BYTES + 3) + 3 + 4
    return per_pixel * pixels + cells


def npz_bytes(size, count):
    """The memory the main process needs for ``crops.npz`` with ``count`` crops: the crops
    received from the workers, those of the crops.npz being resumed, and the stacked array
    written (three float32 copies of every crop)."""
    return 3 * count * size[0] * size[1] * FLOAT_CROP_BYTES


def crop_image(task):
    """Decode one image, crop its boxes with crop_and_resize, write or keep the crops.

    With ``task.keep_crops`` (npz) the float32 crops come back instead of being written;
    contact sheet cells of the items numbered below ``task.thumb_limit`` come back too.
    """
    result = ImageResult()
    clock = time.perf_counter()
    try:
        pixels = imageio.read_rgb(task.source)
    except imageio.ImageError as error:
        result.problems.append(f"{task.path}: {error} ({not_cropped(len(task.items))})")
        result.failed = len(task.items)
        return result
    finally:
        result.timings["decode"] = time.perf_counter() - clock

    clock = time.perf_counter()
    good, boxes = _sample_boxes(task, pixels.shape[:2], result)
    result.timings["crop"] += time.perf_counter() - clock
    step = boxes_per_call(task.options.size)
    for start in range(0, len(good), step):
        _crop_group(task, pixels, good[start:start + step], boxes[start:start + step], result)
    return result


def _sample_boxes(task, shape, result):
    """The items whose boxes can be cropped and their crop_and_resize boxes ([n, 4] float32);
    a problem line for each of the others."""
    good, boxes = [], []
    for item in task.items:
        try:
            boxes.append(sample_box(item.annotation.box, *shape,
                                    normalized=task.options.normalized,
                                    margin=task.options.margin, square=task.options.square))
            good.append(item)
        except BoxError as error:
            result.problems.append(f"{item.annotation.where}: {error} (image {task.path})")
            result.failed += 1
    return good, np.array(boxes, np.float32).reshape(-1, 4)


def _crop_group(task, pixels, items, boxes, result):
    """Crop ``boxes`` with one crop_and_resize call; keep or write the crops. (A function, so
    that a group's crops are freed before the next group's are made.)"""
    clock = time.perf_counter()
    crops = roiops.crop_and_resize(
        pixels[None], boxes, np.zeros(len(items), np.int64), task.options.size,
        method=task.options.method, extrapolation_value=task.options.extrapolation_value)
    result.timings["crop"] += time.perf_counter() - clock
    clock = time.perf_counter()
    if task.keep_crops:
        _keep(task, items, boxes, crops, result)
    else:
        _write(task, items, imageio.to_uint8(crops, in_place=True), result)
    result.timings["encode"] += time.perf_counter() - clock


def _keep(task, items, boxes, crops, result):
    for item, box, crop in zip(items, boxes, crops):
        result.crops[item.number], result.boxes[item.number] = crop, box
        result.written.append(item.number)
        if item.number < task.thumb_limit:
            result.thumbs[item.number] = sheet.fit_cell(imageio.to_uint8(crop),
                                                        *task.options.size)


def _write(task, items, crops, result):
    for item, crop in zip(items, crops):
        try:
            imageio.write_image(crop, item.output, task.options.image_format)
        except OSError as error:
            result.problems.append(f"{item.output}: cannot write: {error}")
            result.failed += 1
            continue
        result.written.append(item.number)
        if item.number < task.thumb_limit:
            result.thumbs[item.number] = sheet.fit_cell(crop, *task.options.size)


def not_cropped(count):
    return f"{count} box{'es' * (count != 1)} not cropped"


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


def _init_worker(lifeline):
    # Ctrl-C, and often SIGTERM, go to the whole process group: the main process handles them
    # and stops the workers through the lifeline, after the files being written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(lifeline,), daemon=True,
                     name="roiops-lifeline").start()
    numba.set_num_threads(1)
    warm_up()


def _exit_with_parent(lifeline):
    """Exit this worker at once when the main process closes the other end of ``lifeline``
    (it stops the workers) or dies (the system closes it, even after ``kill -9``), once the
    file being written, if any, is in place."""
    try:
        while True:
            lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    files.WRITING.acquire()
    # What a worker process runs when it ends normally: its finalizers unregister the
    # semaphores it made (Numba makes one), else the resource tracker reports them as leaked.
    multiprocessing.util._exit_function()
    os._exit(1)


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
    yield from _map_in_pool(tasks, workers)


def _map_in_pool(tasks, workers):
    """``crop_image`` over ``tasks`` in ``workers`` processes, results in order.

    Only this process holds the sending end of the workers' lifeline (a pipe created here is
    not inherited, and the fork server and the resource tracker are started with only the file
    descriptors they need): closing it, or this process dying, ends every worker. When the run
    stops early (an interruption, an error) the lifeline is closed first, so that the workers
    do not finish the queued images.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])
    lifeline, keep_alive = context.Pipe(duplex=False)
    chunksize = max(1, min(8, len(tasks) // (workers * 4)))
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                  initializer=_init_worker,
                                                  initargs=(lifeline,))
    try:
        yield from pool.map(crop_image, tasks, chunksize=chunksize)
    except BaseException:
        keep_alive.close()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        keep_alive.close()
        lifeline.close()


class ImagePathError(Exception):
    """An image name that is not read (the message says why)."""


def _resolve(path, flag):
    """``path`` resolved (links followed); a usage error naming ``flag`` if it cannot be."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a link loop (Python < 3.13)
        raise UsageError(f"{flag} {path}: cannot resolve the path: {error}") from None


def _as_written(path):
    """The file that writing ``path`` replaces: its folder resolved, not a link at ``path``
    itself (it is replaced, not followed)."""
    return path.parent.resolve() / path.name


class CropJob:
    """One ``roiops crop`` run; :meth:`run` does it and returns the :class:`Summary`."""

    def __init__(self, annotations, images, out, options, *, contact_sheet=None, workers=None,
                 allow_outside_images=False, stderr=None, progress=None):
        self.annotations_path = Path(annotations)
        self.images = Path(images)
        self.out = Path(out)
        self.options = options
        self.contact_sheet = Path(contact_sheet) if contact_sheet else None
        self.workers = workers
        self.allow_outside_images = allow_outside_images
        self.stderr = sys.stderr if stderr is None else stderr
        self.progress_enabled = progress
        self.summary = Summary()
        self.thumbs = {}
        self._progress = None
        self._images_root = None     # --images, resolved
        self._memory_workers = None  # the most workers the memory holds (default --workers)

    def run(self):
        start = time.perf_counter()
        annotations, problems = annotation_files.load(self.annotations_path)
        items = [Item(number, annotation) for number, annotation in enumerate(annotations)]
        self._check_folders()
        self._check_size()
        self._check_memory(items)
        protected = self._protected_paths(items)
        self._prepare_out(protected, items)
        for line in problems:
            self._error(line)
        self.summary.failed += len(problems)
        sources, items = self._image_sources(items)
        npz = self.options.image_format == "npz"
        previous = self._load_previous_npz() if npz else {}
        todo = self._plan(items, protected, previous)
        tasks = self._tasks(todo, sources)
        self.summary.workers = self._worker_count(len(tasks))
        results = self._collect(tasks, sum(len(task.items) for task in tasks))
        if npz:
            self._write_npz(items, results, previous)
        if self.contact_sheet:
            self._write_contact_sheet()
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    # -- checks before any work --------------------------------------------------------------

    def _check_folders(self):
        """--images must be a folder, and nothing is written in it: --out may not be it or a
        folder inside it (a folder containing it is fine), nor may --contact-sheet be in it."""
        if not self.images.is_dir():
            problem = "is not a folder" if self.images.exists() else "no such folder"
            raise UsageError(f"--images {self.images}: {problem}")
        self._images_root = _resolve(self.images, "--images")
        out = _resolve(self.out, "--out")
        if out == self._images_root:
            raise UsageError(f"--out {self.out} is the --images folder: crops would be written "
                             "among the images; choose an output folder outside it")
        if out.is_relative_to(self._images_root):
            raise UsageError(f"--out {self.out} is inside --images {self.images}: crops would be "
                             "written among the images; choose an output folder outside it")
        if self.contact_sheet:
            folder = _resolve(self.contact_sheet.parent, "--contact-sheet")
            if folder.is_relative_to(self._images_root):
                raise UsageError(f"--contact-sheet {self.contact_sheet} is inside --images "
                                 f"{self.images}: nothing is written there")

    def _check_size(self):
        """--size within what the output format (and the contact sheet) can encode."""
        height, width = self.options.size
        limits = [(f"a {self.options.image_format.upper()} crop",
                   MAX_SIDE.get(self.options.image_format))]
        if self.contact_sheet:
            limits.append(("a crop shown on the contact sheet", MAX_SIDE["png"]))
        for what, limit in limits:
            if limit is not None and max(height, width) > limit:
                raise UsageError(f"--size {height}x{width}: {what} can be at most {limit} "
                                 "pixels on a side")

    def _check_memory(self, items):
        """Refuse a --size (or --workers) whose crops cannot fit in the memory available, before
        anything is allocated; cap the default number of workers to what fits."""
        available = memory.available()
        if available is None or not items:
            return
        size, image_format = self.options.size, self.options.image_format
        per_image = {}
        for item in items:
            per_image[item.annotation.image] = per_image.get(item.annotation.image, 0) + 1
        worker = worker_bytes(size, image_format, max(per_image.values()))
        main = npz_bytes(size, len(items)) if image_format == "npz" else 0
        what = (f"{len(items)} crops in crops.npz and a worker's crops" if main else
                "the crops of one worker")
        shown = f"--size {size[0]}x{size[1]}"
        if worker + main > available:
            raise UsageError(f"{shown} needs {memory.describe(worker + main)} for {what}, more "
                             f"than the {memory.describe(available)} of memory available; "
                             "choose a smaller --size")
        fit = (available - main) // worker
        if self.workers is None:
            self._memory_workers = fit
            return
        used = min(self.workers, len(per_image))
        if used > fit:
            need = memory.describe(main + worker * used)
            raise UsageError(f"--workers {self.workers} with {shown} need {need}, more than the "
                             f"{memory.describe(available)} of memory available ("
                             f"{memory.describe(worker)} per worker); use --workers {fit} or "
                             "fewer")

    # -- planning ---------------------------------------------------------------------------

    def _worker_count(self, images):
        """``--workers`` (at most one per image); by default one per CPU, but at most one per
        ``IMAGES_PER_WORKER`` images, since starting a worker costs about as much as that, and
        no more than the memory holds."""
        if self.workers is not None:
            return max(1, min(self.workers, images))
        count = min(default_workers(), images // IMAGES_PER_WORKER)
        if self._memory_workers is not None:
            count = min(count, self._memory_workers)
        return max(1, count)

    def _protected_paths(self, items):
        """The input files (never written): the annotation file and every image it names, each
        as named (its folder resolved) and as resolved."""
        named = {self.annotations_path}
        named.update(self.images / item.annotation.image for item in items)
        paths = set()
        for path in named:
            with contextlib.suppress(OSError, RuntimeError, ValueError):  # unresolvable: unread
                paths.update((path.resolve(), path.parent.resolve() / path.name))
        return paths

    def _prepare_out(self, protected, items):
        if self.contact_sheet and _as_written(self.contact_sheet) in protected:
            raise UsageError(f"--contact-sheet {self.contact_sheet} would overwrite an input file")
        if self.contact_sheet and self._sheet_is_an_output(items):
            raise UsageError(f"--contact-sheet {self.contact_sheet} is also the name of an "
                             f"output in --out {self.out}")
        if (self.options.image_format == "npz"
                and _as_written(self.out / NPZ_NAME) in protected):
            raise UsageError(f"{self.out / NPZ_NAME} would overwrite an input file")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create output folder {self.out}: {error}") from None

    def _sheet_is_an_output(self, items):
        if _as_written(self.contact_sheet).parent != self.out.resolve():
            return False
        if self.options.image_format == "npz":
            return self.contact_sheet.name == NPZ_NAME
        return any(self.contact_sheet.name == output_name(item.annotation,
                                                          self.options.image_format)
                   for item in items)

    def _image_sources(self, items):
        """``(sources, items)``: the file to read for each image name, and the items whose image
        may be read. An image name that cannot be read (outside --images without
        --allow-outside-images, a NUL byte) is an error for each of its boxes, one line."""
        by_image = {}
        for item in items:
            by_image.setdefault(item.annotation.image, []).append(item)
        sources, readable = {}, []
        for name, image_items in by_image.items():
            try:
                sources[name] = self._image_source(name)
                readable += image_items
            except ImagePathError as error:
                self._error(f"{self.images / name}: {error} ({not_cropped(len(image_items))})")
                self.summary.failed += len(image_items)
        readable.sort(key=lambda item: item.number)
        return sources, readable

    def _image_source(self, name):
        """The resolved file of the image ``name``, inside --images unless allowed otherwise."""
        if "\0" in name:
            raise ImagePathError("the image name contains a NUL byte")
        try:
            os.fsencode(name)
        except UnicodeEncodeError:  # e.g. a lone surrogate escaped in JSON ("\ud800")
            raise ImagePathError("the image name cannot be a file name (not valid "
                                 "Unicode)") from None
        try:
            path = (self.images / name).resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a link loop (Python < 3.13)
            raise ImagePathError(f"cannot resolve the path: {error}") from None
        if not self.allow_outside_images and not path.is_relative_to(self._images_root):
            raise ImagePathError(f"outside --images (the file is {path}); paths in the "
                                 "annotations stay inside --images unless "
                                 "--allow-outside-images is given")
        return path

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
            if _as_written(item.output) in protected:
                self._fail(f"{item.annotation.where}: output {item.output} would overwrite an "
                           "input file")
            elif not self.options.overwrite and files.is_written(item.output):
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
                crop = imageio.read_rgb(crop)
            except imageio.ImageError as error:
                self._error(f"{crop}: {error} (left out of the contact sheet)")
                return
        else:
            crop = imageio.to_uint8(crop)
        self.thumbs[item.number] = sheet.fit_cell(crop, *self.options.size)

    def _tasks(self, todo, sources):
        """One task per image, in the order images first appear in the annotations."""
        by_image = {}
        for item in todo:
            by_image.setdefault(item.annotation.image, []).append(item)
        keep_crops = self.options.image_format == "npz"
        thumb_limit = sheet.MAX_CROPS if self.contact_sheet else 0
        return [ImageTask(str(self.images / image), sources[image], image_items, self.options,
                          keep_crops, thumb_limit)
                for image, image_items in by_image.items()]

    # -- running ----------------------------------------------------------------------------

    def _collect(self, tasks, total):
        results = []
        self._progress = Progress(total, label="roiops crop ", stream=self.stderr,
                                  enabled=self.progress_enabled)
        # closing(): on an interruption the workers stop now, not when the traceback is freed.
        mapped = contextlib.closing(_map_images(tasks, self.summary.workers))
        try:
            with mapped as results_in_order:
                # strict: the results are read to their end, so that the pool ends normally
                for task, result in zip(tasks, results_in_order, strict=True):
                    self._count(result)
                    results.append(result)
                    self._progress.update(len(task.items))
        finally:
            self._progress.close()
            self._progress = None
        if self.options.image_format != "npz":
            self.summary.outputs.append(("crops", str(self.out)))
        return results

    def _count(self, result):
        for line in result.problems:
            self._error(line)
        self.summary.failed += result.failed
        for stage in STAGES:
            self.summary.timings[stage] += result.timings[stage]
        self.thumbs.update(result.thumbs)
        if self.options.image_format != "npz":
            self.summary.written += len(result.written)
            result.crops = None

    # -- npz --------------------------------------------------------------------------------

    def _load_previous_npz(self):
        """Crops of an earlier run's crops.npz by (image, id), if resuming; {} otherwise."""
        path = self.out / NPZ_NAME
        if self.options.overwrite or not files.is_written(path):
            return {}  # a link named crops.npz is not read: it is replaced
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
        try:
            files.write_atomically(path, lambda file: np.savez(file, **arrays))
            self.summary.written += len(crops)
        except OSError as error:
            self._error(f"{path}: cannot write: {error}")
            self.summary.failed += len(crops)
        self.summary.timings["encode"] += time.perf_counter() - clock

    # -- contact sheet and messages ---------------------------------------------------------

    def _write_contact_sheet(self):
        clock = time.perf_counter()
        crops = [self.thumbs[number] for number in sorted(self.thumbs)]
        image = sheet.contact_sheet(crops, *self.options.size)
        image_format = Image.registered_extensions().get(self.contact_sheet.suffix.lower(), "PNG")
        try:
            self.contact_sheet.parent.mkdir(parents=True, exist_ok=True)
            files.write_atomically(self.contact_sheet,
                                   lambda file: image.save(file, format=image_format))
            self.summary.outputs.append(("contact sheet", str(self.contact_sheet)))
        except OSError as error:
            self._error(f"{self.contact_sheet}: cannot write the contact sheet: {error}")
            self.summary.errors += 1
        self.summary.timings["encode"] += time.perf_counter() - clock

    def _fail(self, line):
        self._error(line)
        self.summary.failed += 1

    def _error(self, line):
        """Print ``error: line``; characters that are not printable (a newline or a lone
        surrogate in a name from the annotations) are escaped, so that an error is one line."""
        text = "error: " + "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
        if self._progress is not None:
            self._progress.write(text)
        else:
            print(text, file=self.stderr, flush=True)
