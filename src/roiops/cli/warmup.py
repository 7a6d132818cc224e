"""``roiops warmup``: compile every CPU kernel variant ahead of time, in parallel processes.

The Numba kernels compile on first use for each combination of argument types they meet
(image dtype, memory layout, read-only or not, the path a call takes) and cache the machine
code on disk. A Docker build or a cluster image runs this once, so that no job pays the
compilation. Each variant is one small call of the public API that takes that path; the
calls run in worker processes, which share Numba's on-disk cache (writes are atomic).

Where the cache goes is Numba's rule: ``NUMBA_CACHE_DIR`` if set; else ``__pycache__``
folders next to roiops's sources if they are writable; else a per-user cache folder
(``~/.cache/numba/...``). Set the same ``NUMBA_CACHE_DIR`` (or none) when running the jobs.
"""
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

import roiops

# Image dtypes of crop_and_resize (integer images are read as they are, floats in F).
CROP_IMAGE_DTYPES = ("uint8", "uint16", "int8", "int16", "int32", "int64", "float16",
                     "float32", "float64")
FLOAT_DTYPES = ("float16", "float32", "float64")
CROP_METHODS = ("bilinear", "nearest", "bilinear_v2")


@dataclass(frozen=True)
class Variant:
    name: str
    run: Callable[[], object]


def _layout(array, layout):
    """``array`` as the kernels will meet it: ``C`` contiguous, ``strided`` (a view with a
    gap after every element: what transposed and sliced inputs compile as), ``read-only``."""
    if layout == "strided":
        spread = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
        spread[..., ::2] = array
        return spread[..., ::2]
    if layout == "read-only":
        array = array.copy()
        array.flags.writeable = False
    return array


def _crop_boxes():
    return np.array([[0.1, 0.2, 0.8, 0.9], [0.9, 0.8, -0.1, 0.3]], np.float32)


def _crop_forward(dtype, layout, method, depth, crop_size):
    image = _layout(np.ones((2, 6, 7, depth), dtype), layout)
    roiops.crop_and_resize(image, _crop_boxes(), np.array([0, 1]), crop_size, method=method)


def _crop_grad_image(dtype, layout, method):
    grads = _layout(np.ones((2, 3, 4, 3), dtype), layout)
    roiops.crop_and_resize_grad_image(grads, _crop_boxes(), np.array([0, 1]), (2, 6, 7, 3),
                                      method=method)


def _crop_grad_boxes(dtype, layout):
    grads = _layout(np.ones((2, 3, 4, 3), dtype), layout)
    image = _layout(np.ones((2, 6, 7, 3), dtype), layout)
    roiops.crop_and_resize_grad_boxes(grads, image, _crop_boxes(), np.array([0, 1]))


