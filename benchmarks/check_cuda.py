"""roiops's CUDA (Triton) kernels against its CPU (Numba) kernels, on a GPU.

    python3 benchmarks/check_cuda.py --save cases.npz    # anywhere with torch: CPU results
    python3 benchmarks/check_cuda.py --check cases.npz   # on the GPU machine
    python3 benchmarks/check_cuda.py --check cases.npz --device cpu   # the plumbing, here

What is checked, through the torch custom ops, for every operator and direction in float32,
float64, float16 and bfloat16 (every CPU op accepts the four; half-type maps channels_last,
so the kernels' strides are exercised): roi_align (both conventions), crop_and_resize (the
three methods, both layouts, also uint8 images), roi_pool (result and argmax, maps with ties,
NaN and -inf, a roi beyond int32 after scaling; torchvision's float16 half arithmetic, which
has its own device kernel), ps_roi_align, ps_roi_pool, multi_scale_roi_align (two levels,
rois on no level) and roi_align_rotated (detectron2's and mmcv's conventions). The first
case of each operator runs in the four dtypes, its other cases, which vary the options
(kernel switches), in float32 and float64:

- the forwards, roi_pool's argmax and the image/input gradients equal the CPU kernels bit for
  bit (NaN where the CPU has NaN; multi_scale_roi_align's per-level gradients compared as
  one concatenation);
- the box gradients (roi_align, crop_and_resize bilinear, ps_roi_align, multi_scale_roi_align,
  roi_align_rotated) agree with the CPU within rounding (they sum in another fixed order);
- every gradient gives the same bits when run twice (no atomics, no race);
- four detection-sized workloads (roi_align [2,256,100,152] with 512 rois; crop_and_resize
  [2,64,64,256] with 512 boxes; roi_pool [2,256,100,152] with 512 rois; ps_roi_align
  [2,21*7*7,50,76] with 512 rois) compare by a SHA-256 of the result bytes, so the file stays
  small.

Some CUDA paths run the CPU kernels on host copies (roiops.torch.ps_roi_ops,
roiops.torch.multi_scale_ops): torchvision's half arithmetic of ps_roi_align, ps_roi_pool and
multi_scale_roi_align is not checked (nothing of the GPU's to test, and Numba would compile
its kernels on the lease); multi_scale_roi_align's box gradient is, as a check of that round
trip.

Two steps, because the GPU machine has other Python and Numba versions: compiling the CPU
kernels there would spend the lease's minutes. ``--save`` runs the CPU kernels here and
stores inputs, options and results; ``--check`` runs the kernels of ``--device`` (default
cuda; ``cpu`` runs the CPU kernels again, which must pass every check) on those inputs. Exit
status 1 if any check fails; a JSON report with ``--report``.
"""
import argparse
import hashlib
import json
import platform
import sys
import time
import warnings

import numpy as np
import torch

import roiops.torch.multi_scale_ops as multi_scale_ops
import roiops.torch.ops as ops
import roiops.torch.ps_roi_ops as ps_ops
import roiops.torch.roi_pool_ops as pool_ops
import roiops.torch.rotated_ops as rotated_ops

ROI_CASES = [
    # (convention, aligned, roi_end_mode, sampling_ratio, spatial_scale, output_size)
    ("torchvision", True, 1, 2, 0.5, (7, 7)),
    ("torchvision", False, 1, -1, 0.7, (3, 5)),
    ("torchvision", True, 1, 0, 1.0, (7, 7)),
    ("mindspore", False, 0, -1, 0.7, (7, 7)),
    ("mindspore", False, 1, 2, 1.0, (3, 5)),
]
POOL_CASES = [((3, 5), 0.5), ((7, 7), 0.7)]  # (output_size, spatial_scale)
# (output_size, output channels, spatial_scale, ps_roi_align's sampling_ratio): the inputs are
# shared by ps_roi_align and ps_roi_pool; 45 and 42 channels (partial blocks of lanes)
PS_CASES = [((3, 3), 5, 0.5, 2), ((2, 3), 7, 0.7, -1)]
MULTI_SCALE_CASES = [((3, 3), 2, False), ((2, 3), -1, True)]  # (size, sampling_ratio, aligned)
MULTI_SCALE_SCALES = [1 / 4, 1 / 8]
ROTATED_CASES = [
    # (output_size, spatial_scale, sampling_ratio, aligned, clockwise, convention)
    ((3, 3), 0.5, 0, True, False, "detectron2"),
    ((2, 3), 1.0, 2, False, True, "mmcv"),
]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
# The dtypes of a case that varies the options of an operator's first case.
OPTION_DTYPES = ("float32", "float64")
HALF_TYPES = (torch.float16, torch.bfloat16)
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


