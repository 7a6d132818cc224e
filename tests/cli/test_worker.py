"""The worker pool of ``roiops crop`` (``roiops.cli.worker``) when a run stops early."""
import concurrent.futures
import threading
import time

from roiops.cli.crop import CropJob
from roiops.cli.errors import Terminated
from roiops.cli.main import main


def test_a_run_stopped_with_images_queued_leaves_the_pool_without_error(tmp_path, many_boxes,
                                                                       monkeypatch):
    """Stopped after its first image with most images still queued, a 2-worker run cancels
    them before its workers exit. In the other order a worker's exit could mark the pool broken
    while cancelled futures were pending, which the pool's manager thread in CPython before
    3.12 fails on (InvalidStateError), skipping its cleanup: `roiops crop` then hung at exit
    once, in a clean-clone CI run. Each shutdown here starts a second late, as if the main
    process had lost its core; that made the failure certain on Python 3.11."""
    boxes, images = many_boxes(12, 100)
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    shutdown = concurrent.futures.ProcessPoolExecutor.shutdown

    def late_shutdown(pool, *args, **kwargs):
        time.sleep(1)
        return shutdown(pool, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "shutdown", late_shutdown)
    count = CropJob._count

    def stop_after_the_first_image(job, task, result):
        count(job, task, result)
        raise Terminated

    monkeypatch.setattr(CropJob, "_count", stop_after_the_first_image)
    assert main(["crop", str(boxes), "--images", str(images), "--out",
                 str(tmp_path / "out"), "--size", "96", "--workers", "2"]) == 143
    assert [(error.exc_type, error.thread.name) for error in thread_errors] == []
