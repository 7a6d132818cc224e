"""The alternating timer of ``roiops bench`` and of the benchmark scripts (``benchmarks/``).

One timer for both, so the command and the recorded benchmarks measure the same way. Not part
of the public API: its home is here rather than in the CLI so that scripts outside the
package can import it without importing the command.
"""
import random
import statistics
import time
from collections.abc import Callable, Mapping


def median_seconds(contenders: Mapping[str, Callable[[], object]], repeats: int,
                   warmup: int = 2, settle: float = 0.01) -> dict[str, float]:
    """Median seconds of each callable over ``repeats`` turns, contenders taking turns.

    Each round gives every contender a turn, in a fresh (seeded) random order. A turn calls
    the contender untimed for at least ``settle`` seconds (at least once), then times one
    call. Timing each call right after another library's would measure that library's idle
    threads too: OpenMP and Eigen pools spin for milliseconds after an op returns, and on a
    2-core machine the spinning threads take the cores the next library needs. Measured here,
    roiops's spinning worker added 2 to 5 ms to TensorFlow's 5 ms CropAndResizeGradImage when
    TensorFlow ran right after it; TensorFlow's spinners slowed roiops the same way.
    """
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    order = list(contenders)
    shuffler = random.Random(0)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            settled = time.perf_counter() + settle
            contenders[name]()
            while time.perf_counter() < settled:
                contenders[name]()
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