def _box_dtype(dtype):
    """The rois' dtype of maps of ``dtype``: float64 with float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _maps(array, dtype, device):
    """Maps of ``dtype`` on ``device``; the half types channels_last (strides honoured)."""
    maps = _from_numpy(array, dtype)
    if dtype in HALF_TYPES:
        maps = maps.contiguous(memory_format=torch.channels_last)
    return maps.to(device)


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


def _rotated_rois(rng, count, batch, height, width, scale, degrees):
    """Rotated rois ``(index, cx, cy, w, h, angle)`` over and beyond the map: any angle
    (one turn and a half), a zero width."""
    rois = np.zeros((count, 6))
    rois[:, 0] = rng.integers(0, batch, count)
    rois[:, 1] = rng.uniform(-0.2 * width, 1.2 * width, count) / scale
    rois[:, 2] = rng.uniform(-0.2 * height, 1.2 * height, count) / scale
    rois[:, 3] = rng.uniform(0, 0.6 * width, count) / scale
    rois[:, 4] = rng.uniform(0, 0.6 * height, count) / scale
    rois[:, 5] = rng.uniform(-180, 360, count) * (1 if degrees else np.pi / 180)
    rois[0, 3] = 0.0
    return rois


def _inputs(store, prefix, seed, make):
    """``prefix``, after storing the inputs ``make(rng)`` returns (a dict of arrays) under
    ``prefix.<name>`` unless there already: ``--save`` fills ``store`` with them, ``--check``
    reads them back, so both steps run on the same inputs. Maps are stored in float32 (exact
    in every dtype but the half ones, which round them)."""
    if not any(key.startswith(f"{prefix}.") for key in store):
        for name, array in make(np.random.default_rng(seed)).items():
            store[f"{prefix}.{name}"] = array
    return prefix


def _image_tensors(store, prefix, dtype, box_dtype=None):
    """``tensors(device)`` of stored ``.x`` (maps), ``.rois`` and ``.grads``."""
    def tensors(device):
        return (_maps(store[f"{prefix}.x"], dtype, device),
                _from_numpy(store[f"{prefix}.rois"], box_dtype or _box_dtype(dtype)).to(device),
                _from_numpy(store[f"{prefix}.grads"], dtype).to(device))
    return tensors


def _variants(cases):
    """``(index, case, dtype name, dtype)``: the first case in every dtype, the others (other
    options, so other kernel switches) in OPTION_DTYPES."""
    for index, case in enumerate(cases):
        for dtype_name in DTYPES if index == 0 else OPTION_DTYPES:
            yield index, case, dtype_name, DTYPES[dtype_name]


def _checks(key, tensors, directions, kind=None):
    """``(name, kind, call)`` per direction: ``directions`` maps a direction to ``(kind,
    function)``, ``function`` taking the tensors ``tensors(device)`` returns; ``call(device)``
    returns one tensor. ``kind`` overrides every direction's (the digest workloads)."""
    for direction, (direction_kind, function) in directions.items():
        yield (f"{key}.{direction}", kind or direction_kind,
               lambda device, function=function: function(*tensors(device)))


def _only(directions, *names):
    return {name: directions[name] for name in names}


