"""``roiops bench``: roiops's operators against whichever peers are importable, on this machine.

Every contender runs on the same inputs, alternately in one process, on tensors it already
holds; results are not converted to NumPy (except MindSpore's, to wait for them). The table
gives each one's median time and its ratio to roiops's (above 1: roiops is faster). Thread
counts are each library's defaults.
"""
import importlib
import sys

import numpy as np

import roiops

from .._timing import median_seconds

PEERS = ("tensorflow", "mindspore", "torchvision")


def load_peers():
    """``{name: module}`` of the peers that import, and a note for each that does not."""
    modules, notes = {}, []
    for name in PEERS:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            notes.append(f"{name}: not installed")
        except Exception as error:  # a broken install must not stop the benchmark
            notes.append(f"{name}: import failed ({type(error).__name__}: {error})")
    return modules, notes


def crop_inputs(rng, image_shape, num_boxes):
    image = rng.random(image_shape, dtype=np.float32)
    start = rng.uniform(0, 0.7, (num_boxes, 2))
    boxes = np.concatenate([start, start + rng.uniform(0.1, 0.3, (num_boxes, 2))], axis=1)
    return image, boxes.astype(np.float32), rng.integers(0, image_shape[0], num_boxes).astype(
        np.int32)


def roi_inputs(rng, feature_shape, num_rois, scale):
    features = rng.random(feature_shape, dtype=np.float32)
    height, width = feature_shape[2] / scale, feature_shape[3] / scale
    x1, y1 = rng.uniform(0, width * 0.7, num_rois), rng.uniform(0, height * 0.7, num_rois)
    x2, y2 = x1 + rng.uniform(8, width * 0.3, num_rois), y1 + rng.uniform(8, height * 0.3, num_rois)
    index = rng.integers(0, feature_shape[0], num_rois)
    rois = np.stack([index, x1, y1, x2, y2], axis=1).astype(np.float32)
    return features, rois


def crop_and_resize_contenders(peers, image, boxes, indices, crop_size):
    contenders = {"roiops": lambda: roiops.crop_and_resize(image, boxes, indices, crop_size)}
    if "tensorflow" in peers:
        tf = peers["tensorflow"]
        t_image, t_boxes, t_ind = tf.constant(image), tf.constant(boxes), tf.constant(indices)
        contenders["TensorFlow"] = lambda: tf.image.crop_and_resize(t_image, t_boxes, t_ind,
                                                                   crop_size)
    if "mindspore" in peers:
        ms = peers["mindspore"]
        op = ms.ops.CropAndResize()
        m_image, m_boxes, m_ind = ms.Tensor(image), ms.Tensor(boxes), ms.Tensor(indices)
        contenders["MindSpore"] = lambda: _ms_sync(ms, op(m_image, m_boxes, m_ind, crop_size))
    return contenders


def roi_align_contenders(peers, features, rois, output_size, scale):
    contenders = {
        "roiops (torchvision convention)": lambda: roiops.roi_align(
            features, rois, output_size, spatial_scale=scale, sampling_ratio=2, aligned=True),
    }
    if "torchvision" in peers:
        import torch

        ops = importlib.import_module("torchvision.ops")
        t_features, t_rois = torch.from_numpy(features), torch.from_numpy(rois)

        def torchvision_roi_align():
            with torch.no_grad():
                return ops.roi_align(t_features, t_rois, output_size, scale, 2, True)

        contenders["torchvision"] = torchvision_roi_align
    contenders["roiops (mindspore convention)"] = lambda: roiops.roi_align(
        features, rois, output_size, spatial_scale=scale, sampling_ratio=2,
        convention="mindspore", roi_end_mode=1)
    if "mindspore" in peers:
        ms = peers["mindspore"]
        op = ms.ops.ROIAlign(output_size[0], output_size[1], scale, 2, 1)
        m_features, m_rois = ms.Tensor(features), ms.Tensor(rois)
        contenders["MindSpore"] = lambda: _ms_sync(ms, op(m_features, m_rois))
    return contenders


def _ms_sync(ms, result):
    """Wait for MindSpore's (possibly asynchronous) kernel: reading the result back is the one
    portable way on CPU (``ms.runtime.synchronize`` is for devices); it adds one copy."""
    return result.asnumpy()


def workloads(peers, rng):
    """``(title, contenders, baselines)``: each peer's ratio is to the roiops row before it."""
    image, boxes, indices = crop_inputs(rng, (4, 128, 128, 32), 256)
    yield ("crop_and_resize: image [4,128,128,32], 256 boxes, crop 14x14",
           crop_and_resize_contenders(peers, image, boxes, indices, (14, 14)))
    image, boxes, indices = crop_inputs(rng, (8, 480, 640, 3), 80)
    yield ("crop_and_resize: image [8,480,640,3], 80 boxes, crop 64x64",
           crop_and_resize_contenders(peers, image, boxes, indices, (64, 64)))
    features, rois = roi_inputs(rng, (2, 256, 64, 64), 256, 0.25)
    yield ("roi_align: features [2,256,64,64], 256 rois, 7x7, sampling_ratio 2",
           roi_align_contenders(peers, features, rois, (7, 7), 0.25))


def table(results):
    """Markdown table of ``[(title, medians)]``: each peer's ratio to the roiops row above it."""
    lines = ["| workload | contender | median ms | peer / roiops |", "|---|---|---:|---:|"]
    for title, medians in results:
        baseline = None
        for name, seconds in medians.items():
            if name.startswith("roiops"):
                baseline, ratio = seconds, "1.00"
            else:
                ratio = f"{seconds / baseline:.2f}"
            lines.append(f"| {title} | {name} | {seconds * 1e3:.3f} | {ratio} |")
    return "\n".join(lines)


def draw_chart(pyplot, results, path):
    """A horizontal bar chart of the medians, one panel per workload."""
    figure, axes = pyplot.subplots(len(results), 1, figsize=(8, 2.2 * len(results)),
                                   squeeze=False)
    for axis, (title, medians) in zip(axes[:, 0], results):
        names = list(medians)
        axis.barh(names, [medians[name] * 1e3 for name in names],
                  color=["tab:blue" if n.startswith("roiops") else "tab:gray" for n in names])
        axis.invert_yaxis()
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("median ms (lower is better)", fontsize=8)
        axis.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run(chart=None, repeats=10, stdout=None, stderr=None):
    """Time every workload, print the table (and draw ``chart``); return the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    pyplot = None
    if chart:
        try:
            import matplotlib

            matplotlib.use("Agg")
            pyplot = importlib.import_module("matplotlib.pyplot")
        except ImportError:
            print("roiops bench: error: --chart needs matplotlib, which is not installed "
                  "(pip install matplotlib); run without --chart for the table", file=stderr)
            return 2
    peers, notes = load_peers()
    import numba

    versions = ", ".join(f"{name} {getattr(module, '__version__', '?')}"
                         for name, module in peers.items()) or "no peers"
    print(f"roiops {roiops.__version__} ({numba.get_num_threads()} Numba threads) vs "
          f"{versions}; float32, median of {repeats} calls", file=stdout, flush=True)
    results = []
    for title, contenders in workloads(peers, np.random.default_rng(0)):
        results.append((title, median_seconds(contenders, repeats)))
    print(table(results), file=stdout)
    for note in notes:
        print(f"- {note}", file=stdout)
    if not peers:
        print("No peer is importable here: install tensorflow, mindspore or torchvision in "
              "this environment to compare.", file=stdout)
    if pyplot is not None:
        draw_chart(pyplot, results, chart)
        print(f"chart: {chart}", file=stdout)
    return 0
