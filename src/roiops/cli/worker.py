"""The work of ``roiops crop`` on one image, and the processes that do it.

:func:`crop_image` decodes an image, crops its boxes (one :func:`roiops.crop_and_resize` call
per group of ``CALL_BYTES`` of crops, through :mod:`.sampling`) and writes the crops, or
returns them for an npz shard. :func:`map_images` runs it over the images in this process or
in a pool of processes (each with one Numba thread) and gives the results in order.

Pool workers exit as soon as the main process closes their lifeline pipe: when it stops them
early (Ctrl-C, SIGTERM) or when it dies, even by ``kill -9``.
"""
import concurrent.futures
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

import roiops

from . import files, imageio, sampling, sheet
from .boxes import BoxError, sample_box, samples_outside

STAGES = ("decode", "crop", "encode")
# The float32 crops of one crop_and_resize call stay under this (the boxes of an image with
# many or large crops are cropped in groups), so a worker's memory does not grow with the
# number of boxes of an image. Boxes are cropped independently: grouping changes no bit.
CALL_BYTES = 64 * 2 ** 20
FLOAT_CROP_BYTES = sampling.FLOAT_CROP_BYTES


@dataclass(frozen=True)
class CropOptions:
    """How to cut the crops and what to write (the ``roiops crop`` flags)."""

    size: tuple = (64, 64)
    method: str = "bilinear"
    extrapolation_value: float = 0.0
    margin: float = 0.0
    square: bool = False
    normalized: bool = False
    image_format: str = "png"
    overwrite: bool = False
    exif_orientation: bool = True
    antialias: bool = False
    dtype: str = "uint8"     # of the crops in npz shards
    layout: str = "flat"     # files: all in --out, or one folder per class

    def settings(self):
        """The options that decide the values of a crop (kept in npz shards to check a
        resume)."""
        return {"size": np.array(self.size, np.int64), "method": np.array(self.method),
                "extrapolation_value": np.array(self.extrapolation_value, np.float64),
                "margin": np.array(self.margin, np.float64), "square": np.array(self.square),
                "normalized": np.array(self.normalized),
                "exif_orientation": np.array(self.exif_orientation),
                "antialias": np.array(self.antialias), "dtype": np.array(self.dtype)}


@dataclass
class Item:
    """One box of this run: its position in annotation order (among the boxes selected), its
    annotation, and its output file (png/jpg; a string: --out joined with the file's name)."""

    number: int
    annotation: object
    output: str = None


@dataclass
class ImageTask:
    """One image for a worker: where to report it, the file to read, its items to crop."""

    path: str                # the image as --images and the annotation name it, for messages
    source: Path             # the resolved file to read
    items: list
    options: CropOptions
    keep_crops: bool         # npz: return the crops instead of writing files
    thumb_limit: int         # return contact sheet cells for item numbers below this


@dataclass
class ImageResult:
    """What a worker did with one image."""

    written: list = field(default_factory=list)   # item numbers
    failed: int = 0
    problems: list = field(default_factory=list)
    timings: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    image_size: tuple = None                      # (height, width) as decoded
    boxes: dict = field(default_factory=dict)     # number -> sampled [y1, x1, y2, x2]
    crops: dict = field(default_factory=dict)     # number -> crop (npz only)
    thumbs: dict = field(default_factory=dict)    # number -> contact sheet cell (uint8)


def not_cropped(count):
    return f"{count} box{'es' * (count != 1)} not cropped"


