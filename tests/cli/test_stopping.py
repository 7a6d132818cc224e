"""Ctrl-C and SIGTERM stop ``roiops crop`` even when the exception their handler raises is
swallowed on the way, as Python does in a finalizer or a callback from C."""
import signal

import pytest

from roiops.cli import stopping, worker
from roiops.cli.main import main


@pytest.mark.parametrize("signal_number, status, message", [
    (signal.SIGINT, 130, "roiops crop: interrupted"),
    (signal.SIGTERM, 143, "roiops crop: terminated"),
])
def test_a_signal_whose_exception_is_swallowed_still_stops_the_job(
        dataset, monkeypatch, capsys, signal_number, status, message):
    crop_image = worker.crop_image
    cropped = []

    def signalled_during_the_first_image(task):
        if not cropped:
            try:  # as in a __del__: Python prints "Exception ignored" and goes on
                signal.raise_signal(signal_number)
            except BaseException:
                pass
        cropped.append(task.path)
        return crop_image(task)

    monkeypatch.setattr(worker, "crop_image", signalled_during_the_first_image)
    out = dataset / "out"
    assert main(["crop", str(dataset / "coco.json"), "--images", str(dataset / "images"),
                 "--out", str(out), "--size", "8", "--workers", "1"]) == status
    assert len(cropped) == 1  # of 3 images: stopped after the first, not at the end
    assert len(list(out.glob("*.png"))) <= 2  # the first image's crops at most
    assert capsys.readouterr().err.splitlines()[-1] == message


def test_the_handlers_are_restored_and_nothing_is_left_pending(dataset):
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt), stopping.signals_stop():
        signal.raise_signal(signal.SIGINT)
    assert {number: signal.getsignal(number) for number in before} == before
    with stopping.signals_stop():
        stopping.check()  # a new command starts with no signal received
