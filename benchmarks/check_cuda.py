"""roiops's CUDA (Triton) kernels against its CPU (Numba) kernels, on a GPU.

    python3 benchmarks/check_cuda.py --save cases.npz    # anywhere with torch: CPU results
    python3 benchmarks/check_cuda.py --check cases.npz   # on the GPU machine

What is checked, for every operator and direction, float32, float64, float16 and bfloat16
(crop_and_resize also uint8 images), both roi_align conventions and the three crop methods:

- the forwards and the image/input gradients equal the CPU kernels bit for bit (NaN where
  the CPU has NaN);
- the box gradients agree with the CPU within rounding (they sum in another fixed order);
- every gradient gives the same bits when run twice (no atomics, no race);
- two detection-sized workloads (roi_align [2,256,100,152] with 512 rois; crop_and_resize
  [2,64,64,256] with 512 boxes) compare by a SHA-256 of the result bytes, so the file stays
  small.

Two steps, because the GPU machine has other Python and Numba versions: compiling the CPU
kernels there would spend the lease's minutes. ``--save`` runs the CPU kernels here and
stores inputs, options and results; ``--check`` runs the CUDA kernels on those inputs. Exit
status 1 if any check fails; a JSON report with ``--report``.
"""
import argparse
import hashlib
import json
import sys
import time
import warnings

import numpy as np
import torch

import roiops.torch.ops as ops