def boxes_per_call(size):
    """How many crops of ``size`` one group makes (at least one): their float32 crops stay
    under ``CALL_BYTES``. (With --antialias, :mod:`.sampling` splits a group's samples again.)"""
    return max(1, CALL_BYTES // (size[0] * size[1] * FLOAT_CROP_BYTES))


def crop_image(task):
    """Decode one image, crop its boxes, write the crops or keep them (npz).

    Contact sheet cells of the items numbered below ``task.thumb_limit`` come back too.
    """
    result = ImageResult()
    clock = time.perf_counter()
    try:
        decoded = imageio.decode(task.source, task.options.exif_orientation)
    except imageio.ImageError as error:
        result.problems.append(f"{task.path}: {error} ({not_cropped(len(task.items))})")
        result.failed = len(task.items)
        return result
    finally:
        result.timings["decode"] = time.perf_counter() - clock
    pixels = decoded.pixels
    result.image_size = pixels.shape[:2]
    items = _of_the_decoded_size(task, decoded, result)

    clock = time.perf_counter()
    good, boxes = _sample_boxes(task, items, pixels.shape[:2], result)
    result.timings["crop"] += time.perf_counter() - clock
    step = boxes_per_call(task.options.size)
    for start in range(0, len(good), step):
        _crop_group(task, pixels, good[start:start + step], boxes[start:start + step], result)
    return result


def _of_the_decoded_size(task, decoded, result):
    """The items whose annotation gives no image size or the decoded one; the others fail,
    one line for each size they give."""
    height, width = decoded.pixels.shape[:2]
    kept, wrong = [], {}
    for item in task.items:
        expected = item.annotation.image_size
        if expected is None or tuple(expected) == (width, height):
            kept.append(item)
        else:
            wrong.setdefault(tuple(expected), []).append(item)
    for expected, items in wrong.items():
        result.problems.append(f"{task.path}: {size_mismatch(task, decoded, expected)} "
                               f"({not_cropped(len(items))})")
        result.failed += len(items)
    return kept


def size_mismatch(task, decoded, expected):
    """Why the decoded image is not the size ``(width, height)`` its annotations give."""
    height, width = decoded.pixels.shape[:2]
    oriented = task.options.exif_orientation
    turned = decoded.orientation in imageio.SWAPS_AXES
    text = (f"the decoded image is {width}x{height} (width x height"
            f"{', after its EXIF orientation' if oriented and turned else ''}) but the "
            f"annotations give {expected[0]}x{expected[1]}")
    if turned and (height, width) == expected:
        text += ("; they give its size before the EXIF orientation: if the boxes are on the "
                 "stored pixels, pass --ignore-exif-orientation" if oriented else
                 "; they give its size after the EXIF orientation: leave out "
                 "--ignore-exif-orientation")
    return text


def _sample_boxes(task, items, shape, result):
    """The items whose boxes can be cropped and their crop_and_resize boxes ([n, 4] float32);
    a problem line for each of the others."""
    good, boxes = [], []
    options = task.options
    for item in items:
        annotation = item.annotation
        try:
            boxes.append(sample_box(annotation.box, *shape, units=annotation.units,
                                    margin=options.margin, square=options.square))
            good.append(item)
        except BoxError as error:
            result.problems.append(f"{annotation.where}: {error} (image {task.path})")
            result.failed += 1
    return good, np.array(boxes, np.float32).reshape(-1, 4)


def _crop_group(task, pixels, items, boxes, result):
    """Crop ``boxes`` with one crop_and_resize call (or, antialiased, a few); keep or write the
    crops. (A function, so that a group's crops are freed before the next group's are made.)"""
    clock = time.perf_counter()
    options = task.options
    crops = sampling.crop_boxes(pixels, boxes, options.size, method=options.method,
                                extrapolation_value=options.extrapolation_value,
                                antialias=options.antialias, call_bytes=CALL_BYTES)
    result.timings["crop"] += time.perf_counter() - clock
    clock = time.perf_counter()
    if task.keep_crops:
        _keep(task, items, boxes, pixels.shape[:2], crops, result)
    else:
        _write(task, items, boxes, pixels.shape[:2], imageio.to_uint8(crops, in_place=True),
               result)
    result.timings["encode"] += time.perf_counter() - clock


def _keep(task, items, boxes, shape, crops, result):
    rounded = imageio.to_uint8(crops) if task.options.dtype == "uint8" else None
    kept = rounded if rounded is not None else crops
    for index, (item, box) in enumerate(zip(items, boxes)):
        result.crops[item.number], result.boxes[item.number] = kept[index], box
        result.written.append(item.number)
        if item.number < task.thumb_limit:
            cell = rounded[index] if rounded is not None else imageio.to_uint8(crops[index])
            result.thumbs[item.number] = _cell(task, cell, box, shape)


def _write(task, items, boxes, shape, crops, result):
    for item, box, crop in zip(items, boxes, crops):
        try:
            imageio.write_image(crop, item.output, task.options.image_format)
        except OSError as error:
            result.problems.append(f"{item.output}: cannot write: {error}")
            result.failed += 1
            continue
        result.written.append(item.number)
        result.boxes[item.number] = box
        if item.number < task.thumb_limit:
            result.thumbs[item.number] = _cell(task, crop, box, shape)


def _cell(task, crop, box, shape):
    size = task.options.size
    return sheet.fit_cell(crop, *size, outside=samples_outside(box, *shape, *size))


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


def _init_worker(lifeline, kernels_ready):
    # Ctrl-C, and often SIGTERM, go to the whole process group: the main process handles them
    # and stops the workers through the lifeline, after the files being written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(lifeline,), daemon=True,
                     name="roiops-lifeline").start()
    numba.set_num_threads(1)
    # The main process loads the kernels first, so that a first run compiles them once (and
    # they are cached) instead of once in every worker at the same time.
    kernels_ready.wait()
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


def map_images(batches, workers, load_kernels):
    """``crop_image`` over the tasks of each batch (a list of tasks), batch after batch,
    results in order: in this process for one worker, else in a pool. ``load_kernels()``
    loads the kernels in this process once the work is handed out.

    Every image is cropped with one Numba thread: a few boxes are far too little work to share
    (waking threads costs more, and much more on a busy machine); processes give the
    parallelism.
    """
    if workers > 1:
        yield from _map_in_pool(batches, workers, load_kernels)
        return
    threads = numba.get_num_threads()
    load_kernels()
    numba.set_num_threads(1)
    try:
        for batch in batches:
            yield from map(crop_image, batch)
    finally:
        numba.set_num_threads(threads)


def _map_in_pool(batches, workers, load_kernels):
    """``crop_image`` over the batches in ``workers`` processes, results in order.

    Only this process holds the sending end of the workers' lifeline (a pipe created here is
    not inherited, and the fork server and the resource tracker are started with only the file
    descriptors they need): closing it, or this process dying, ends every worker. When the run
    stops early (an interruption, an error) the queued images are cancelled and the lifeline
    closed before the pool is shut down, so that the workers do not finish the queued images.
    The workers load the kernels once this process has (it loads them while they start).
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])
    lifeline, keep_alive = context.Pipe(duplex=False)
    kernels_ready = context.Event()
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                  initializer=_init_worker,
                                                  initargs=(lifeline, kernels_ready))
    try:
        for batch in batches:
            chunksize = max(1, min(8, len(batch) // (workers * 4)))
            results = pool.map(crop_image, batch, chunksize=chunksize)
            if not kernels_ready.is_set():
                load_kernels()
                kernels_ready.set()
            yield from results
    except BaseException:
        # The queued images are cancelled before the workers are told to exit. In the other
        # order a worker's exit can mark the pool broken while futures cancelled by map()
        # are still pending, and the pool's manager thread in CPython before 3.12 fails on
        # them (InvalidStateError), skips its cleanup, and the process may hang at exit.
        pool.shutdown(wait=False, cancel_futures=True)
        keep_alive.close()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        keep_alive.close()
        lifeline.close()
