"""``roiops crop`` as a real process with workers: stopping or killing it leaves no process.

Each test starts a run with far more work than it lets finish, waits for the first crop (the
workers are busy), signals the main process, and then checks, from /proc, that every process
that descended from it (workers, fork server, resource tracker) is gone within a few seconds.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from roiops.cli.crop import KERNELS_NOTICE

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")

WORKERS = 2
STARTUP_SECONDS = 120  # a first run may compile the kernels
GONE_SECONDS = 10


def process_stat(pid):
    """``(ppid, state, start time)`` of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (command) "
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid):
    """``{pid: start time}`` of every live process below ``pid``."""
    stats = {int(entry.name): process_stat(entry.name) for entry in Path("/proc").iterdir()
             if entry.name.isdigit()}
    found, parents = {}, [pid]
    while parents:
        parent = parents.pop()
        for child, stat in stats.items():
            if stat and stat[0] == parent and stat[1] != "Z" and child not in found:
                found[child] = stat[2]
                parents.append(child)
    return found


def still_running(processes):
    """Those of ``{pid: start time}`` that still run (not exited, not a zombie, not reused)."""
    running = []
    for pid, start in processes.items():
        stat = process_stat(pid)
        if stat and stat[2] == start and stat[1] not in "ZX":
            running.append(pid)
    return running


@pytest.fixture
def busy_run(tmp_path, many_boxes):
    """Start ``roiops crop`` on 8 images with 400 boxes each (2 workers); return it once the
    workers write crops, with ``(process, processes below it, out folder, stderr file)``."""
    boxes, images = many_boxes(8, 400)
    out = tmp_path / "out"
    stderr = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "roiops.cli", "crop", str(boxes),
               "--images", str(images), "--out", str(out), "--size", "192",
               "--workers", str(WORKERS)]
    with open(stderr, "w") as err:
        # Files, not pipes: the processes that must exit must not keep a test's pipe open.
        # Its own process group, so that a test can signal the group as a terminal does.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
    family = {}
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not any(out.glob("*.png")):
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "no crop written"
            time.sleep(0.05)
        family = descendants(process.pid)
        assert len(family) >= WORKERS + 2, family  # workers, fork server, resource tracker
        yield process, family, out, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in still_running(family):  # only after a failure
            os.kill(pid, signal.SIGKILL)


def wait_until_gone(processes):
    deadline = time.monotonic() + GONE_SECONDS
    while still_running(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return still_running(processes)


def assert_only_whole_crops(out):
    """No temporary file is left, and every crop decodes completely."""
    assert not [path.name for path in out.iterdir() if path.suffix != ".png"]
    for path in out.iterdir():
        with Image.open(path) as image:
            image.load()


def test_kill_9_of_the_main_process_ends_every_process_below_it(busy_run):
    process, family, out, _ = busy_run
    assert process.poll() is None  # killed mid-run
    process.kill()
    process.wait()
    assert wait_until_gone(family) == []
    assert_only_whole_crops(out)


@pytest.mark.parametrize("signal_number, status, message", [
    (signal.SIGTERM, 143, "roiops crop: terminated"),
    (signal.SIGINT, 130, "roiops crop: interrupted"),
])
@pytest.mark.parametrize("to_group", [False, True], ids=["main", "group"])
def test_sigterm_and_sigint_stop_with_one_message(busy_run, signal_number, status, message,
                                                  to_group):
    """Sent to the main process alone (``kill``) or to its whole group (Ctrl-C in a terminal,
    ``kill -TERM -PGID``, service managers)."""
    process, family, out, stderr = busy_run
    assert process.poll() is None
    if to_group:
        os.killpg(process.pid, signal_number)
    else:
        process.send_signal(signal_number)
    assert process.wait(timeout=GONE_SECONDS) == status
    assert wait_until_gone(family) == []
    # The resource tracker, the last to exit, would print leaked semaphores here. (On a busy
    # machine loading the kernels may take long enough for the first-run notice.)
    lines = [line for line in stderr.read_text().splitlines() if line != KERNELS_NOTICE]
    assert lines == [message]
    assert_only_whole_crops(out)
