"""roiops calls in bursts after idle time, against back-to-back calls (no peers needed).

    python benchmarks/bench_idle.py [--threads 2] [--repeats 15]

A pool of threads that sleeps between calls can make the first call after idle time slow
(Numba's OpenMP pool took 11 ms to wake on our VM; roiops's kernels now run on their own
pool of Python threads, ``roiops._threads``). This prints, for the [2,64,64,256] forward
(``out=``) and GradImage and for a small crop (5 boxes of a [1,480,640,3] uint8 image to
64x64, with ``--threads`` threads and with one), the median back-to-back time and the median
of each call index over ``--repeats`` bursts of 4 calls, each burst after 30 ms and after
100 ms of sleep.
"""
import time

import numba
import numpy as np

import roiops
from harness import parse_args
from roiops.cli.bench import crop_inputs

BURST = 4
IDLE_SECONDS = (0.03, 0.1)


def on_one_thread(call):
    """``call`` with Numba's pool limited to the calling thread (a per-thread setting)."""
    def limited():
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            call()
        finally:
            numba.set_num_threads(threads)
    return limited


def kernels(rng):
    image, boxes, box_indices = crop_inputs(rng, (2, 64, 64, 256), 512)
    grads = rng.standard_normal((512, 14, 14, 256), dtype=np.float32)
    out = np.empty((512, 14, 14, 256), np.float32)
    photo, photo_boxes, photo_indices = crop_inputs(rng, (1, 480, 640, 3), 5)
    photo = (photo * 255).astype(np.uint8)

    def small_crop():
        roiops.crop_and_resize(photo, photo_boxes, photo_indices, (64, 64))

    return {
        "[2,64,64,256] forward (out=)": lambda: roiops.crop_and_resize(
            image, boxes, box_indices, (14, 14), out=out),
        "[2,64,64,256] GradImage": lambda: roiops.crop_and_resize_grad_image(
            grads, boxes, box_indices, image.shape),
        "small crop": small_crop,
        "small crop, 1 thread": on_one_thread(small_crop),
    }


def median_ms(samples, axis=None):
    return 1e3 * np.median(samples, axis=axis)


def main():
    args = parse_args(__doc__)
    print("| kernel | back to back ms | idle ms | " + " | ".join(
        f"call {k + 1} of a burst" for k in range(BURST)) + " |")
    print("|---|---|---|" + "---|" * BURST)
    for name, kernel in kernels(np.random.default_rng(0)).items():
        kernel()
        back_to_back = []
        for _ in range(20):
            start = time.perf_counter()
            kernel()
            back_to_back.append(time.perf_counter() - start)
        for idle in IDLE_SECONDS:
            bursts = []
            for _ in range(args.repeats):
                time.sleep(idle)
                burst = []
                for _ in range(BURST):
                    start = time.perf_counter()
                    kernel()
                    burst.append(time.perf_counter() - start)
                bursts.append(burst)
            cells = " | ".join(f"{value:.2f}" for value in median_ms(bursts, axis=0))
            print(f"| {name} | {median_ms(back_to_back):.2f} | {1e3 * idle:.0f} | {cells} |")


if __name__ == "__main__":
    main()