def _directions(options, forward, grad_input, grad_boxes=None):
    """The checked directions of an operator whose custom ops take the common argument order:
    ``forward(x, rois, *options)``, ``grad_input(grads, rois, x's shape, *options)`` and, if
    it has one, ``grad_boxes(grads, x, rois, *options)``; all exact but the box gradient."""
    directions = {
        "forward": ("exact", lambda x, rois, grads: forward(x, rois, *options)),
        "grad_input": ("exact", lambda x, rois, grads: grad_input(grads, rois, list(x.shape),
                                                                  *options))}
    if grad_boxes is not None:
        directions["grad_boxes"] = ("close", lambda x, rois, grads: grad_boxes(grads, x, rois,
                                                                               *options))
    return directions


# --- roi_align ------------------------------------------------------------------------------

def _roi_align_directions(options):
    """``options``: (output_size, spatial_scale, sampling_ratio, aligned, convention,
    roi_end_mode)."""
    return _directions(options, ops.roi_align, ops.roi_align_grad_input,
                       ops.roi_align_grad_boxes)


def roi_calls(store):
    """(name, kind, call) of every roi_align check; ``call(device)`` returns a tensor (the
    pattern of every ``*_calls``: ``store`` holds the inputs, see ``_inputs``)."""
    for case_index, (convention, aligned, mode, ratio, scale, size) in enumerate(ROI_CASES):
        def make(rng, scale=scale, size=size):
            # 40 channels (a partial block of lanes), 23 x 31 pixels, 48 rois
            return {"x": rng.standard_normal((2, 40, 23, 31), dtype=np.float32),
                    "rois": _rois(rng, 48, 2, 23, 31, scale),
                    "grads": rng.standard_normal((48, 40, *size), dtype=np.float32)}
        inputs = _inputs(store, f"roi{case_index}", case_index, make)
        directions = _roi_align_directions((list(size), scale, ratio, aligned, convention,
                                            mode))
        for dtype_name, dtype in DTYPES.items():
            yield from _checks(f"roi{case_index}_{dtype_name}",
                               _image_tensors(store, inputs, dtype), directions)


# --- crop_and_resize ------------------------------------------------------------------------

def _crop_inputs(rng):
    image = rng.standard_normal((2, 37, 45, 5)) * 40 + 100  # uint8 casts keep it positive
    boxes = rng.uniform(-0.3, 1.3, (24, 4))
    boxes[:3] = [[0, 0, 1, 1], [1, 1, 0, 0], [0.25, 0.5, 0.25, 0.5]]  # whole, flipped, point
    indices = rng.integers(0, 2, 24)
    return image, boxes, indices


def _crop_directions(dtype, method, crop, extrapolation, data_format):
    """The directions of a crop of ``dtype`` images: the gradients of float images only, the
    box gradient of bilinear only."""
    out_dtype = dtype if dtype.is_floating_point else torch.float32

    def forward(image, boxes, indices, grads):
        return ops.crop_and_resize(image, boxes, indices, list(crop), method, extrapolation,
                                   data_format)

    def grad_image(image, boxes, indices, grads):
        return ops.crop_and_resize_grad_image(grads, boxes, indices, list(image.shape), method,
                                              out_dtype, data_format)

    def grad_boxes(image, boxes, indices, grads):
        return ops.crop_and_resize_grad_boxes(grads, image, boxes, indices, method,
                                              data_format)

    directions = {"forward": ("exact", forward)}
    if dtype.is_floating_point:
        directions["grad_image"] = ("exact", grad_image)
        if method == "bilinear":
            directions["grad_boxes"] = ("close", grad_boxes)
    return directions


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
                    def tensors(device, dtype=dtype, data_format=data_format, crop=crop):
                        image = _from_numpy(store["crop.image"], torch.float64)
                        image = (image.round().clamp(0, 255) if dtype == torch.uint8
                                 else image).to(dtype)
                        out_dtype = dtype if dtype.is_floating_point else torch.float32
                        grads = _from_numpy(store["crop.grads" if crop == (7, 9)
                                                  else "crop.grads1"], out_dtype)
                        if data_format == "NCHW":
                            image = image.permute(0, 3, 1, 2).contiguous()
                            grads = grads.permute(0, 3, 1, 2).contiguous()
                        return (image.to(device),
                                _from_numpy(store["crop.boxes"], _box_dtype(dtype)).to(device),
                                _from_numpy(store["crop.indices"], torch.int64).to(device),
                                grads.to(device))

                    yield from _checks(
                        f"crop_{dtype_name}_{method}_{data_format}_{crop[0]}x{crop[1]}",
                        tensors, _crop_directions(dtype, method, crop, 0.25, data_format))


