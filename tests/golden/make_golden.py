"""Generate the golden files: outputs of the REAL peer frameworks on small adversarial inputs.

Run from the repository root, each with its peer's own interpreter (never the roiops venv)::

    .peers/tf/bin/python tests/golden/make_golden.py tensorflow    # TensorFlow 2.21.0 (CPU)
    .peers/ms/bin/python tests/golden/make_golden.py mindspore     # MindSpore 2.10.0 (CPU, PyNative)
    .peers/tv/bin/python tests/golden/make_golden.py torchvision   # torch 2.13.0 + torchvision 0.28.0
    .peers/tv/bin/python tests/golden/make_golden.py torchvision_ps  # ps_roi_align, ps_roi_pool

Each run writes ``tests/golden/<peer>.npz``. The inputs are drawn from ``numpy.random.default_rng``
with a fixed seed per peer, so a rerun with the same peer versions gives identical files.
Gradients are computed single-threaded (TF: op determinism and one intra-op thread; MindSpore:
``threads_num(1)``; torchvision's CPU kernels are single-threaded), i.e. in the sequential order
that roiops reproduces. Every gradient and the MindSpore ROIAlign forward are run twice and must
agree bit for bit.

File format (kept compact: one zip member per case would cost ~200 bytes each):

* ``version``: the peer version string; ``command``: the command that made the file;
  ``numpy``: the numpy version used.
* ``cases``: a JSON string, a list with one object per case::

      {"id": "c0012", "op": "CropAndResize", <options...>,
       "arrays": {"image": ["<f4", [1, 3, 4, 2], byte_offset], "out": [...], ...}}

* ``blob``: a uint8 array holding the raw little-endian bytes of every array, back to back.
  ``np.frombuffer(blob, dtype, count, offset).reshape(shape)`` gives an array back
  (``tests/compat/test_golden.py`` has a loader).

Cases whose peer result is undefined (docs/decisions.md) are excluded: non-finite boxes,
boxes whose coordinate arithmetic overflows, subnormal inputs (TF flushes them), out-of-range
batch indices, MindSpore ROIAlign rows hit by its skip rule (|x1| < 0.001 and |x2| < 0.001),
torchvision's ``std::vector`` ValueError boxes and non-finite input pixel (0, 0).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
F32 = np.float32

PEER_PY = {"tensorflow": ".peers/tf/bin/python", "mindspore": ".peers/ms/bin/python",
           "torchvision": ".peers/tv/bin/python", "torchvision_ps": ".peers/tv/bin/python"}
SEEDS = {"tensorflow": 20250101, "mindspore": 20250202, "torchvision": 20250303,
         "torchvision_ps": 20250316}

IMAGE_DTYPES = ["uint8", "uint16", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
EXTRAPOLATION_VALUES = [0.0, -1.0, 7.25, float("nan")]


# --------------------------------------------------------------------------------------------
# storage

class Store:
    def __init__(self):
        self.cases = []
        self.chunks = []
        self.nbytes = 0

    def add(self, op, options, arrays):
        entry = {"id": "c%04d" % len(self.cases), "op": op}
        entry.update(_jsonable(options))
        descr = {}
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
            raw = a.astype(dt, copy=False).tobytes()
            descr[name] = [dt.str, [int(s) for s in a.shape], self.nbytes]
            self.chunks.append(raw)
            self.nbytes += len(raw)
        entry["arrays"] = descr
        self.cases.append(entry)

    def save(self, path, version, command):
        blob = np.frombuffer(b"".join(self.chunks), dtype=np.uint8)
        np.savez_compressed(path, version=np.array(version), command=np.array(command),
                            numpy=np.array(np.__version__),
                            cases=np.array(json.dumps(self.cases, separators=(",", ":"))),
                            blob=blob)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def bits_equal(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize]
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((np.ascontiguousarray(a).view(u) == np.ascontiguousarray(b).view(u)) | both_nan))


# --------------------------------------------------------------------------------------------
# input generators (all numpy, shared by the peers)

def coarse(rng, v, p=0.4, bits=11):
    """With probability p, keep only `bits` mantissa bits (compresses better; sums stay inexact)."""
    if rng.random() >= p:
        return v
    m, e = np.frexp(v)
    return np.ldexp(np.round(m * 2.0 ** bits) / 2.0 ** bits, e).astype(v.dtype)


def pixels(rng, dtype, shape, special=False):
    """Image values of `dtype`: full integer ranges, floats of varied magnitude, no subnormals."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if dt.itemsize >= 4 and rng.random() < 0.5:
            v = rng.integers(-1000 if dt.kind == "i" else 0, 1000, n)
        else:
            v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        return v.astype(dt).reshape(shape)
    if dt == np.float16:
        scale = rng.choice([1.0, 30.0, 1000.0])
        v = (rng.standard_normal(n) * scale).astype(np.float16)
        specials = [65504.0, -65504.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 0.5, 2048.0]
    else:
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 4, n)
        if rng.random() < 0.3:  # some cases on a coarse grid (exact sums)
            v = np.round(v * 4) / 4
        v = coarse(rng, v.astype(dt))
        if dt == np.float32:
            specials = [3e38, -3e38, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30]
        else:
            specials = [1e300, -1e300, 3e38, 0.0, -0.0, np.inf, -np.inf, np.nan,
                        0.1 + 2.0 ** -40]
    if special:
        k = max(1, n // 8)
        idx = rng.choice(n, size=min(k, n), replace=False)
        v[idx] = rng.choice(np.array(specials, dtype=dt), size=idx.size)
    # flush accidental tiny values (TF would treat subnormal pixels and products as zero)
    tiny = (v != 0) & (np.abs(v.astype(np.float64)) < 1e-20)
    v[tiny] = dt.type(0)
    return v.reshape(shape)


def axis_pair(rng, S):
    """A pair of normalized coordinates (c1, c2) along an axis of size S, as float32."""
    fams = ["inside", "inside", "partly", "outside", "flipped", "degenerate", "lattice",
            "lattice", "ulp", "ulp", "end1", "special", "full"]
    fam = fams[rng.integers(len(fams))]
    if fam in ("lattice", "ulp") and S < 2:
        fam = "partly"
    if fam == "inside":
        a, b = np.sort(rng.uniform(0, 1, 2))
    elif fam == "partly":
        a, b = np.sort(rng.uniform(-0.5, 1.5, 2))
    elif fam == "outside":
        a, b = np.sort(rng.uniform(1.02, 1.6, 2)) if rng.random() < 0.5 else np.sort(rng.uniform(-0.6, -0.02, 2))
        if rng.random() < 0.3:
            a, b = b, a
    elif fam == "flipped":
        b, a = np.sort(rng.uniform(-0.2, 1.2, 2))
    elif fam == "degenerate":
        a = b = rng.uniform(-0.2, 1.2)
    elif fam == "full":
        a, b = 0.0, 1.0
    elif fam == "end1":
        a, b = (0.0 if rng.random() < 0.4 else rng.uniform(0, 0.9)), 1.0
        if rng.random() < 0.25:
            a, b = b, a
    elif fam == "special":
        sp = [0.0, 1.0, 0.5, 0.49999997, float(np.nextafter(F32(1), F32(2))),
              float(np.nextafter(F32(1), F32(0))), 0.25, 0.75, -0.5, 1.5]
        a, b = rng.choice(sp, 2)
    if fam in ("lattice", "ulp"):
        den = F32(S - 1) * F32(rng.choice([1, 2]))
        ks = rng.integers(-1, int(den) + 2, 2)
        v = [F32(k) / den for k in ks]
        if fam == "ulp":
            v = [np.nextafter(x, F32(np.inf) if rng.random() < 0.5 else F32(-np.inf)) for x in v]
            v = [x if abs(x) > 1e-30 else F32(0) for x in v]
        a, b = v
        if rng.random() < 0.3:
            b = a
    return F32(a), F32(b), fam


def norm_boxes(rng, n, H, W):
    boxes = np.zeros((n, 4), F32)
    fams = []
    for i in range(n):
        y1, y2, fy = axis_pair(rng, H)
        x1, x2, fx = axis_pair(rng, W)
        boxes[i] = [y1, x1, y2, x2]
        fams.append(fy if fy == fx else fy + "/" + fx)
    return boxes, fams


def image_dims(rng, max_elems=240):
    """(B, H, W, D): mostly tiny and odd, sometimes one long side (up to 40)."""
    B = int(rng.integers(1, 3))
    D = int(rng.choice([1, 1, 2, 3]))
    if rng.random() < 0.15:
        L = int(rng.integers(10, 41))
        S = int(rng.integers(1, 5))
        H, W = (L, S) if rng.random() < 0.5 else (S, L)
        D = 1
    else:
        H, W = (int(x) for x in rng.integers(1, 10, 2))
    while B * H * W * D > max_elems and D > 1:
        D -= 1
    return B, H, W, D


def crop_dims(rng):
    ch = 1 if rng.random() < 0.25 else int(rng.integers(2, 8))
    cw = 1 if rng.random() < 0.25 else int(rng.integers(2, 8))
    return ch, cw


def repeat_some(rng, boxes, ind):
    """For gradients: sometimes duplicate boxes so that updates collide."""
    if rng.random() < 0.4 and len(boxes) >= 1:
        k = int(rng.integers(1, 4))
        pick = rng.integers(0, len(boxes), k)
        boxes = np.concatenate([boxes, boxes[pick]])
        ind = np.concatenate([ind, ind[pick]])
    return boxes, ind


def grads_like(rng, shape, big=False):
    g = coarse(rng, rng.standard_normal(shape).astype(F32))
    if big:
        g *= F32(rng.choice([1e3, 3e4]))
    if rng.random() < 0.2:
        g = np.round(g * 8).astype(F32) / F32(8)
    return g


def crop_case(rng, dtype, special_p=0.15):
    B, H, W, D = image_dims(rng)
    ch, cw = crop_dims(rng)
    n = int(rng.integers(1, 5))
    boxes, fams = norm_boxes(rng, n, H, W)
    ind = rng.integers(0, B, n).astype(np.int32)
    special = np.dtype(dtype).kind == "f" and rng.random() < special_p
    image = pixels(rng, dtype, (B, H, W, D), special)
    return image, boxes, ind, (ch, cw), fams, special


def targeted_crop_cases():
    """Hand-made cases from TensorFlow's anomalies (docs/tensorflow.md#anomalies)."""
    out = []
    # H=4, ch=22, box [0,0,1,1]: last row is extrapolated (fragile 1.0 end)
    img = (np.arange(4 * 2, dtype=F32).reshape(1, 4, 2, 1) + 7)
    out.append((img, np.array([[0, 0, 1, 1]], F32), np.array([0], np.int32), (22, 2)))
    # H=42, ch=32, y1=0.13489336, y2=1: GradBoxes drops the last row, forward keeps it
    img = np.linspace(-3, 5, 42 * 2, dtype=F32).reshape(1, 42, 2, 1)
    out.append((img, np.array([[0.13489336, 0, 1, 1]], F32), np.array([0], np.int32), (32, 2)))
    # nearest ties: 0.49999997 and exact .5 coordinates, inf pixel at an exact grid point
    img = np.array([1, 2, 3, np.inf, 5, 6], F32).reshape(1, 2, 3, 1)
    out.append((img, np.array([[0, 0, 1, 1], [0.49999997, 0.25, 0.5, 0.75]], F32),
                np.array([0, 0], np.int32), (3, 5)))
    # H == 1 / W == 1: never extrapolated
    img = np.array([3, -4, 5.5], F32).reshape(1, 1, 3, 1)
    out.append((img, np.array([[-5, 0.2, 7, 0.9], [2, -1, 2, 2]], F32), np.array([0, 0], np.int32), (2, 4)))
    return out


# --------------------------------------------------------------------------------------------
# TensorFlow

def gen_tensorflow(store, rng):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    raw = tf.raw_ops
    tfdt = {"float16": tf.float16, "float32": tf.float32, "float64": tf.float64}

    def fwd(image, boxes, ind, crop, method, ev):
        out = raw.CropAndResize(image=image, boxes=boxes, box_ind=ind, crop_size=list(crop),
                                method=method, extrapolation_value=ev).numpy()
        out2 = tf.image.crop_and_resize(image, boxes, ind, list(crop), method=method,
                                        extrapolation_value=ev).numpy()
        assert bits_equal(out, out2), "tf.image.crop_and_resize differs from raw op"
        return out

    def grad_image(g, boxes, ind, isize, T, method):
        r = [raw.CropAndResizeGradImage(grads=g, boxes=boxes, box_ind=ind, image_size=list(isize),
                                        T=tfdt[T], method=method).numpy() for _ in range(2)]
        assert bits_equal(r[0], r[1])
        return r[0]

    def grad_boxes(g, image, boxes, ind):
        r = [raw.CropAndResizeGradBoxes(grads=g, image=image, boxes=boxes, box_ind=ind,
                                        method="bilinear").numpy() for _ in range(2)]
        assert bits_equal(r[0], r[1])
        return r[0]

    # forward: 9 dtypes x 2 methods
    for dtype in IMAGE_DTYPES:
        for method in ("bilinear", "nearest"):
            for k in range(13):
                image, boxes, ind, crop, fams, sp = crop_case(rng, dtype)
                ev = EXTRAPOLATION_VALUES[k % 4]
                out = fwd(image, boxes, ind, crop, method, ev)
                store.add("CropAndResize", dict(dtype=dtype, method=method, extrapolation_value=ev,
                                                crop_size=crop, families=fams, special=sp),
                          dict(image=image, boxes=boxes, box_ind=ind, out=out))
    # GradImage: T x 2 methods
    for T in ("float16", "float32", "float64"):
        for method in ("bilinear", "nearest"):
            for _ in range(22):
                B, H, W, D = image_dims(rng)
                crop = crop_dims(rng)
                n = int(rng.integers(1, 5))
                boxes, fams = norm_boxes(rng, n, H, W)
                ind = rng.integers(0, B, n).astype(np.int32)
                boxes, ind = repeat_some(rng, boxes, ind)
                big = T == "float16" and rng.random() < 0.3
                g = grads_like(rng, (len(boxes),) + crop + (D,), big)
                out = grad_image(g, boxes, ind, (B, H, W, D), T, method)
                store.add("CropAndResizeGradImage", dict(T=T, method=method, image_size=[B, H, W, D],
                                                         crop_size=crop, families=fams, big_grads=big),
                          dict(grads=g, boxes=boxes, box_ind=ind, out=out))
    # GradBoxes: 9 image dtypes
    for dtype in IMAGE_DTYPES:
        for _ in range(14):
            image, boxes, ind, crop, fams, sp = crop_case(rng, dtype)
            g = grads_like(rng, (len(boxes),) + crop + (image.shape[3],))
            out = grad_boxes(g, image, boxes, ind)
            store.add("CropAndResizeGradBoxes", dict(dtype=dtype, method="bilinear", crop_size=crop,
                                                     families=fams, special=sp),
                      dict(grads=g, image=image, boxes=boxes, box_ind=ind, out=out))
    # targeted cases, all three ops
    for image, boxes, ind, crop in targeted_crop_cases():
        B, H, W, D = image.shape
        for method in ("bilinear", "nearest"):
            out = fwd(image, boxes, ind, crop, method, -7.0)
            store.add("CropAndResize", dict(dtype="float32", method=method, extrapolation_value=-7.0,
                                            crop_size=crop, families=["targeted"], special=False),
                      dict(image=image, boxes=boxes, box_ind=ind, out=out))
            g = grads_like(rng, (len(boxes),) + crop + (D,))
            out = grad_image(g, boxes, ind, image.shape, "float32", method)
            store.add("CropAndResizeGradImage", dict(T="float32", method=method, image_size=list(image.shape),
                                                     crop_size=crop, families=["targeted"], big_grads=False),
                      dict(grads=g, boxes=boxes, box_ind=ind, out=out))
        out = grad_boxes(g, image, boxes, ind)
        store.add("CropAndResizeGradBoxes", dict(dtype="float32", method="bilinear", crop_size=crop,
                                                 families=["targeted"], special=False),
                  dict(grads=g, image=image, boxes=boxes, box_ind=ind, out=out))
    return tf.__version__


# --------------------------------------------------------------------------------------------
# MindSpore

def roi_rows(rng, n, N, H, W, scale, dtype, batch_mode):
    """rois [n,5] = (batch, x1, y1, x2, y2) in input-image coordinates (feature = input*scale).

    batch_mode: "mindspore" (raw value in [0, N-1], may be fractional) or "torchvision"
    (truncation toward zero must land in [0, N-1])."""
    dt = np.dtype(dtype)
    rows = np.zeros((n, 5), dt)
    fams = []
    for i in range(n):
        coords = []
        fam = ["inside", "inside", "partly", "outside", "reversed", "tiny", "huge", "grid",
               "grid", "edges", "ulp"][rng.integers(11)]
        for S in (W, H):
            if fam == "inside":
                a, b = np.sort(rng.uniform(0, S, 2))
            elif fam == "partly":
                a, b = np.sort(rng.uniform(-0.5 * S, 1.5 * S, 2))
            elif fam == "outside":
                a, b = np.sort(rng.uniform(S + 1.05, 2 * S + 2, 2)) if rng.random() < 0.5 \
                    else np.sort(rng.uniform(-S - 2, -1.05, 2))
            elif fam == "reversed":
                b, a = np.sort(rng.uniform(-1, S + 1, 2))
            elif fam == "tiny":
                a = rng.uniform(-1, S)
                b = a + (0.0 if rng.random() < 0.4 else rng.uniform(0, 0.1))
            elif fam == "huge":
                a, b = rng.uniform(-S, 0), rng.uniform(S, 2.5 * S)
            elif fam in ("grid", "ulp"):
                a, b = np.sort(rng.integers(-4, 4 * S + 5, 2) / 4.0)
            elif fam == "edges":
                e = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, S - 1.5, S - 1.0, S - 0.5, S, S + 0.5, S + 1.0]
                a, b = np.sort(rng.choice(e, 2))
            # feature coordinates -> input coordinates
            va, vb = dt.type(a / scale), dt.type(b / scale)
            if fam == "ulp":
                va = np.nextafter(va, dt.type(np.inf) if rng.random() < 0.5 else dt.type(-np.inf))
                vb = np.nextafter(vb, dt.type(np.inf) if rng.random() < 0.5 else dt.type(-np.inf))
                va = va if abs(va) > 1e-6 else dt.type(0)
                vb = vb if abs(vb) > 1e-6 else dt.type(0)
            coords.append((va, vb))
        (x1, x2), (y1, y2) = coords
        if batch_mode == "mindspore":
            if abs(float(x1)) < 0.002 and abs(float(x2)) < 0.002:  # MindSpore skip rule: undefined
                x2 = dt.type(0.5 / scale + float(x2))
            cands = [float(v) for v in range(N)]
            cands += [v for v in (0.3, 0.49993, 0.5, 0.50007, 0.9999, 1.2, 1.5) if v <= N - 1]
            bidx = dt.type(rng.choice(cands))
            if float(bidx) > N - 1:
                bidx = dt.type(N - 1)
        else:
            cands = [float(v) for v in range(N)] + [0.3, 0.999, -0.5, -0.999]
            cands += [v for v in (1.5, 1.9999) if v < N]
            bidx = dt.type(rng.choice(cands))
            if not (0 <= int(float(bidx)) < N):
                bidx = dt.type(0)
        rows[i] = [bidx, x1, y1, x2, y2]
        fams.append(fam)
    return rows, fams


