"""The ``roiops crop`` job: annotations in, one crop per box out (image files or npz shards),
a manifest of them, and a contact sheet if asked.

The work is split by image (:mod:`.worker`): a worker decodes an image, crops its boxes and
writes the crops, or sends them back for an npz shard. Results come back in annotation order,
so messages, shards, the manifest and the contact sheet are the same for any number of
workers. Bad items (an image that cannot be read, a malformed annotation, a box outside its
image) print one line each and the run goes on; :class:`UsageError` (an unreadable annotation
file, an output that would replace an input, crops too large for the memory) stops it before
any work. Outputs are written atomically and never through a link (:mod:`.files`).
"""
import contextlib
import math
import os
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import annotations as annotation_files
from . import files, imageio, manifest, memory, sampling, shards, sheet, stopping
from .boxes import BoxError, pixel_size, sample_box, samples_outside
from .errors import UsageError
from .progress import Progress
from .ray_engine import RayEngine
from .sources import RemoteFolder, is_uri
from .worker import (
    CALL_BYTES,
    FLOAT_CROP_BYTES,
    STAGES,
    CropOptions,
    ImageTask,
    Item,
    boxes_per_call,
    default_workers,
    map_images,
    not_cropped,
    warm_up,
)

__all__ = ["CropJob", "CropOptions", "Summary", "default_workers"]

IMAGES_PER_WORKER = 16
# The longest crop side an encoder takes: JPEG's own limit (libjpeg), and for PNG (and the
# contact sheet, made with Pillow from the crops) a bound well inside Pillow's (about 89
# million pixels a row). npz has none.
MAX_SIDE = {"jpg": 65500, "png": 2 ** 24}
UNLABELED = "_unlabeled"  # the class folder of boxes without a label (no label begins with _)
NOTICE_SECONDS = 2.0      # loading the kernels longer than this: say why nothing happens
KERNELS_NOTICE = ("roiops crop: preparing the crop kernels (a first run compiles them for this "
                  "machine, which takes up to a minute; later runs load them from the cache)")


@dataclass
class Summary:
    """Counts and times of a run; ``failed`` counts crops, ``errors`` other failures."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    filtered: int = 0
    errors: int = 0
    seconds: float = 0.0
    workers: int = 1
    dry_run: bool = False
    timings: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    outputs: list = field(default_factory=list)

    @property
    def exit_status(self):
        return 1 if self.failed or self.errors else 0

    def lines(self):
        filtered = f", {self.filtered} filtered out" if self.filtered else ""
        if self.dry_run:
            return [f"dry run: {self.written} to crop, {self.skipped} skipped (already there), "
                    f"{self.failed} failed{filtered}; nothing was written"]
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        split = ", ".join(f"{stage} {self.timings[stage]:.2f} s" for stage in STAGES)
        over = f", summed over {self.workers} workers" if self.workers > 1 else ""
        lines = [f"{self.written} written, {self.skipped} skipped, {self.failed} failed"
                 f"{filtered} in {self.seconds:.2f} s ({rate:.0f} crops/s)",
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


def class_folder(label):
    """The folder of a label's crops with ``--layout class``: the sanitized label."""
    return annotation_files.sanitize(label) or UNLABELED


def output_path(annotation, options):
    """The crop file of an annotation, relative to --out (a POSIX path, as a string)."""
    name = output_name(annotation, options.image_format)
    if options.layout == "class":
        return f"{class_folder(annotation.label)}/{name}"
    return name


def worker_bytes(size, image_format, boxes_per_image, dtype="uint8", antialias=False):
    """About the most memory a worker holds for crops of ``size`` at once (the decoded image,
    bounded by Pillow's decompression bomb limit, is not counted).

    One group's float32 crops (``CALL_BYTES``) and their uint8 copies; for PNG and JPEG,
    Pillow's copies of the crop being encoded (its bytes, then 4 bytes a pixel); for npz, the
    image's crops kept for the shard (at most a shard's) and their pickled copy on the way
    back. With --antialias, one call's samples. The contact sheet cells that go back.
    """
    pixels = size[0] * size[1]
    cells = sheet.MAX_CROPS * math.prod(sheet.cell_size(*size)) * 3
    group = boxes_per_call(size) * pixels * (FLOAT_CROP_BYTES + 3)
    if image_format == "npz":
        kept = min(boxes_per_image, shards.crops_per_shard(size, dtype))
        total = group + 2 * kept * pixels * 3 * np.dtype(dtype).itemsize
    else:
        total = group + pixels * (3 + 4)
    if antialias:
        total += max(CALL_BYTES, sampling.dense_bytes(size, True))
    return total + cells


