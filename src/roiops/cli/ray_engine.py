"""``roiops crop --engine ray``: the images of a run cropped by Ray tasks on a cluster.

The main process (Ray's driver) reads the annotations, checks and plans the run exactly as with
the local engine; only :func:`roiops.cli.worker.crop_image` runs elsewhere, in Ray tasks of a
few images each. A task decodes its images (from a folder every node sees, or a pyarrow
filesystem URI), crops them and writes the crop files into --out itself (the same names and
bytes as the local engine), or returns the crops of an npz run, which the driver writes into
shards as the local engine does. Results come back in annotation order, so messages, shards,
the manifest and the contact sheet are those of a local run.

The cluster is the one ``RAY_ADDRESS`` names (Ray's own convention; ``ray job submit`` sets
it), else a Ray instance started here for this run; a driver that already called ``ray.init``
keeps its connection.
"""
import os

import numba

from . import worker
from .errors import UsageError

IMAGES_PER_TASK = 8   # at most: few enough to spread small runs over the workers
# Tasks in flight per CPU of the cluster (each CPU has its next task waiting); with --workers N
# exactly N, so that the run never takes more than N CPUs.
TASKS_PER_CPU = 2
_kernels_loaded = False  # in a Ray worker process


def import_ray():
    """The ``ray`` module; a usage error saying how to install it if it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError('--engine ray needs Ray: pip install "roiops[ray]"') from None
    return ray


class RayEngine:
    """A connection to a Ray cluster for one run: :meth:`start`, :meth:`map_images`,
    :meth:`stop`."""

    def __init__(self, workers=None):
        self.ray = import_ray()
        self.workers = workers
        self._connected_here = False
        self._in_flight = 1

    def start(self):
        """Connect (``RAY_ADDRESS``, else a new local instance); the number of images cropped
        at once: ``--workers``, else the cluster's CPUs."""
        ray = self.ray
        if not ray.is_initialized():
            # address="local": a new instance, never a `ray start` cluster found on this machine
            where = ({} if os.environ.get("RAY_ADDRESS") else
                     {"address": "local", "num_cpus": self.workers})
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                     **where)
            self._connected_here = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._in_flight = self.workers or TASKS_PER_CPU * max(1, cpus)
        return max(1, self.workers or cpus)

    def stop(self):
        """Disconnect, if this run connected (a local instance it started stops with it)."""
        if self._connected_here:
            self.ray.shutdown()
            self._connected_here = False

    def map_images(self, batches, workers, load_kernels):
        """``crop_image`` over the tasks of each batch, in Ray tasks of up to
        ``IMAGES_PER_TASK`` images, at most ``--workers`` (else two per CPU) in flight; results
        in order. ``load_kernels()`` runs here first, so that a first run compiles the kernels
        once (the workers load them from Numba's cache where they share this file system)."""
        ray = self.ray
        load_kernels()
        remote = ray.remote(num_cpus=1, max_retries=0)(crop_images)
        cwd = os.getcwd()
        chunks = [chunk for batch in batches for chunk in _chunks(batch, workers)]
        pending = []
        try:
            for chunk in chunks:
                pending.append((chunk, remote.remote(chunk, cwd)))
                if len(pending) >= min(self._in_flight, TASKS_PER_CPU * workers):
                    yield from _results(ray, *pending.pop(0))
            while pending:
                yield from _results(ray, *pending.pop(0))
        finally:
            for _, reference in pending:
                ray.cancel(reference)


def _chunks(batch, workers):
    """``batch`` (a list of image tasks) in consecutive chunks, about four per worker."""
    size = max(1, min(IMAGES_PER_TASK, len(batch) // (workers * 4)))
    return [batch[start:start + size] for start in range(0, len(batch), size)]


def _results(ray, chunk, reference):
    """The results of one Ray task; if the task itself failed (its worker died, the cluster
    lost it), a failure for each of its images, one line each."""
    try:
        return ray.get(reference)
    except (ray.exceptions.RayError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [_failed(task, f"the Ray task failed: {reason}") for task in chunk]


def _failed(task, reason):
    result = worker.ImageResult(failed=len(task.items))
    result.problems.append(f"{task.path}: {reason} ({worker.not_cropped(len(task.items))})")
    return result


def crop_images(tasks, cwd):
    """In a Ray worker: ``crop_image`` over ``tasks``, relative paths taken from the driver's
    working folder ``cwd`` (when this node has it), with one Numba thread."""
    global _kernels_loaded
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    numba.set_num_threads(1)
    if not _kernels_loaded:
        worker.warm_up()  # not counted as crop time (the local workers load them on start)
        _kernels_loaded = True
    return [worker.crop_image(task) for task in tasks]