ROI_CASES = [
    # (convention, aligned, roi_end_mode, sampling_ratio, spatial_scale, output_size)
    ("torchvision", True, 1, 2, 0.5, (7, 7)),
    ("torchvision", False, 1, -1, 0.7, (3, 5)),
    ("torchvision", True, 1, 0, 1.0, (7, 7)),
    ("mindspore", False, 0, -1, 0.7, (7, 7)),
    ("mindspore", False, 1, 2, 1.0, (3, 5)),
]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
CROP_METHODS = ("bilinear", "nearest", "bilinear_v2")
# Box gradients: relative to the largest magnitude of the CPU result; the half types round
# their float32 sums to half (a neighbouring half value is 1 ulp away).
TOLERANCE = {torch.float64: 1e-12, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DEFAULT_TOLERANCE = 2e-5


def _to_numpy(tensor):
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:  # stored as its float32 value (exact)
        tensor = tensor.float()
    return tensor.numpy()


def _from_numpy(array, dtype):
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def _digest(tensor):
    return hashlib.sha256(_to_numpy(tensor).tobytes()).hexdigest()


def _rois(rng, count, batch, height, width, scale):
    """Rois over and beyond a map of ``height x width`` (image units): inside, straddling,
    outside, reversed, tiny."""
    rois = np.zeros((count, 5))
    rois[:, 0] = rng.integers(0, batch, count)
    rois[:, 1] = rng.uniform(-0.2 * width, 1.1 * width, count) / scale
    rois[:, 2] = rng.uniform(-0.2 * height, 1.1 * height, count) / scale
    rois[:, 3] = rois[:, 1] + rng.uniform(-2, 0.6 * width, count) / scale
    rois[:, 4] = rois[:, 2] + rng.uniform(-2, 0.6 * height, count) / scale
    return rois


def _crop_inputs(rng):
    image = rng.standard_normal((2, 37, 45, 5)) * 40 + 100  # uint8 casts keep it positive
    boxes = rng.uniform(-0.3, 1.3, (24, 4))
    boxes[:3] = [[0, 0, 1, 1], [1, 1, 0, 0], [0.25, 0.5, 0.25, 0.5]]  # whole, flipped, point
    indices = rng.integers(0, 2, 24)
    return image, boxes, indices


def roi_calls(store):
    """(name, kind, call) of every roi_align check; ``call(device)`` returns a tensor.

    ``store`` maps names to arrays: ``--save`` fills it with the inputs, ``--check`` reads
    them back, so both steps run on the same inputs."""
    for case_index, (convention, aligned, mode, ratio, scale, size) in enumerate(ROI_CASES):
        options = (list(size), scale, ratio, aligned, convention, mode)
        inputs = f"roi{case_index}"
        if f"{inputs}.x" not in store:
            # 40 channels (a partial block of lanes), 23 x 31 pixels, 48 rois, stored in
            # float32 (exact in every dtype but the half ones, which round them).
            rng = np.random.default_rng(case_index)
            store[f"{inputs}.x"] = rng.standard_normal((2, 40, 23, 31), dtype=np.float32)
            store[f"{inputs}.rois"] = _rois(rng, 48, 2, 23, 31, scale)
            store[f"{inputs}.grads"] = rng.standard_normal((48, 40, *size), dtype=np.float32)
        for dtype_name, dtype in DTYPES.items():
            key = f"roi{case_index}_{dtype_name}"
            box_dtype = torch.float64 if dtype == torch.float64 else torch.float32

            def tensors(device, inputs=inputs, dtype=dtype, box_dtype=box_dtype):
                x = _from_numpy(store[f"{inputs}.x"], dtype)
                if dtype in (torch.float16, torch.bfloat16):  # the half types channels_last
                    x = x.contiguous(memory_format=torch.channels_last)
                return (x.to(device),
                        _from_numpy(store[f"{inputs}.rois"], box_dtype).to(device),
                        _from_numpy(store[f"{inputs}.grads"], dtype).to(device))

            def forward(device, tensors=tensors, options=options):
                x, rois, _ = tensors(device)
                return ops.roi_align(x, rois, *options)

            def grad_input(device, tensors=tensors, options=options):
                x, rois, grads = tensors(device)
                return ops.roi_align_grad_input(grads, rois, list(x.shape), *options)

            def grad_boxes(device, tensors=tensors, options=options):
                x, rois, grads = tensors(device)
                return ops.roi_align_grad_boxes(grads, x, rois, *options)

            yield f"{key}.forward", "exact", forward
            yield f"{key}.grad_input", "exact", grad_input
            yield f"{key}.grad_boxes", "close", grad_boxes


def crop_calls(store):
    """(name, kind, call) of every crop_and_resize check (see ``roi_calls``)."""
    if "crop.image" not in store:
        image, boxes, indices = _crop_inputs(np.random.default_rng(42))
        store["crop.image"], store["crop.boxes"], store["crop.indices"] = image, boxes, indices
        store["crop.grads"] = np.random.default_rng(43).standard_normal((24, 7, 9, 5),
                                                                        dtype=np.float32)
        store["crop.grads1"] = np.random.default_rng(44).standard_normal((24, 1, 1, 5),
                                                                         dtype=np.float32)
    image_dtypes = {**DTYPES, "uint8": torch.uint8}
    for dtype_name, dtype in image_dtypes.items():
        for method in CROP_METHODS:
            for data_format in ("NHWC", "NCHW"):
                for crop in ((7, 9), (1, 1)):
                    key = f"crop_{dtype_name}_{method}_{data_format}_{crop[0]}x{crop[1]}"
                    out_dtype = dtype if dtype.is_floating_point else torch.float32
                    box_dtype = torch.float64 if dtype == torch.float64 else torch.float32

                    def tensors(device, dtype=dtype, data_format=data_format, crop=crop,
                                out_dtype=out_dtype, box_dtype=box_dtype):
                        image = _from_numpy(store["crop.image"], torch.float64)
                        image = (image.round().clamp(0, 255) if dtype == torch.uint8
                                 else image).to(dtype)
                        grads = _from_numpy(store["crop.grads" if crop == (7, 9)
                                                  else "crop.grads1"], out_dtype)
                        if data_format == "NCHW":
                            image = image.permute(0, 3, 1, 2).contiguous()
                            grads = grads.permute(0, 3, 1, 2).contiguous()
                        return (image.to(device),
                                _from_numpy(store["crop.boxes"], box_dtype).to(device),
                                _from_numpy(store["crop.indices"], torch.int64).to(device),
                                grads.to(device))

                    def forward(device, tensors=tensors, method=method, crop=crop,
                                data_format=data_format):
                        image, boxes, indices, _ = tensors(device)
                        return ops.crop_and_resize(image, boxes, indices, list(crop), method,
                                                   0.25, data_format)

                    def grad_image(device, tensors=tensors, method=method,
                                   data_format=data_format, out_dtype=out_dtype):
                        image, boxes, indices, grads = tensors(device)
                        return ops.crop_and_resize_grad_image(grads, boxes, indices,
                                                              list(image.shape), method,
                                                              out_dtype, data_format)

                    def grad_boxes(device, tensors=tensors, method=method,
                                   data_format=data_format):
                        image, boxes, indices, grads = tensors(device)
                        return ops.crop_and_resize_grad_boxes(grads, image, boxes, indices,
                                                              method, data_format)

                    yield f"{key}.forward", "exact", forward
                    if dtype.is_floating_point:
                        yield f"{key}.grad_image", "exact", grad_image
                        if method == "bilinear":
                            yield f"{key}.grad_boxes", "close", grad_boxes


def large_calls(store):
    """Detection-sized workloads, compared by digest (inputs regenerated from seeds; their
    digests are stored too, so a different generator shows as such, not as a kernel bug)."""
    def roi_tensors(device):
        rng = np.random.default_rng(7)
        x = torch.from_numpy(rng.random((2, 256, 100, 152), dtype=np.float32))
        rois = torch.from_numpy(_rois(rng, 512, 2, 100, 152, 1 / 8)).float()
        grads = torch.from_numpy(rng.random((512, 256, 7, 7), dtype=np.float32))
        return x.to(device), rois.to(device), grads.to(device)

    def crop_tensors(device):
        rng = np.random.default_rng(8)
        image = torch.from_numpy(rng.random((2, 64, 64, 256), dtype=np.float32))
        start = rng.uniform(0, 0.7, (512, 2))
        boxes = np.concatenate([start, start + rng.uniform(0.1, 0.3, (512, 2))], axis=1)
        indices = torch.from_numpy(rng.integers(0, 2, 512))
        grads = torch.from_numpy(rng.random((512, 14, 14, 256), dtype=np.float32))
        return (image.to(device), torch.from_numpy(boxes).float().to(device),
                indices.to(device), grads.to(device))

    options = ([7, 7], 1 / 8, 2, True, "torchvision", 1)
    yield "large_roi.inputs", "digest", lambda device: torch.cat(
        [t.flatten().cpu() for t in roi_tensors(device)])
    yield "large_roi.forward", "digest", lambda device: ops.roi_align(
        *roi_tensors(device)[:2], *options)
    yield "large_roi.grad_input", "digest", lambda device: (lambda x, rois, grads: (
        ops.roi_align_grad_input(grads, rois, list(x.shape), *options)))(*roi_tensors(device))
    yield "large_crop.inputs", "digest", lambda device: torch.cat(
        [t.flatten().double().cpu() for t in crop_tensors(device)])
    yield "large_crop.forward", "digest", lambda device: (lambda image, boxes, indices, _: (
        ops.crop_and_resize(image, boxes, indices, [14, 14], "bilinear", 0.0, "NHWC")))(
        *crop_tensors(device))
    yield "large_crop.grad_image", "digest", lambda device: (lambda image, boxes, indices, g: (
        ops.crop_and_resize_grad_image(g, boxes, indices, list(image.shape), "bilinear",
                                       torch.float32, "NHWC")))(*crop_tensors(device))


def all_calls(store):
    yield from roi_calls(store)
    yield from crop_calls(store)
    yield from large_calls(store)


def save(path):
    store = {}
    results = {}
    calls = list(all_calls(store))  # fills the inputs first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN bins (0/0) under NumPy
        for name, kind, call in calls:
            result = call("cpu")
            if kind == "digest":
                results[f"{name}.digest"] = np.array(_digest(result))
            else:
                results[f"{name}.result"] = _to_numpy(result)
                results[f"{name}.dtype"] = np.array(str(result.dtype))
    np.savez_compressed(path, **store, **results)
    print(f"saved {len(calls)} CPU results to {path}")


def _compare(kind, actual, expected, tolerance):
    """None when ``actual`` passes, else a short description of the difference."""
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    nan_actual, nan_expected = np.isnan(actual), np.isnan(expected)
    if not np.array_equal(nan_actual, nan_expected):
        return f"NaN at {int((nan_actual != nan_expected).sum())} other positions"
    a = np.where(nan_actual, 0, actual).astype(np.float64)
    e = np.where(nan_expected, 0, expected).astype(np.float64)
    if kind == "exact":
        different = a != e
        if different.any():
            return (f"{int(different.sum())} of {a.size} differ, max |diff| "
                    f"{np.abs(a - e).max():.3g}")
        return None
    scale = max(np.abs(e).max(), 1e-30)
    error = np.abs(a - e).max() / scale
    return None if error <= tolerance else f"max |diff| / max |cpu| = {error:.3g}"


def check(path, report_path):
    stored = dict(np.load(path))
    device = torch.device("cuda")
    failures, rows = 0, []
    started = time.perf_counter()
    for name, kind, call in all_calls(stored):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            first = call(device)
            problem = None
            if kind == "digest":
                if _digest(first) != str(stored[f"{name}.digest"]):
                    problem = "digest differs from the CPU's"
            else:
                expected_dtype = str(stored[f"{name}.dtype"])
                if str(first.dtype) != expected_dtype:
                    problem = f"dtype {first.dtype} != {expected_dtype}"
                else:
                    problem = _compare(kind, _to_numpy(first), stored[f"{name}.result"],
                                       TOLERANCE.get(first.dtype, DEFAULT_TOLERANCE))
            if problem is None and ".grad" in name:
                if not torch.equal(first, call(device)):
                    problem = "not the same bits when run twice"
        status = "ok" if problem is None else f"FAIL: {problem}"
        failures += problem is not None
        rows.append({"case": name, "kind": kind, "status": status})
        if problem is not None:
            print(f"{name}: {status}", flush=True)
    seconds = time.perf_counter() - started
    print(f"{len(rows) - failures} of {len(rows)} checks passed on "
          f"{torch.cuda.get_device_name(device)} in {seconds:.0f} s")
    if report_path:
        with open(report_path, "w") as report:
            json.dump({"device": torch.cuda.get_device_name(device), "rows": rows}, report,
                      indent=1)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="NPZ", help="run the CPU kernels, store inputs+results")
    group.add_argument("--check", metavar="NPZ", help="run the CUDA kernels against NPZ")
    parser.add_argument("--report", metavar="JSON", help="with --check: every case's status")
    args = parser.parse_args()
    if args.save:
        save(args.save)
        return 0
    return 1 if check(args.check, args.report) else 0


if __name__ == "__main__":
    sys.exit(main())