# --- roi_pool -------------------------------------------------------------------------------

def _roi_pool_directions(options):
    """``options``: (output_size, spatial_scale, half_arithmetic). The input gradient takes
    the argmax of the forward on the same device."""
    def forward(x, rois, grads):
        return pool_ops.roi_pool(x, rois, *options)[0]

    def argmax(x, rois, grads):
        return pool_ops.roi_pool(x, rois, *options)[1]

    def grad_input(x, rois, grads):
        return pool_ops.roi_pool_grad_input(grads, argmax(x, rois, grads), rois, list(x.shape),
                                            options[2])

    return {"forward": ("exact", forward), "argmax": ("exact", argmax),
            "grad_input": ("exact", grad_input)}


def roi_pool_calls(store):
    """(name, kind, call) of every roi_pool check (see ``roi_calls``): maps of few values
    (ties: the first maximum wins), a NaN row and a -inf column; one roi beyond the map, past
    int32 after scaling (6e4 in half arithmetic, whose rois are float16). The first case runs
    once more in torchvision's float16 half arithmetic (its own device kernel)."""
    variants = [(*variant, False) for variant in _variants(POOL_CASES)]
    variants.append((len(POOL_CASES), POOL_CASES[0], "float16", torch.float16, True))
    for index, (size, scale), dtype_name, dtype, half in variants:
        def make(rng, scale=scale, size=size, huge=6e4 if half else 3e9):
            x = rng.integers(-3, 4, (2, 19, 17, 23)).astype(np.float32)
            x[0, 1, 2, :] = np.nan
            x[1, 2, :, 3] = -np.inf
            rois = _rois(rng, 40, 2, 17, 23, scale)
            rois[-1, 1:] = [huge, 1, huge * 1.08, 3]
            return {"x": x, "rois": rois,
                    "grads": rng.standard_normal((40, 19, *size), dtype=np.float32)}
        inputs = _inputs(store, f"pool{index}", 100 + index, make)
        yield from _checks(f"pool{index}_{dtype_name}",
                           _image_tensors(store, inputs, dtype, dtype if half else None),
                           _roi_pool_directions((list(size), scale, half)))


# --- ps_roi_align and ps_roi_pool -----------------------------------------------------------

def _ps_align_directions(options):
    """``options``: (output_size, spatial_scale, sampling_ratio)."""
    return _directions(options, ps_ops.ps_roi_align, ps_ops.ps_roi_align_grad_input,
                       ps_ops.ps_roi_align_grad_boxes)


def _ps_pool_directions(options):
    """``options``: (output_size, spatial_scale)."""
    return _directions(options, ps_ops.ps_roi_pool, ps_ops.ps_roi_pool_grad_input)


def ps_calls(store):
    """(name, kind, call) of every ps_roi_align and ps_roi_pool check (see ``roi_calls``)."""
    for index, (size, channels, scale, ratio), dtype_name, dtype in _variants(PS_CASES):
        def make(rng, size=size, channels=channels, scale=scale):
            return {"x": rng.standard_normal((2, channels * size[0] * size[1], 13, 17),
                                             dtype=np.float32),
                    "rois": _rois(rng, 40, 2, 13, 17, scale),
                    "grads": rng.standard_normal((40, channels, *size), dtype=np.float32)}
        tensors = _image_tensors(store, _inputs(store, f"ps{index}", 200 + index, make), dtype)
        yield from _checks(f"ps_align{index}_{dtype_name}", tensors,
                           _ps_align_directions((list(size), scale, ratio)))
        yield from _checks(f"ps_pool{index}_{dtype_name}", tensors,
                           _ps_pool_directions((list(size), scale)))


