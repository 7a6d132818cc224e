"""A small progress bar for the command line, drawn on stderr only when it is a terminal."""
import sys
import time


class Progress:
    """A one-line bar ``label [#####.....] 120/400 crops  310 crops/s  ETA 1s``.

    Silent (every method a no-op) unless ``enabled``; by default it is enabled when both stdout
    and stderr are terminals, so piped or redirected runs and logs stay clean. Redraws at most
    ``rate`` times a second; :meth:`close` clears the line.
    """

    def __init__(self, total, label="", unit="crops", stream=None, enabled=None, rate=10.0):
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = _is_terminal(self.stream) and _is_terminal(sys.stdout)
        self.enabled = enabled and total > 0
        self.count = 0
        self.start = time.perf_counter()
        self._interval = 1.0 / rate
        self._last_draw = 0.0
        self._width = 0

    def update(self, done=1):
        """Advance by ``done`` units."""
        self.count += done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw >= self._interval or self.count >= self.total:
            self._last_draw = now
            self._draw(now - self.start)

    def write(self, line):
        """Print ``line`` on the stream above the bar (the bar is redrawn on the next update)."""
        self._clear()
        print(line, file=self.stream, flush=True)

    def close(self):
        self._clear()

    def _draw(self, elapsed):
        fraction = min(1.0, self.count / self.total)
        filled = int(fraction * 30)
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("inf")
        eta_text = f"ETA {eta:.0f}s" if eta != float("inf") else "ETA ?"
        text = (f"{self.label}[{'#' * filled}{'.' * (30 - filled)}] {self.count}/{self.total} "
                f"{self.unit}  {rate:.0f} {self.unit}/s  {eta_text}")
        padding = " " * max(0, self._width - len(text))
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._width = len(text)

    def _clear(self):
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