def npz_bytes(size, count, dtype="uint8"):
    """The memory the main process needs for ``count`` crops in npz shards: one shard's
    crops as they come back, stacked into the shard, and pickled on the way (three copies)."""
    per_shard = min(count, shards.crops_per_shard(size, dtype))
    return 3 * per_shard * size[0] * size[1] * 3 * np.dtype(dtype).itemsize


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


@dataclass
class Done:
    """A crop in --out (written now or by an earlier run): where it is, and what it was cut
    from (None when unknown)."""

    crop: str                 # relative to --out
    index: int = None         # its row in an npz shard
    image_size: tuple = None  # (height, width)
    sampled_box: object = None


class CropJob:
    """One ``roiops crop`` run; :meth:`run` does it and returns the :class:`Summary`."""

    def __init__(self, annotations, images, out, options, *, contact_sheet=None, workers=None,
                 allow_outside_images=False, columns=None, names=None, categories=(),
                 min_size=0.0, limit=None, dry_run=False, quiet=False, stderr=None,
                 progress=None, engine="local"):
        self.annotations_path = Path(annotations)
        # A pyarrow filesystem URI (s3://, gs://, file://), or a folder
        self.images = (RemoteFolder(images) if is_uri(images) else
                       Path(images))
        self.out = Path(out)
        self.options = options
        self.contact_sheet = Path(contact_sheet) if contact_sheet else None
        self.workers = workers
        self.allow_outside_images = allow_outside_images
        self.reading = annotation_files.Reading(columns or {}, options.normalized,
                                                Path(names) if names else None, self.images)
        self.categories = {unicodedata.normalize("NFC", name) for name in categories}
        self.min_size = min_size
        self.limit = limit
        self.dry_run = dry_run
        self.quiet = quiet
        self.stderr = sys.stderr if stderr is None else stderr
        self.progress_enabled = False if quiet else progress
        self.summary = Summary(dry_run=dry_run)
        # --engine ray: the tasks run on a Ray cluster (Ray is imported now: a usage error
        # before any work if it is missing)
        self.ray = RayEngine(workers) if engine == "ray" else None
        self.thumbs = {}             # item number -> contact sheet cell
        self.done = {}               # item number -> Done
        self._progress = None
        self._images_root = None     # --images, resolved
        self._memory_workers = None  # the most workers the memory holds (default --workers)
        self._sources = {}           # image name -> resolved file, or the ImagePathError
        self._sizes = {}             # image name -> (height, width) from its header, or None
        self._relative = {}          # item number -> its crop file relative to --out

    @property
    def npz(self):
        return self.options.image_format == "npz"

    def run(self):
        start = time.perf_counter()
        annotations, problems = annotation_files.load(self.annotations_path, self.reading)
        self._check_folders()
        self._check_size()
        self._check_categories(annotations)
        items = [Item(number, annotation)
                 for number, annotation in enumerate(self._select(annotations))]
        self._check_class_folders(items)
        self._check_memory(items)
        protected = self._protected_paths(items)
        self._prepare_out(protected, items)
        for problem in problems:
            self._error(problem.message)
            self.summary.failed += problem.boxes
        sources, readable = self._image_sources(items)
        if self.npz:
            chunks, tasks = self._plan_shards(items, readable, sources, protected)
        else:
            chunks, tasks = None, [self._plan_files(readable, sources, protected)]
        images = sum(len(batch) for batch in tasks)
        if self.dry_run:
            self.summary.written = sum(len(task.items) for batch in tasks for task in batch)
        elif self.ray is not None:
            try:
                self.summary.workers = max(1, min(self.ray.start() if images else 1, images))
                self._collect(tasks, chunks, self.ray.map_images)
            finally:
                self.ray.stop()
        else:
            self.summary.workers = self._worker_count(images)
            self._collect(tasks, chunks, map_images)
        if not self.dry_run:
            self._write_manifest(items)
            if self.contact_sheet:
                self._write_contact_sheet(items)
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    # -- checks before any work --------------------------------------------------------------

    def _check_folders(self):
        """--images must be a folder, and nothing is written in it: --out may not be it or a
        folder inside it (a folder containing it is fine), nor may --contact-sheet be in it.
        (A URI of another filesystem than the local one is not checked against them.)"""
        if isinstance(self.images, RemoteFolder):
            self.images.check()
            local = self.images.local_path
            if local is None:
                return
        else:
            local = self.images
            if not local.is_dir():
                problem = "is not a folder" if local.exists() else "no such folder"
                raise UsageError(f"--images {self.images}: {problem}")
        self._images_root = _resolve(local, "--images")
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

    def _check_categories(self, annotations):
        """A --category that no box has is a usage error (a typo would crop nothing)."""
        labels = {unicodedata.normalize("NFC", annotation.label) for annotation in annotations}
        unknown = sorted(self.categories - labels)
        if unknown:
            known = ", ".join(repr(label) for label in sorted(labels)[:20])
            more = ", ..." if len(labels) > 20 else ""
            raise UsageError(f"--category {', '.join(map(repr, unknown))}: no box has this "
                             f"label; the labels are {known or 'none'}{more}")

    def _check_class_folders(self, items):
        """--layout class: two labels may not share a folder, and a class folder may not be a
        link or the --images folder (crops are written only inside --out)."""
        if self.options.layout != "class":
            return
        labels = {}
        for item in items:
            label = item.annotation.label
            other = labels.setdefault(class_folder(label), label)
            if other != label:
                raise UsageError(f"--layout class: the labels {other!r} and {label!r} would "
                                 f"share the folder {class_folder(label)}; rename one")
        out = _resolve(self.out, "--out")
        for folder in labels:
            path = self.out / folder
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise UsageError(f"--layout class: {path} is a link or not a folder; class "
                                 "folders are made by roiops crop (remove it)")
            if (out / folder) == self._images_root:
                raise UsageError(f"--layout class: the class folder {path} is the --images "
                                 "folder; choose another --out")

    def _check_memory(self, items):
        """Refuse a --size (or --workers) whose crops cannot fit in the memory available, before
        anything is allocated; cap the default number of workers to what fits. (With --engine
        ray the workers' memory is the cluster's: only this process's shards are checked.)"""
        available = memory.available()
        if available is None or not items:
            return
        options = self.options
        size = options.size
        if self.ray is not None:
            main = npz_bytes(size, len(items), options.dtype) if self.npz else 0
            if main > available:
                raise UsageError(f"--size {size[0]}x{size[1]} needs {memory.describe(main)} for "
                                 f"a shard of crops, more than the {memory.describe(available)}"
                                 " of memory available; choose a smaller --size")
            return
        per_image = {}
        for item in items:
            per_image[item.annotation.image] = per_image.get(item.annotation.image, 0) + 1
        worker = worker_bytes(size, options.image_format, max(per_image.values()),
                              options.dtype, options.antialias)
        main = npz_bytes(size, len(items), options.dtype) if self.npz else 0
        what = ("a shard of crops and a worker's crops" if main else "the crops of one worker")
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

    # -- selecting ---------------------------------------------------------------------------

    def _select(self, annotations):
        """The boxes of --category that are at least --min-size, the first --limit of them."""
        selected = []
        for annotation in annotations:
            if self.limit is not None and len(selected) == self.limit:
                break
            label = unicodedata.normalize("NFC", annotation.label)
            if (self.categories and label not in self.categories) or self._too_small(annotation):
                self.summary.filtered += 1
                continue
            selected.append(annotation)
        return selected

    def _too_small(self, annotation):
        """Whether a box is narrower or lower than --min-size pixels. A box in fractions of its
        image needs the image size, read from the image's header; a box whose image cannot be
        read is kept (and fails when it is cropped)."""
        if not self.min_size:
            return False
        shape = ()
        if annotation.units != "pixels":
            shape = self._header_size(annotation.image)
            if shape is None:
                return False
        return min(pixel_size(annotation.box, annotation.units, *shape)) < self.min_size

    def _header_size(self, name):
        """``(height, width)`` of an image as it is decoded, from its header; None if it cannot
        be read (or may not be)."""
        if name not in self._sizes:
            self._sizes[name] = None
            with contextlib.suppress(ImagePathError, imageio.ImageError):
                self._sizes[name] = imageio.read_size(self._image_source(name),
                                                      self.options.exif_orientation)
        return self._sizes[name]

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
        images = (self.images.local_path if isinstance(self.images, RemoteFolder) else
                  self.images)
        if images is not None:  # each image name once (a Path per box was half the time)
            named.update(images / name for name in {item.annotation.image for item in items})
        paths, folders = set(), {}
        for path in named:
            with contextlib.suppress(OSError, RuntimeError, ValueError):  # unresolvable: unread
                if path.parent not in folders:
                    folders[path.parent] = path.parent.resolve()
                paths.update((path.resolve(), folders[path.parent] / path.name))
        return paths

    def _prepare_out(self, protected, items):
        if self.contact_sheet and _as_written(self.contact_sheet) in protected:
            raise UsageError(f"--contact-sheet {self.contact_sheet} would overwrite an input file")
        if self.contact_sheet and self._sheet_is_an_output(items):
            raise UsageError(f"--contact-sheet {self.contact_sheet} is also the name of an "
                             f"output in --out {self.out}")
        if _as_written(self.out / manifest.NAME) in protected:
            raise UsageError(f"{self.out / manifest.NAME} would overwrite an input file")
        if self.npz:
            for path in self._shard_paths(items):
                if _as_written(path) in protected:
                    raise UsageError(f"{path} would overwrite an input file")
        if self.dry_run:
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create output folder {self.out}: {error}") from None

    def _shard_paths(self, items):
        per_shard = shards.crops_per_shard(self.options.size, self.options.dtype)
        return [self.out / shards.name(number)
                for number in range(math.ceil(len(items) / per_shard))]

    def _sheet_is_an_output(self, items):
        sheet_path = _as_written(self.contact_sheet)
        out = self.out.resolve()
        if not sheet_path.is_relative_to(out):
            return False
        relative = sheet_path.relative_to(out)
        if relative == Path(manifest.NAME):
            return True
        if self.npz:
            return relative.parent == Path(".") and shards.NAME.fullmatch(relative.name)
        return any(relative.as_posix() == output_path(item.annotation, self.options)
                   for item in items)

    def _image_sources(self, items):
        """``(sources, items)``: the file to read for each image name, and the items whose image
        may be read. An image name that cannot be read (outside --images without
        --allow-outside-images, a NUL byte) is an error for each of its boxes, one line; with
        --dry-run so is an image that does not exist."""
        by_image = {}
        for item in items:
            by_image.setdefault(item.annotation.image, []).append(item)
        sources, readable = {}, []
        for name, image_items in by_image.items():
            try:
                sources[name] = self._image_source(name)
                if self.dry_run and not sources[name].is_file():
                    raise ImagePathError(imageio.ImageError("no such file"))
                readable += image_items
            except ImagePathError as error:
                self._error(f"{self.images / name}: {error} ({not_cropped(len(image_items))})")
                self.summary.failed += len(image_items)
        readable.sort(key=lambda item: item.number)
        return sources, readable

    def _image_source(self, name):
        """The resolved file of the image ``name``, inside --images unless allowed otherwise
        (remembered: the planning asks for it more than once)."""
        if name not in self._sources:
            try:
                self._sources[name] = self._find_image_source(name)
            except ImagePathError as error:
                self._sources[name] = error
        source = self._sources[name]
        if isinstance(source, ImagePathError):
            raise source
        return source

    def _find_image_source(self, name):
        if "\0" in name:
            raise ImagePathError("the image name contains a NUL byte")
        try:
            os.fsencode(name)
        except UnicodeEncodeError:  # e.g. a lone surrogate escaped in JSON ("\ud800")
            raise ImagePathError("the image name cannot be a file name (not valid "
                                 "Unicode)") from None
        if isinstance(self.images, RemoteFolder):
            try:
                return self.images.image(name, self.allow_outside_images)
            except ValueError as error:
                raise ImagePathError(str(error)) from None
        try:
            path = (self.images / name).resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a link loop (Python < 3.13)
            raise ImagePathError(f"cannot resolve the path: {error}") from None
        if not self.allow_outside_images and not path.is_relative_to(self._images_root):
            raise ImagePathError(f"outside --images (the file is {path}); paths in the "
                                 "annotations stay inside --images unless "
                                 "--allow-outside-images is given")
        return path

    def _plan_files(self, items, sources, protected):
        """The tasks of the crops to write now (one per image, in the order images first
        appear); the crops already in --out are counted as skipped.

        Paths are strings here: pathlib took most of the planning's time (2,000 crops)."""
        todo, names, folders = [], set(), {}
        protected_names = {str(path) for path in protected}
        out = str(self.out)
        for item in items:
            relative = output_path(item.annotation, self.options)
            folder, _, name = relative.rpartition("/")
            if folder not in folders:  # (as written, resolved)
                written = self.out / folder
                folders[folder] = (str(written), str(written.resolve()))
            item.output = os.path.join(folders[folder][0], name)
            if relative in names:
                self._fail(f"{item.annotation.where}: output name {relative} is already used by "
                           "another annotation (ids must be unique per image)")
                continue
            names.add(relative)
            self._relative[item.number] = relative
            if os.path.join(folders[folder][1], name) in protected_names:
                self._fail(f"{item.annotation.where}: output {item.output} would overwrite an "
                           "input file")
            elif not self.options.overwrite and files.is_written(item.output):
                self.summary.skipped += 1
                self.done[item.number] = self._done_earlier(item, relative)
            else:
                todo.append(item)
        if not self.dry_run:
            for folder in {os.path.dirname(item.output) or out for item in todo}:
                Path(folder).mkdir(exist_ok=True)
        return self._tasks(todo, sources)

    def _done_earlier(self, item, relative):
        """A crop file of an earlier run: its image size and sampled box from the image's
        header (None when it cannot be read)."""
        if self.dry_run:
            return Done(relative)
        annotation, shape = item.annotation, self._header_size(item.annotation.image)
        sampled = None
        if shape is not None:
            with contextlib.suppress(BoxError):
                sampled = sample_box(annotation.box, *shape, units=annotation.units,
                                     margin=self.options.margin, square=self.options.square)
        return Done(relative, None, shape, sampled)

    def _tasks(self, items, sources):
        """One task per image, in the order images first appear among ``items``."""
        by_image = {}
        for item in items:
            by_image.setdefault(item.annotation.image, []).append(item)
        thumb_limit = sheet.MAX_CROPS if self.contact_sheet else 0
        return [ImageTask(str(self.images / image), sources[image], image_items, self.options,
                          self.npz, thumb_limit)
                for image, image_items in by_image.items()]

    # -- npz shards --------------------------------------------------------------------------

    def _plan_shards(self, items, readable, sources, protected):
        """``(chunks, tasks)``: the shard numbers to write and, for each, its tasks. A shard
        that holds exactly the crops of its boxes (an earlier run's, same settings) is kept
        and its crops counted as skipped."""
        per_shard = shards.crops_per_shard(self.options.size, self.options.dtype)
        previous = self._previous_shards()
        by_chunk = {}
        for item in items:
            by_chunk.setdefault(item.number // per_shard, []).append(item)
        readable_numbers = {item.number for item in readable}
        chunks, tasks = [], []
        for chunk, chunk_items in sorted(by_chunk.items()):
            metadata = previous.get(chunk)
            if metadata is not None and shards.keys(metadata) == [_key(item)
                                                                  for item in chunk_items]:
                self._keep_shard(chunk, chunk_items, metadata)
                continue
            todo = [item for item in chunk_items if item.number in readable_numbers]
            chunks.append(chunk)
            tasks.append(self._tasks(todo, sources))
        self._stale_shards = [path for number, path in shards.existing(self.out).items()
                              if number not in by_chunk]
        return chunks, tasks

    def _previous_shards(self):
        """``{shard number: metadata}`` of the shards in --out, unless --overwrite; a shard made
        with other settings is a usage error (crops of different settings are never mixed)."""
        if self.options.overwrite:
            return {}
        settings = self.options.settings()
        found = {}
        for number, path in sorted(shards.existing(self.out).items()):
            try:
                metadata = shards.read_metadata(path, settings)
            except (OSError, ValueError, KeyError) as error:
                raise UsageError(f"cannot read the existing {path} to resume ({error}); pass "
                                 "--overwrite to replace it") from None
            for key, value in settings.items():
                if not np.array_equal(metadata[key], value):
                    raise UsageError(f"{path} was made with other settings ({key}); pass "
                                     "--overwrite to replace it")
            found[number] = metadata
        return found

    def _keep_shard(self, chunk, chunk_items, metadata):
        name = shards.name(chunk)
        for index, item in enumerate(chunk_items):
            self.done[item.number] = Done(name, index, tuple(metadata["image_size"][index]),
                                          metadata["sampled_box"][index])
        self.summary.skipped += len(chunk_items)

    def _write_shard(self, chunk, results):
        """Shard ``chunk`` from its tasks' results: the crops in annotation order."""
        crops, done = {}, {}
        for result in results:
            crops.update(result.crops)
            for number in result.written:
                done[number] = (result.image_size, result.boxes[number])
            result.crops = None
        numbers = sorted(crops)
        items = [self._items[number] for number in numbers]
        height, width = self.options.size
        arrays = {
            "crops": np.array([crops[number] for number in numbers],
                              self.options.dtype).reshape(-1, height, width, 3),
            "image": np.array([item.annotation.image for item in items], dtype=str),
            "id": np.array([item.annotation.id for item in items], np.int64),
            "label": np.array([item.annotation.label for item in items], dtype=str),
            "box": np.array([item.annotation.box for item in items], np.float64).reshape(-1, 4),
            "sampled_box": np.array([done[n][1] for n in numbers], np.float32).reshape(-1, 4),
            "image_size": np.array([done[n][0] for n in numbers], np.int64).reshape(-1, 2),
            **self.options.settings(),
        }
        del crops
        path = self.out / shards.name(chunk)
        try:
            shards.write(path, arrays)
        except OSError as error:
            self._error(f"{path}: cannot write: {error}")
            self.summary.failed += len(numbers)
            return
        self.summary.written += len(numbers)
        for index, number in enumerate(numbers):
            self.done[number] = Done(path.name, index, *done[number])

    def _remove_manifest(self):
        """Shards are about to be rewritten: an earlier manifest would name wrong rows if this
        run stops before it writes its own, so it goes first."""
        with contextlib.suppress(OSError):  # none there, or not a file (reported on writing)
            (self.out / manifest.NAME).unlink()

    def _remove_stale_shards(self):
        """Shards of an earlier run beyond the last one of this run (its annotations had more
        boxes): removed, so that the shards in --out are those of the manifest."""
        for path in self._stale_shards:
            try:
                path.unlink()
            except OSError as error:
                self._error(f"{path}: cannot remove this shard of an earlier run: {error}")
                self.summary.errors += 1

    # -- running ----------------------------------------------------------------------------

    def _collect(self, batches, chunks, map_images):
        """Run the tasks, batch after batch (one batch per npz shard), with ``map_images`` (the
        local pool's or Ray's), counting their results and writing each shard once its batch
        is done."""
        self._items = {}
        for batch in batches:
            for task in batch:
                self._items.update((item.number, item) for item in task.items)
        total = sum(len(task.items) for batch in batches for task in batch)
        timed = dict.fromkeys(STAGES, 0.0)
        # closing(): on an interruption the workers stop now, not when the traceback is freed.
        results = (map_images(batches, self.summary.workers, lambda: self._load_kernels(total))
                   if total else (result for result in ()))
        mapped = contextlib.closing(results)
        if chunks:
            self._remove_manifest()
        try:
            with mapped as results_in_order:
                for number, batch in enumerate(batches):
                    results = [self._count(task, next(results_in_order)) for task in batch]
                    if chunks is not None:
                        clock = time.perf_counter()
                        self._write_shard(chunks[number], results)
                        timed["encode"] += time.perf_counter() - clock
                next(results_in_order, None)  # to its end, so that the pool ends normally
        finally:
            if self._progress is not None:
                self._progress.close()
                self._progress = None
        if chunks is not None:
            self._remove_stale_shards()
        for stage, seconds in timed.items():
            self.summary.timings[stage] += seconds
        self.summary.outputs.append(("crops", str(self.out)))

    def _load_kernels(self, total):
        """Load (or on a first run compile) the crop kernels in this process, saying so when
        it takes long; then start the progress bar, so that its rate leaves this out."""
        notice = threading.Timer(NOTICE_SECONDS, self._notice)
        notice.daemon = True
        notice.start()
        try:
            warm_up()
        finally:
            notice.cancel()
        self._progress = Progress(total, self.stderr, self.progress_enabled)

    def _notice(self):
        if not self.quiet:
            print(KERNELS_NOTICE, file=self.stderr, flush=True)

    def _count(self, task, result):
        stopping.check()  # Ctrl-C or SIGTERM whose exception was swallowed: stop between images
        for line in result.problems:
            self._error(line)
        self.summary.failed += result.failed
        for stage in STAGES:
            self.summary.timings[stage] += result.timings[stage]
        self.thumbs.update(result.thumbs)
        if not self.npz:
            self.summary.written += len(result.written)
            for number in result.written:
                self.done[number] = Done(self._relative[number], None, result.image_size,
                                         result.boxes[number])
        self._progress.update(len(task.items))
        return result

    # -- manifest and contact sheet ---------------------------------------------------------

    def _write_manifest(self, items):
        rows = [manifest.Row(done.crop, done.index, item.annotation, done.image_size,
                             done.sampled_box)
                for item in items if (done := self.done.get(item.number)) is not None]
        path = self.out / manifest.NAME
        try:
            manifest.write(path, rows)
            self.summary.outputs.append(("manifest", str(path)))
        except OSError as error:
            self._error(f"{path}: cannot write the manifest: {error}")
            self.summary.errors += 1

    def _write_contact_sheet(self, items):
        """The first ``MAX_CROPS`` crops in --out, in annotation order: cells made by the
        workers, or read back from the outputs for crops of an earlier run (and those after
        failed boxes)."""
        clock = time.perf_counter()
        cells, captions, loaded_shard = [], [], (None, None)
        for item in items:
            if len(cells) == sheet.MAX_CROPS:
                break
            done = self.done.get(item.number)
            if done is None:
                continue
            cell = self.thumbs.get(item.number)
            if cell is None:
                cell, loaded_shard = self._read_cell(done, loaded_shard)
            if cell is not None:
                cells.append(cell)
                captions.append(item.annotation.label or f"#{item.annotation.id}")
        image = sheet.contact_sheet(cells, *self.options.size, captions)
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

    def _read_cell(self, done, loaded_shard):
        """``(cell, loaded_shard)``: the contact sheet cell of a crop in --out, read from its
        file or its shard (``loaded_shard`` keeps the last shard's crops: ``(name, crops)``)."""
        path = self.out / done.crop
        try:
            if done.index is None:
                crop = imageio.read_rgb(path, orient=False)
            else:
                if loaded_shard[0] != done.crop:
                    loaded_shard = (done.crop, shards.read_crops(path))
                crop = imageio.to_uint8(loaded_shard[1][done.index])
        except (imageio.ImageError, OSError, ValueError, KeyError) as error:
            self._error(f"{path}: {error} (left out of the contact sheet)")
            return None, loaded_shard
        outside = None
        if done.sampled_box is not None and done.image_size is not None:
            outside = samples_outside(done.sampled_box, *done.image_size, *self.options.size)
        return sheet.fit_cell(crop, *self.options.size, outside=outside), loaded_shard

    # -- messages ---------------------------------------------------------------------------

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


def _key(item):
    """What a shard keeps of a box, to tell whether the shard holds it."""
    annotation = item.annotation
    return (annotation.image, int(annotation.id), annotation.label,
            tuple(float(v) for v in annotation.box))