# --- multi_scale_roi_align ------------------------------------------------------------------

def _multi_scale_directions(options):
    """``options``: (scales, output_size, sampling_ratio, aligned); native arithmetic. The
    levels' input gradients are compared as one concatenation of the flattened levels."""
    def forward(features, rois, levels, grads):
        return multi_scale_ops.multi_scale_roi_align(features, rois, levels, *options, False)

    def grad_input(features, rois, levels, grads):
        shapes = [d for f in features for d in f.shape]
        return torch.cat([level.flatten() for level in
                          multi_scale_ops.multi_scale_roi_align_grad_input(
                              grads, rois, levels, shapes, *options, False)])

    def grad_boxes(features, rois, levels, grads):
        return multi_scale_ops.multi_scale_roi_align_grad_boxes(grads, features, rois, levels,
                                                                *options)

    return {"forward": ("exact", forward), "grad_input": ("exact", grad_input),
            "grad_boxes": ("close", grad_boxes)}


def multi_scale_calls(store):
    """(name, kind, call) of every multi_scale_roi_align check (see ``roi_calls``): two
    levels of 7 channels (scales 1/4, 1/8 of a 96 x 128 image), rois on each level and on
    none (level -1)."""
    for index, (size, ratio, aligned), dtype_name, dtype in _variants(MULTI_SCALE_CASES):
        def make(rng, size=size):
            return {"x0": rng.standard_normal((2, 7, 24, 32), dtype=np.float32),
                    "x1": rng.standard_normal((2, 7, 12, 16), dtype=np.float32),
                    "rois": _rois(rng, 40, 2, 96, 128, 1.0),
                    "levels": rng.integers(-1, len(MULTI_SCALE_SCALES), 40),
                    "grads": rng.standard_normal((40, 7, *size), dtype=np.float32)}
        inputs = _inputs(store, f"ms{index}", 300 + index, make)

        def tensors(device, inputs=inputs, dtype=dtype):
            return ([_maps(store[f"{inputs}.x{level}"], dtype, device)
                     for level in range(len(MULTI_SCALE_SCALES))],
                    _from_numpy(store[f"{inputs}.rois"], _box_dtype(dtype)).to(device),
                    _from_numpy(store[f"{inputs}.levels"], torch.int64).to(device),
                    _from_numpy(store[f"{inputs}.grads"], dtype).to(device))
        yield from _checks(f"ms{index}_{dtype_name}", tensors, _multi_scale_directions(
            (MULTI_SCALE_SCALES, list(size), ratio, aligned)))


# --- roi_align_rotated ----------------------------------------------------------------------

def _rotated_directions(options):
    """``options``: (output_size, spatial_scale, sampling_ratio, aligned, clockwise,
    convention)."""
    return _directions(options, rotated_ops.roi_align_rotated,
                       rotated_ops.roi_align_rotated_grad_input,
                       rotated_ops.roi_align_rotated_grad_boxes)


def rotated_calls(store):
    """(name, kind, call) of every roi_align_rotated check (see ``roi_calls``): 13 channels,
    rois at any angle (degrees for detectron2, radians for mmcv), over and beyond the map."""
    for index, case, dtype_name, dtype in _variants(ROTATED_CASES):
        size, scale, convention = case[0], case[1], case[5]

        def make(rng, size=size, scale=scale, convention=convention):
            return {"x": rng.standard_normal((2, 13, 17, 21), dtype=np.float32),
                    "rois": _rotated_rois(rng, 40, 2, 17, 21, scale, convention == "detectron2"),
                    "grads": rng.standard_normal((40, 13, *size), dtype=np.float32)}
        inputs = _inputs(store, f"rot{index}", 400 + index, make)
        yield from _checks(f"rot{index}_{dtype_name}", _image_tensors(store, inputs, dtype),
                           _rotated_directions((list(size), *case[1:])))


