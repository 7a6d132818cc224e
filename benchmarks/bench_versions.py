"""Two checkouts of roiops side by side on the NumPy operators: did a change cost speed?

    git worktree add /tmp/roiops-old <commit>          # the old version, once
    python benchmarks/bench_versions.py /tmp/roiops-old/src src [--rounds 7] [--threads 2]

Each round runs one process per checkout (``PYTHONPATH`` set to its ``src``), the order
alternating; a process warms every call (its Numba cache is its checkout's), then times each
call as the median of ``--repeats`` runs. The table gives, per call, the median over rounds of
each checkout and new/old. Workloads are BENCHMARKS.md's (float32): roi_align on an FPN level
([2,256,100,152], 512 rois 7x7, sampling_ratio 2 and adaptive), ps_roi_align on R-FCN's maps
([2,1029,100,152], 512 rois 7x7), and a call small enough that per-call overheads show.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent("""
    import json, sys, time
    import numba
    import numpy as np
    import roiops

    numba.set_num_threads(int(sys.argv[1]))
    repeats = int(sys.argv[2])
    rng = np.random.default_rng(0)

    def rois(count, size=(100, 152), stride=8):
        x1 = rng.uniform(0, size[1] * stride - 200, count)
        y1 = rng.uniform(0, size[0] * stride - 200, count)
        sides = rng.uniform(16, 400, (2, count))
        index = rng.integers(0, 2, count)
        return np.stack([index, x1, y1, x1 + sides[0], y1 + sides[1]], 1).astype(np.float32)

    level = rng.standard_normal((2, 256, 100, 152), dtype=np.float32)
    scores = rng.standard_normal((2, 1029, 100, 152), dtype=np.float32)
    boxes = rois(512)
    grads = np.ones((512, 256, 7, 7), np.float32)
    tiny = rng.standard_normal((1, 4, 8, 8), dtype=np.float32)
    tiny_box = np.array([[0, 1, 1, 5, 6]], np.float32)
    calls = {
        "roi_align 512 rois, sampling_ratio 2": lambda: roiops.roi_align(
            level, boxes, 7, spatial_scale=1 / 8, sampling_ratio=2, aligned=True),
        "roi_align 512 rois, adaptive": lambda: roiops.roi_align(
            level, boxes, 7, spatial_scale=1 / 8, sampling_ratio=0, aligned=True),
        "roi_align_grad_input 512 rois": lambda: roiops.roi_align_grad_input(
            grads, boxes, level.shape, 7, spatial_scale=1 / 8, sampling_ratio=2, aligned=True),
        "ps_roi_align 512 rois, 21 classes": lambda: roiops.ps_roi_align(
            scores, boxes, 7, spatial_scale=1 / 8, sampling_ratio=2),
        "roi_align, 1 roi on [1,4,8,8]": lambda: roiops.roi_align(tiny, tiny_box, 2,
                                                                  sampling_ratio=2),
    }
    times = {}
    for name, call in calls.items():
        call()
        runs = []
        for _ in range(repeats if "1 roi" not in name else 50 * repeats):
            start = time.perf_counter()
            call()
            runs.append(time.perf_counter() - start)
        times[name] = sorted(runs)[len(runs) // 2]
    print(json.dumps(times))
""")


def run(source, threads, repeats):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(source))
    output = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(repeats)],
                            env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the old checkout's src folder")
    parser.add_argument("new", help="the new checkout's src folder")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = {"old": [], "new": []}
    for round_number in range(args.rounds):
        order = ["old", "new"] if round_number % 2 == 0 else ["new", "old"]
        for which in order:
            results[which].append(run(getattr(args, which), args.threads, args.repeats))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds, {args.threads} threads\n")
    print("| call | old (ms) | new (ms) | new / old |")
    print("|---|---:|---:|---:|")
    for name in results["old"][0]:
        old = statistics.median(r[name] for r in results["old"]) * 1e3
        new = statistics.median(r[name] for r in results["new"]) * 1e3
        print(f"| {name} | {old:.3f} | {new:.3f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
