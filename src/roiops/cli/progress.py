"""The progress bar of ``roiops crop``: tqdm's, on stderr, only when stderr is a terminal."""
from tqdm import tqdm


def is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """``roiops crop  42%|####      | 420/1000 [00:01<00:01, 310 crops/s]`` on ``stream``.

    Drawn only when ``enabled`` (by default: when ``stream`` is a terminal, whatever stdout
    is), so that logs and pipes stay clean; :meth:`write` prints a line above the bar, and
    :meth:`close` clears it.
    """

    def __init__(self, total, stream, enabled=None, label="roiops crop"):
        self.stream = stream
        enabled = is_terminal(stream) if enabled is None else enabled
        self.bar = tqdm(total=total, desc=label, unit=" crops", file=stream, leave=False,
                        disable=not enabled or total == 0, dynamic_ncols=True)

    def update(self, done=1):
        self.bar.update(done)

    def write(self, line):
        """Print ``line`` on the stream (above the bar, which is redrawn)."""
        if self.bar.disable:
            print(line, file=self.stream, flush=True)
        else:
            self.bar.write(line, file=self.stream)

    def close(self):
        self.bar.close()