# --- detection-sized workloads --------------------------------------------------------------

def _large_tensors(seed, shape, count, scale, grads_shape):
    """``tensors(device)``: random maps of ``shape``, ``count`` rois (``_rois``), random
    grads, regenerated from ``seed`` (float32)."""
    def tensors(device):
        rng = np.random.default_rng(seed)
        x = torch.from_numpy(rng.random(shape, dtype=np.float32))
        rois = torch.from_numpy(_rois(rng, count, shape[0], shape[2], shape[3], scale)).float()
        grads = torch.from_numpy(rng.random(grads_shape, dtype=np.float32))
        return x.to(device), rois.to(device), grads.to(device)
    return tensors


def _crop_large_tensors(device):
    rng = np.random.default_rng(8)
    image = torch.from_numpy(rng.random((2, 64, 64, 256), dtype=np.float32))
    start = rng.uniform(0, 0.7, (512, 2))
    boxes = np.concatenate([start, start + rng.uniform(0.1, 0.3, (512, 2))], axis=1)
    indices = torch.from_numpy(rng.integers(0, 2, 512))
    grads = torch.from_numpy(rng.random((512, 14, 14, 256), dtype=np.float32))
    return (image.to(device), torch.from_numpy(boxes).float().to(device),
            indices.to(device), grads.to(device))


def large_calls(store):
    """Detection-sized workloads, compared by digest (inputs regenerated from seeds; their
    digests are stored too, so a different generator shows as such, not as a kernel bug)."""
    workloads = [
        ("large_roi", _large_tensors(7, (2, 256, 100, 152), 512, 1 / 8, (512, 256, 7, 7)),
         _only(_roi_align_directions(([7, 7], 1 / 8, 2, True, "torchvision", 1)),
               "forward", "grad_input")),
        ("large_crop", _crop_large_tensors,
         _only(_crop_directions(torch.float32, "bilinear", (14, 14), 0.0, "NHWC"),
               "forward", "grad_image")),
        ("large_pool", _large_tensors(9, (2, 256, 100, 152), 512, 1 / 8, (512, 256, 7, 7)),
         _roi_pool_directions(([7, 7], 1 / 8, False))),
        # R-FCN's head: 21 classes of 7 x 7 bins on a stride-16 map of an 800 x 1216 image
        ("large_ps_align",
         _large_tensors(10, (2, 21 * 7 * 7, 50, 76), 512, 1 / 16, (512, 21, 7, 7)),
         _only(_ps_align_directions(([7, 7], 1 / 16, 2)), "forward", "grad_input")),
    ]
    for key, tensors, directions in workloads:
        yield f"{key}.inputs", "digest", lambda device, tensors=tensors: torch.cat(
            [t.flatten().double().cpu() for t in tensors(device)])
        yield from _checks(key, tensors, directions, kind="digest")


def all_calls(store):
    yield from roi_calls(store)
    yield from crop_calls(store)
    yield from roi_pool_calls(store)
    yield from ps_calls(store)
    yield from multi_scale_calls(store)
    yield from rotated_calls(store)
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


def _device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"


def check(path, report_path, device="cuda"):
    stored = dict(np.load(path))
    device = torch.device(device)
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
    print(f"{len(rows) - failures} of {len(rows)} checks passed on {_device_name(device)} "
          f"in {seconds:.0f} s")
    if report_path:
        with open(report_path, "w") as report:
            json.dump({"device": _device_name(device), "rows": rows}, report,
                      indent=1)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="NPZ", help="run the CPU kernels, store inputs+results")
    group.add_argument("--check", metavar="NPZ", help="run the CUDA kernels against NPZ")
    parser.add_argument("--device", default="cuda",
                        help="with --check: the device whose kernels run (default: cuda)")
    parser.add_argument("--report", metavar="JSON", help="with --check: every case's status")
    args = parser.parse_args()
    if args.save:
        save(args.save)
        return 0
    return 1 if check(args.check, args.report, args.device) else 0


if __name__ == "__main__":
    sys.exit(main())