def _align_case(dtype, dense):
    """(features, rois): two rois on a 6x8 map, or 64 of them (the channels-last path)."""
    features = np.ones((2, 3, 6, 8), dtype)
    count = 64 if dense else 2
    rois = np.tile(np.array([[0, 1, 1, 6, 5], [1, 0, 0, 7, 5]], dtype), (count // 2, 1))
    return features, rois


def _align_forward(dtype, layout, dense):
    features, rois = _align_case(dtype, dense)
    roiops.roi_align(_layout(features, layout), rois, 2, sampling_ratio=2)


def _align_grad_input(dtype, layout, dense):
    features, rois = _align_case(dtype, dense)
    grads = _layout(np.ones((len(rois), 3, 2, 2), dtype), layout)
    roiops.roi_align_grad_input(grads, rois, features.shape, 2, sampling_ratio=2)


def _align_grad_boxes(dtype, layout):
    features, rois = _align_case(dtype, False)
    grads = np.ones((len(rois), 3, 2, 2), dtype)
    roiops.roi_align_grad_boxes(grads, _layout(features, layout), rois, 2, sampling_ratio=2)


def _multi_scale(dtype, layout, dense):
    """Multi-scale RoI Align on a pyramid of two levels: forward and both gradients; float16
    also in torchvision's half arithmetic (its own plan)."""
    features, rois = _align_case(dtype, dense)
    pyramid = [_layout(features, layout), _layout(np.ones((2, 3, 3, 4), dtype), layout)]
    levels = np.arange(len(rois)) % 2
    scales = [1.0, 0.5]
    roiops.multi_scale_roi_align(pyramid, rois, 2, scales, sampling_ratio=2, levels=levels)
    grads = np.ones((len(rois), 3, 2, 2), dtype)
    roiops.multi_scale_roi_align_grad_input(grads, rois, levels, [p.shape for p in pyramid],
                                            2, scales, sampling_ratio=2)
    roiops.multi_scale_roi_align_grad_boxes(grads, pyramid, rois, levels, 2, scales,
                                            sampling_ratio=2)
    if dtype == "float16":
        from ..compat.torchvision import MultiScaleRoIAlign

        MultiScaleRoIAlign(["a", "b"], 2, 2)(dict(zip("ab", pyramid)), [rois[:, 1:]],
                                             [(6, 8)])


def _ps_case(dtype, layout):
    """(maps, rois, grads): position-sensitive maps of 2 output channels of 2x2 bins."""
    maps = _layout(np.ones((2, 8, 6, 8), dtype), layout)
    rois = np.array([[0, 1, 1, 6, 5], [1, 0, 0, 7, 5]], dtype)
    return maps, rois, _layout(np.ones((2, 2, 2, 2), dtype), layout)


def _ps_align(dtype, layout):
    maps, rois, grads = _ps_case(dtype, layout)
    roiops.ps_roi_align(maps, rois, 2, sampling_ratio=2)
    roiops.ps_roi_align_grad_input(grads, rois, maps.shape, 2, sampling_ratio=2)


def _ps_align_grad_boxes(dtype, layout):
    maps, rois, grads = _ps_case(dtype, layout)
    roiops.ps_roi_align_grad_boxes(grads, maps, rois, 2, sampling_ratio=2)


def _ps_pool(dtype, layout):
    maps, rois, grads = _ps_case(dtype, layout)
    roiops.ps_roi_pool(maps, rois, 2)
    roiops.ps_roi_pool_grad_input(grads, rois, maps.shape, 2)


def _pool(dtype, layout, dense):
    features, rois = _align_case(dtype, dense)
    out, argmax = roiops.roi_pool(_layout(features, layout), rois, 2, return_argmax=True)
    grads = _layout(np.ones(out.shape, dtype), layout)
    roiops.roi_pool_grad_input(grads, argmax, rois, features.shape)


def _variant(name, function, *args):
    return Variant(name, lambda: function(*args))


def variants():
    """Every variant, named ``operator dtype layout [path]``: enough calls to compile each
    kernel for each argument type a public call can give it."""
    found = []
    for dtype in CROP_IMAGE_DTYPES:
        for layout in ("C", "strided") + (("read-only",) if dtype == "uint8" else ()):
            for method in CROP_METHODS:
                found.append(_variant(f"crop_and_resize {dtype} {layout} {method}",
                                      _crop_forward, dtype, layout, method, 3, (3, 4)))
            # nearest compiles the row-by-row path that deep bilinear crops take too; large
            # outputs take streaming stores.
            if dtype in ("float32", "float64") and layout == "C":
                found.append(_variant(f"crop_and_resize {dtype} {layout} bilinear streamed",
                                      _crop_forward, dtype, layout, "bilinear", 64,
                                      (256, 128)))
    for dtype in FLOAT_DTYPES:
        for layout in ("C", "strided"):
            for method in CROP_METHODS:
                found.append(_variant(f"crop_and_resize_grad_image {dtype} {layout} {method}",
                                      _crop_grad_image, dtype, layout, method))
            found.append(_variant(f"crop_and_resize_grad_boxes {dtype} {layout}",
                                  _crop_grad_boxes, dtype, layout))
            for dense, path in ((False, "in place"), (True, "channels last")):
                found.append(_variant(f"roi_align {dtype} {layout} {path}",
                                      _align_forward, dtype, layout, dense))
                found.append(_variant(f"roi_align_grad_input {dtype} {layout} {path}",
                                      _align_grad_input, dtype, layout, dense))
            found.append(_variant(f"roi_align_grad_boxes {dtype} {layout}",
                                  _align_grad_boxes, dtype, layout))
            for dense, path in ((False, "in place"), (True, "channels last")):
                found.append(_variant(f"roi_pool {dtype} {layout} {path}", _pool, dtype,
                                      layout, dense))
            found.append(_variant(f"ps_roi_align {dtype} {layout}", _ps_align, dtype, layout))
            found.append(_variant(f"ps_roi_align_grad_boxes {dtype} {layout}",
                                  _ps_align_grad_boxes, dtype, layout))
            found.append(_variant(f"ps_roi_pool {dtype} {layout}", _ps_pool, dtype, layout))
            for dense, path in ((False, "in place"), (True, "channels last")):
                found.append(_variant(f"multi_scale_roi_align {dtype} {layout} {path}",
                                      _multi_scale, dtype, layout, dense))
    return found


def cache_location():
    """Where Numba writes roiops's compiled kernels, by its rules (see the module docstring)."""
    from roiops.crop_and_resize import cpu

    if os.environ.get("NUMBA_CACHE_DIR"):
        return f"{os.environ['NUMBA_CACHE_DIR']} (NUMBA_CACHE_DIR)"
    cache = getattr(cpu._forward_bands, "_cache", None)
    folder = getattr(cache, "_cache_path", None)  # Numba internals: absent, name the rule
    if folder is None:
        return "__pycache__ beside roiops's modules, else Numba's per-user cache folder"
    if os.path.dirname(folder) == os.path.dirname(cpu.__file__):
        return f"the __pycache__ folders beside roiops's modules (such as {folder})"
    return f"{folder} (Numba's per-user cache: roiops's folders are not writable)"


def _compile(name):
    """Run the variant ``name`` (in a worker process); (name, seconds, error or None)."""
    start = time.perf_counter()
    try:
        next(v for v in variants() if v.name == name).run()
    except Exception as error:  # reported by the parent, which exits 1
        return name, time.perf_counter() - start, f"{type(error).__name__}: {error}"
    return name, time.perf_counter() - start, None


def run(jobs=None, only=(), list_only=False, stdout=None):
    """Compile the variants whose names contain one of ``only`` (all if empty) in ``jobs``
    processes (default: one per CPU); with ``list_only``, print their names instead.
    Returns the exit status: 0, or 1 if a variant failed."""
    stdout = stdout or sys.stdout
    names = [v.name for v in variants() if not only or any(word in v.name for word in only)]
    if list_only:
        for name in names:
            print(name, file=stdout)
        return 0
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(names) or 1))
    print(f"roiops warmup: compiling {len(names)} kernel variants in {jobs} "
          f"process{'es' if jobs > 1 else ''}", file=stdout, flush=True)
    start = time.perf_counter()
    failed = 0
    for done, (name, seconds, error) in enumerate(_results(names, jobs), 1):
        status = f"FAILED: {error}" if error else f"{seconds:.1f} s"
        print(f"  [{done}/{len(names)}] {name}: {status}", file=stdout, flush=True)
        failed += error is not None
    print(f"compiled {len(names) - failed} of {len(names)} variants in "
          f"{time.perf_counter() - start:.1f} s; cache: {cache_location()}", file=stdout)
    return 1 if failed else 0


def _results(names, jobs):
    if jobs == 1:
        yield from map(_compile, names)
        return
    # Fresh interpreters (spawn): a fork would copy this process's threads' state.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap_unordered(_compile, names)