SCALES = [1.0, 0.5, 0.25, 1.0 / 3.0, 0.1]


def feature_map(rng, dtype, shape, special):
    if np.dtype(dtype) == np.float16:
        x = (rng.standard_normal(shape) * rng.choice([1.0, 10.0, 300.0])).astype(np.float16)
    else:
        x = coarse(rng, (rng.standard_normal(shape) * 10.0 ** rng.uniform(-1, 2)).astype(dtype))
    if special:
        flat = x.reshape(-1)
        k = max(1, flat.size // 10)
        idx = rng.choice(flat.size, size=k, replace=False)
        sp = [np.inf, -np.inf, np.nan, 60000.0, -60000.0] if np.dtype(dtype) == np.float16 \
            else [np.inf, -np.inf, np.nan, 3e38]
        flat[idx] = rng.choice(np.array(sp, dtype=dtype), size=k)
    return x


def feature_dims(rng, max_c=3):
    N = int(rng.integers(1, 3))
    C = int(rng.integers(1, max_c + 1))
    if rng.random() < 0.12:
        L, S = int(rng.integers(10, 33)), int(rng.integers(1, 5))
        H, W = (L, S) if rng.random() < 0.5 else (S, L)
        C = 1
    else:
        H, W = (int(x) for x in rng.integers(1, 10, 2))
    return N, C, H, W


def gen_mindspore(store, rng):
    import mindspore as ms
    from mindspore import Tensor, ops
    from mindspore.ops.operations import _grad_ops, image_ops
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ms.device_context.cpu.op_tuning.threads_num(1)
    msdt = {"float16": ms.float16, "float32": ms.float32, "float64": ms.float64}

    # CropAndResize: 3 methods x 9 dtypes
    for method in ("bilinear", "nearest", "bilinear_v2"):
        for dtype in IMAGE_DTYPES:
            for k in range(9):
                image, boxes, ind, crop, fams, sp = crop_case(rng, dtype)
                ev = EXTRAPOLATION_VALUES[k % 4]
                out = ops.CropAndResize(method, ev)(Tensor(image), Tensor(boxes), Tensor(ind), crop).asnumpy()
                store.add("CropAndResize", dict(dtype=dtype, method=method, extrapolation_value=ev,
                                                crop_size=crop, families=fams, special=sp),
                          dict(image=image, boxes=boxes, box_ind=ind, out=out))
    for image, boxes, ind, crop in targeted_crop_cases():
        for method in ("bilinear", "nearest", "bilinear_v2"):
            out = ops.CropAndResize(method, -7.0)(Tensor(image), Tensor(boxes), Tensor(ind), crop).asnumpy()
            store.add("CropAndResize", dict(dtype="float32", method=method, extrapolation_value=-7.0,
                                            crop_size=crop, families=["targeted"], special=False),
                      dict(image=image, boxes=boxes, box_ind=ind, out=out))

    # CropAndResizeGradImage: T x {bilinear, nearest}
    for T in ("float16", "float32", "float64"):
        for method in ("bilinear", "nearest"):
            for _ in range(16):
                B, H, W, D = image_dims(rng)
                crop = crop_dims(rng)
                n = int(rng.integers(1, 5))
                boxes, fams = norm_boxes(rng, n, H, W)
                ind = rng.integers(0, B, n).astype(np.int32)
                boxes, ind = repeat_some(rng, boxes, ind)
                big = T == "float16" and rng.random() < 0.3
                g = grads_like(rng, (len(boxes),) + crop + (D,), big)
                prim = image_ops.CropAndResizeGradImage(msdt[T], method)
                isz = np.array([B, H, W, D], np.int32)
                r = [prim(Tensor(g), Tensor(boxes), Tensor(ind), Tensor(isz)).asnumpy() for _ in range(2)]
                assert bits_equal(r[0], r[1])
                store.add("CropAndResizeGradImage", dict(T=T, method=method, image_size=[B, H, W, D],
                                                         crop_size=crop, families=fams, big_grads=big),
                          dict(grads=g, boxes=boxes, box_ind=ind, out=r[0]))

    # CropAndResizeGradBoxes: 9 image dtypes
    for dtype in IMAGE_DTYPES:
        for _ in range(10):
            image, boxes, ind, crop, fams, sp = crop_case(rng, dtype)
            g = grads_like(rng, (len(boxes),) + crop + (image.shape[3],))
            prim = image_ops.CropAndResizeGradBoxes("bilinear")
            r = [prim(Tensor(g), Tensor(image), Tensor(boxes), Tensor(ind)).asnumpy() for _ in range(2)]
            assert bits_equal(r[0], r[1])
            store.add("CropAndResizeGradBoxes", dict(dtype=dtype, method="bilinear", crop_size=crop,
                                                     families=fams, special=sp),
                      dict(grads=g, image=image, boxes=boxes, box_ind=ind, out=r[0]))
    for image, boxes, ind, crop in targeted_crop_cases():
        g = grads_like(rng, (len(boxes),) + crop + (image.shape[3],))
        out = image_ops.CropAndResizeGradBoxes("bilinear")(Tensor(g), Tensor(image), Tensor(boxes), Tensor(ind)).asnumpy()
        store.add("CropAndResizeGradBoxes", dict(dtype="float32", method="bilinear", crop_size=crop,
                                                 families=["targeted"], special=False),
                  dict(grads=g, image=image, boxes=boxes, box_ind=ind, out=out))
        out = image_ops.CropAndResizeGradImage(ms.float32, "bilinear")(
            Tensor(g), Tensor(boxes), Tensor(ind), Tensor(np.array(image.shape, np.int32))).asnumpy()
        store.add("CropAndResizeGradImage", dict(T="float32", method="bilinear", image_size=list(image.shape),
                                                 crop_size=crop, families=["targeted"], big_grads=False),
                  dict(grads=g, boxes=boxes, box_ind=ind, out=out))

    # ROIAlign: f32/f16 x roi_end_mode 0/1 x sample_num -1..3
    for dtype in ("float32", "float16"):
        for mode in (0, 1):
            for sn in (-1, 0, 1, 2, 3):
                for k in range(7):
                    N, C, H, W = feature_dims(rng)
                    ph, pw = (int(x) for x in rng.integers(1, 5, 2))
                    scale = SCALES[(k + sn) % len(SCALES)]
                    rois, fams = roi_rows(rng, int(rng.integers(1, 5)), N, H, W, scale, dtype, "mindspore")
                    sp = rng.random() < 0.12
                    feat = feature_map(rng, dtype, (N, C, H, W), sp)
                    prim = ops.ROIAlign(ph, pw, scale, sn, mode)
                    r = [prim(Tensor(feat), Tensor(rois)).asnumpy() for _ in range(2)]
                    assert bits_equal(r[0], r[1]), "ROIAlign not repeatable (skip rule?)"
                    store.add("ROIAlign", dict(dtype=dtype, pooled_height=ph, pooled_width=pw,
                                               spatial_scale=scale, sample_num=sn, roi_end_mode=mode,
                                               families=fams, special=bool(sp)),
                              dict(features=feat, rois=rois, out=r[0]))
    # the documented example (1.7749999)
    feat = np.array([[[[1, 2], [3, 4]]]], F32)
    rois = np.array([[0, 0.2, 0.3, 0.2, 0.3]], F32)
    for mode in (0, 1):
        out = ops.ROIAlign(2, 2, 0.5, 2, mode)(Tensor(feat), Tensor(rois)).asnumpy()
        store.add("ROIAlign", dict(dtype="float32", pooled_height=2, pooled_width=2, spatial_scale=0.5,
                                   sample_num=2, roi_end_mode=mode, families=["docs"], special=False),
                  dict(features=feat, rois=rois, out=out))

    # ROIAlignGrad: f32/f16 x sample_num -1..3
    for dtype in ("float32", "float16"):
        for sn in (-1, 0, 1, 2, 3):
            for k in range(9):
                N, C, H, W = feature_dims(rng)
                ph, pw = (int(x) for x in rng.integers(1, 5, 2))
                scale = SCALES[(k + sn) % len(SCALES)]
                rois, fams = roi_rows(rng, int(rng.integers(1, 5)), N, H, W, scale, dtype, "mindspore")
                if rng.random() < 0.4:
                    rois = np.concatenate([rois, rois[rng.integers(0, len(rois), 2)]])
                dy = coarse(rng, rng.standard_normal((len(rois), C, ph, pw)).astype(dtype))
                prim = _grad_ops.ROIAlignGrad(ph, pw, scale, sn)
                r = [prim(Tensor(dy), Tensor(rois), (N, C, H, W)).asnumpy() for _ in range(2)]
                assert bits_equal(r[0], r[1])
                store.add("ROIAlignGrad", dict(dtype=dtype, pooled_height=ph, pooled_width=pw,
                                               spatial_scale=scale, sample_num=sn, xdiff_shape=[N, C, H, W],
                                               families=fams),
                          dict(dy=dy, rois=rois, out=r[0]))
    return ms.__version__


# --------------------------------------------------------------------------------------------
# torchvision

def gen_torchvision(store, rng):
    import torch
    import torchvision
    from torchvision.ops import roi_align
    torch.set_num_threads(1)

    combos = [(dt, al, sr, sc) for dt in ("float32", "float64", "float16") for al in (False, True)
              for sr in (-1, 0, 1, 2, 3) for sc in SCALES]
    reps = {"float32": 3, "float64": 2, "float16": 2}
    for dtype, aligned, sr, scale in combos:
        for _ in range(reps[dtype]):
            while True:
                N, C, H, W = feature_dims(rng, max_c=2)
                ph, pw = (int(x) for x in rng.integers(1, 5, 2))
                osize = ph if (ph == pw or rng.random() < 0.15) else [ph, pw]
                if isinstance(osize, int):
                    pw = ph
                rois, fams = roi_rows(rng, int(rng.integers(1, 5)), N, H, W, scale, dtype, "torchvision")
                sp = rng.random() < 0.1
                feat = feature_map(rng, dtype, (N, C, H, W), sp)
                feat[:, :, 0, 0] = np.where(np.isfinite(feat[:, :, 0, 0]), feat[:, :, 0, 0], 1)
                as_list = rng.random() < 0.3
                if as_list:
                    # list form: column 0 is the list position; integer indices only
                    rois[:, 0] = np.trunc(rois[:, 0].astype(np.float64)).astype(dtype)
                    rois = rois[np.argsort(rois[:, 0], kind="stable")]
                    blist = [rois[rois[:, 0] == i][:, 1:] for i in range(N)]
                    tboxes = [torch.from_numpy(b.copy()) for b in blist]
                else:
                    tboxes = torch.from_numpy(rois.copy())
                x = torch.from_numpy(feat.copy()).requires_grad_(True)
                try:
                    out = roi_align(x, tboxes, osize, scale, sr, aligned)
                except ValueError as e:  # std::vector max_size(): undefined in roiops terms
                    assert "max_size" in str(e), e
                    continue
                break
            go = torch.from_numpy(coarse(rng, rng.standard_normal(tuple(out.shape)).astype(dtype)))
            out.backward(go)
            gin = x.grad.numpy().copy()
            # the backward is repeatable
            x2 = torch.from_numpy(feat.copy()).requires_grad_(True)
            roi_align(x2, tboxes, osize, scale, sr, aligned).backward(go)
            assert bits_equal(gin, x2.grad.numpy())
            arrays = dict(input=feat, out=out.detach().numpy(), grad_output=go.numpy(), grad_input=gin)
            if as_list:
                for i, b in enumerate(blist):
                    arrays["boxes%d" % i] = b
            else:
                arrays["boxes"] = rois
            store.add("roi_align", dict(dtype=dtype, output_size=osize, spatial_scale=scale,
                                        sampling_ratio=sr, aligned=aligned,
                                        boxes_list=len(blist) if as_list else 0,
                                        families=fams, special=bool(sp)), arrays)
    return "torch %s, torchvision %s" % (torch.__version__, torchvision.__version__)


def gen_torchvision_ps(store, rng):
    """ps_roi_align and ps_roi_pool (issue 16): forward and input gradient of each, in every
    dtype torchvision's CPU kernels dispatch (float16, float32, float64)."""
    import torch
    import torchvision
    from torchvision.ops import ps_roi_align, ps_roi_pool
    torch.set_num_threads(1)

    def run(x, boxes, output_size, scale, sampling_ratio):
        if sampling_ratio is None:
            return ps_roi_pool(x, boxes, output_size, scale)
        return ps_roi_align(x, boxes, output_size, scale, sampling_ratio)

    combos = [(op, dt, sr, sc) for op in ("ps_roi_align", "ps_roi_pool")
              for dt in ("float32", "float64", "float16")
              for sr in ((-1, 0, 1, 2, 3) if op == "ps_roi_align" else (None,))
              for sc in SCALES]
    reps = {"float32": 2, "float64": 1, "float16": 2}
    for op, dtype, sr, scale in combos:
        for _ in range(reps[dtype] * (1 if op == "ps_roi_align" else 3)):
            N, C, H, W = feature_dims(rng, max_c=2)
            ph, pw = (int(x) for x in rng.integers(1, 4, 2))
            osize = ph if (ph == pw or rng.random() < 0.15) else [ph, pw]
            if isinstance(osize, int):
                pw = ph
            C *= ph * pw
            rois, fams = roi_rows(rng, int(rng.integers(1, 5)), N, H, W, scale, dtype,
                                  "torchvision")
            sp = rng.random() < 0.1
            feat = feature_map(rng, dtype, (N, C, H, W), sp)
            as_list = rng.random() < 0.3
            if as_list:
                rois[:, 0] = np.trunc(rois[:, 0].astype(np.float64)).astype(dtype)
                rois = rois[np.argsort(rois[:, 0], kind="stable")]
                blist = [rois[rois[:, 0] == i][:, 1:] for i in range(N)]
                tboxes = [torch.from_numpy(b.copy()) for b in blist]
            else:
                tboxes = torch.from_numpy(rois.copy())

            x = torch.from_numpy(feat.copy()).requires_grad_(True)
            out = run(x, tboxes, osize, scale, sr)
            go = torch.from_numpy(coarse(rng, rng.standard_normal(tuple(out.shape)).astype(dtype)))
            out.backward(go)
            gin = x.grad.numpy().copy()
            x2 = torch.from_numpy(feat.copy()).requires_grad_(True)
            run(x2, tboxes, osize, scale, sr).backward(go)
            assert bits_equal(gin, x2.grad.numpy())
            arrays = dict(input=feat, out=out.detach().numpy(), grad_output=go.numpy(),
                          grad_input=gin)
            if as_list:
                for i, b in enumerate(blist):
                    arrays["boxes%d" % i] = b
            else:
                arrays["boxes"] = rois
            options = dict(dtype=dtype, output_size=osize, spatial_scale=scale,
                           boxes_list=len(blist) if as_list else 0, families=fams,
                           special=bool(sp))
            if sr is not None:
                options["sampling_ratio"] = sr
            store.add(op, options, arrays)
    return "torch %s, torchvision %s" % (torch.__version__, torchvision.__version__)


# --------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) != 2 or sys.argv[1] not in PEER_PY:
        sys.exit("usage: <peer python> tests/golden/make_golden.py "
                 "{tensorflow|mindspore|torchvision|torchvision_ps}")
    peer = sys.argv[1]
    rng = np.random.default_rng(SEEDS[peer])
    store = Store()
    version = {"tensorflow": gen_tensorflow, "mindspore": gen_mindspore,
               "torchvision": gen_torchvision, "torchvision_ps": gen_torchvision_ps}[peer](store, rng)
    command = "%s tests/golden/make_golden.py %s" % (PEER_PY[peer], peer)
    path = os.path.join(HERE, peer + ".npz")
    store.save(path, version, command)
    ops = {}
    for c in store.cases:
        ops[c["op"]] = ops.get(c["op"], 0) + 1
    print("%s: %d cases %s, %d raw bytes -> %s (%d bytes)" % (
        peer, len(store.cases), ops, store.nbytes, path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
