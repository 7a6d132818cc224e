"""Golden files of rotated RoI Align from the REAL mmcv CPU kernel, built from mmcv's sdist.

mmcv's wheels need its compiled ``_ext``; here only its two rotated RoI Align sources are
compiled (against the torchvision peer's torch), which is all its CPU op needs::

    .peers/tv/bin/python tests/golden/make_rotated_golden.py

1. ``pip download mmcv==2.2.0 --no-binary :all: --no-deps --no-build-isolation`` into
   ``$ROIOPS_MMCV_BUILD`` (default ``/tmp/roiops-mmcv``); the sdist's ``setup.py`` imports
   ``pkg_resources``, so a throwaway venv with ``setuptools<81`` and ``wheel`` runs the download.
2. ``torch.utils.cpp_extension.load`` compiles ``mmcv/ops/csrc/pytorch/roi_align_rotated.cpp``
   and ``.../pytorch/cpu/roi_align_rotated.cpp`` with a ten-line pybind module written here
   (``-O2``, the compiler's defaults: no FMA on x86-64).
3. Random and edge cases, forward and input gradient (mmcv's backward), float16, float32 and
   float64, written to ``tests/golden/mmcv_rotated.npz`` in the format of ``make_golden.py``.

detectron2's ``ROIAlignRotated`` is not on PyPI, so it is not built: its CPU kernel is mmcv's
with ``aligned=True, clockwise=False``, the angle converted from degrees in double, ``ceil``
instead of ``ceilf`` and float16 run in float32 (docs/rotated.md); the detectron2 cases
here are mmcv's run on the angle that conversion gives (``"angle_degrees"`` in the case).

The inputs come from ``numpy.random.default_rng(SEED)``: a rerun gives identical files.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import Store, bits_equal  # noqa: E402

SEED = 20251205
MMCV_VERSION = "2.2.0"
BUILD = os.environ.get("ROIOPS_MMCV_BUILD", "/tmp/roiops-mmcv")
BINDING = """
#include <torch/extension.h>
using at::Tensor;
void roi_align_rotated_forward(Tensor, Tensor, Tensor, int, int, float, int, bool, bool);
void roi_align_rotated_backward(Tensor, Tensor, Tensor, int, int, float, int, bool, bool);
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &roi_align_rotated_forward);
  m.def("backward", &roi_align_rotated_backward);
}
"""


def build():
    """The compiled mmcv op (downloading and unpacking the sdist if needed)."""
    from torch.utils.cpp_extension import load
    source = os.path.join(BUILD, f"mmcv-{MMCV_VERSION}", "mmcv", "ops", "csrc")
    if not os.path.isdir(source):
        os.makedirs(BUILD, exist_ok=True)
        venv = os.path.join(BUILD, "venv")
        pip = os.path.join(venv, "bin", "pip")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([pip, "install", "-q", "setuptools<81", "wheel"], check=True)
        subprocess.run([pip, "download", "-q",
                        f"mmcv=={MMCV_VERSION}", "--no-binary", ":all:", "--no-deps",
                        "--no-build-isolation", "-d", BUILD], check=True)
        with tarfile.open(os.path.join(BUILD, f"mmcv-{MMCV_VERSION}.tar.gz")) as archive:
            archive.extractall(BUILD, filter="data")
    files = {"binding.cpp": BINDING}
    with open(os.path.join(source, "pytorch", "roi_align_rotated.cpp")) as f:
        files["op.cpp"] = f.read()
    with open(os.path.join(source, "pytorch", "cpu", "roi_align_rotated.cpp")) as f:
        files["cpu.cpp"] = f.read()
    out = os.path.join(BUILD, "ext")
    os.makedirs(out, exist_ok=True)
    for name, text in files.items():  # distinct object names for ninja
        path = os.path.join(out, name)
        if not os.path.exists(path) or open(path).read() != text:  # else no rebuild
            with open(path, "w") as f:
                f.write(text)
    return load("mmcv_roi_align_rotated", [os.path.join(out, n) for n in files],
                extra_include_paths=[os.path.join(source, "common"),
                                     os.path.join(source, "pytorch")],
                extra_cflags=["-O2"], build_directory=out)


def detectron2_radians(degrees, dtype):
    """detectron2's angle: ``T(double(angle) * M_PI / 180.0)``, in the case's dtype."""
    return np.array([float(d) * math.pi / 180.0 for d in degrees], np.float64).astype(dtype)


def rois_for(rng, count, batch, height, width, aligned, degrees):
    """``[count, 6]`` float64 rois: centres around the map, sizes from 0 to twice the map
    (negative too when not aligned: mmcv holds them at 1), angles over two turns, batch
    indices with fractions (truncated), a few exact right angles."""
    b = rng.integers(0, batch, count) + rng.choice([0.0, 0.25, 0.9], count)
    cx = rng.uniform(-3, width + 3, count)
    cy = rng.uniform(-3, height + 3, count)
    low = 0.0 if aligned else -2.0
    w = rng.uniform(low, 2 * width, count)
    h = rng.uniform(low, 2 * height, count)
    w[rng.random(count) < 0.1] = 0.0
    turn = 360.0 if degrees else 2 * math.pi
    angle = rng.uniform(-turn, turn, count)
    right = rng.random(count) < 0.25
    angle[right] = rng.integers(-4, 5, int(right.sum())) * turn / 4
    return np.stack([b, cx, cy, w, h, angle], axis=1)


def main():
    import torch
    torch.set_num_threads(1)
    ext = build()
    rng = np.random.default_rng(SEED)
    store = Store()
    for case in range(240):
        dtype = ["float32", "float64", "float16"][case % 3]
        degrees = case % 4 == 3  # detectron2
        aligned = True if degrees else bool(rng.random() < 0.7)
        clockwise = False if degrees else bool(rng.random() < 0.5)
        batch, channels = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        height, width = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        ph, pw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sampling_ratio = int(rng.choice([0, 0, 1, 2, 3]))
        spatial_scale = float(rng.choice([1.0, 0.5, 0.3, 1 / 16 * 10]))
        count = int(rng.integers(1, 6))
        values = rng.standard_normal((batch, channels, height, width)) * 10
        input = torch.tensor(values.astype(dtype))
        rois64 = rois_for(rng, count, batch, height, width, aligned, degrees)
        rois = rois64.astype(dtype)
        # detectron2 runs float16 in float32 (its module casts input and rois, then back)
        kernel_dtype = "float32" if degrees and dtype == "float16" else dtype
        kernel_rois = rois.astype(kernel_dtype)
        if degrees:
            kernel_rois[:, 5] = detectron2_radians(kernel_rois[:, 5], kernel_dtype)
        kernel_rois = torch.tensor(kernel_rois)
        kernel_input = input.to(getattr(torch, kernel_dtype))
        output = kernel_input.new_zeros(count, channels, ph, pw)
        ext.forward(kernel_input, kernel_rois, output, ph, pw, spatial_scale, sampling_ratio,
                    aligned, clockwise)
        output = output.to(input.dtype)
        grads = torch.tensor((rng.standard_normal(output.shape) * 3).astype(dtype))
        grad_input = [kernel_input.new_zeros(input.shape) for _ in range(2)]
        for target in grad_input:
            ext.backward(grads.to(kernel_input.dtype), kernel_rois, target, ph, pw,
                         spatial_scale, sampling_ratio, aligned, clockwise)
        grad_input = [g.to(input.dtype) for g in grad_input]
        assert bits_equal(grad_input[0].numpy(), grad_input[1].numpy())
        options = {"convention": "detectron2" if degrees else "mmcv",
                   "output_size": [ph, pw], "spatial_scale": spatial_scale,
                   "sampling_ratio": sampling_ratio, "aligned": aligned,
                   "clockwise": clockwise, "angle_degrees": degrees}
        store.add("RoIAlignRotated", options,
                  {"input": input.numpy(), "rois": rois, "out": output.numpy(),
                   "grads": grads.numpy(), "grad_input": grad_input[0].numpy()})
    store.save(os.path.join(HERE, "mmcv_rotated.npz"),
               f"mmcv {MMCV_VERSION} CPU ops (sdist) + torch {torch.__version__}",
               "tests/golden/make_rotated_golden.py")


if __name__ == "__main__":
    main()
