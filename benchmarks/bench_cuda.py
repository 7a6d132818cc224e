"""roiops's Triton kernels on a GPU: roi_align against torchvision's CUDA kernels (its atomic
backward and its deterministic mode), crop_and_resize against the copy-bandwidth floor,
float32, side by side in one process.

    PYTHONPATH=src:benchmarks python3 benchmarks/bench_cuda.py [--repeats 25]
    PYTHONPATH=src:benchmarks python3 benchmarks/bench_cuda.py --sweep

Needs torch with CUDA, triton and torchvision (the device machine's image has them; roiops
runs from the checkout). ``--device cpu`` runs the same script on the CPU kernels, as a smoke
test where there is no GPU (no sweep, no memory figures).

Timing: every call is timed from before the launch to after ``torch.cuda.synchronize()``,
contenders taking turns in a seeded random order (``harness.median_seconds``); the tables
give medians. That is what a user's call costs, host work included: roiops copies the boxes
to the host to check them, a device sync per call. ``--sweep`` times the kernels alone
(``triton.testing.do_bench``: CUDA events, median, L2 flushed between calls) for each
launch shape of ``roiops.<op>.cuda.LAUNCH``.

- roi_align: the forward; the input gradient alone (roiops's deterministic kernel against
  torchvision's ``_roi_align_backward``, atomic); forward+backward through autograd, also for
  torchvision under ``torch.use_deterministic_algorithms(True)`` (a pure-PyTorch path), with
  the peak memory each allocates above the inputs.
- crop_and_resize: forward, GradImage and GradBoxes against the floor: the bytes an operator
  must move over the device's copy bandwidth (a 1 GiB device-to-device copy, counting the
  bytes read and written). Forward: the output written; GradImage: the gradients read and
  the image-sized result written; GradBoxes: the gradients and the image read.
"""
import argparse

import numpy as np
import torch

import roiops
from harness import median_seconds, report

ROI_WORKLOADS = [
    # title, feature shape, spatial scale, rois, pooled size, image size (height, width)
    ("[2,256,100,152], 1/8, 512 rois, 7x7", (2, 256, 100, 152), 1 / 8, 512, 7, (800, 1216)),
    ("[2,256,100,152], 1/8, 256 rois, 14x14", (2, 256, 100, 152), 1 / 8, 256, 14, (800, 1216)),
    ("FPN level [2,256,200,304], 1/4, 1000 rois, 7x7", (2, 256, 200, 304), 1 / 4, 1000, 7,
     (800, 1216)),
]
CROP_WORKLOADS = [
    ("image [2,64,64,256], 512 boxes, crop 14x14", (2, 64, 64, 256), 512, (14, 14)),
    ("image [4,512,512,3], 256 boxes, crop 224x224", (4, 512, 512, 3), 256, (224, 224)),
]
SAMPLING_RATIO = 2

# Launch shapes tried by --sweep, per kernel (the first of each list is the module's default
# at the time of writing).
ROI_SWEEP = {
    "forward": [{"LANES": lanes, "num_warps": warps} for lanes, warps in
                [(256, 4), (128, 4), (128, 2), (256, 2), (512, 4), (512, 8), (1024, 8),
                 (64, 2)]],
    "grad_input": [{"BLOCK_C": c, "UNROLL": u, "num_warps": w} for c, u, w in
                   [(128, 4, 4), (256, 4, 8), (256, 8, 8), (64, 4, 2), (32, 4, 1),
                    (128, 1, 4), (128, 8, 4), (64, 8, 2)]],
    "grad_boxes": [{"BLOCK_C": c, "num_warps": w} for c, w in
                   [(128, 4), (32, 1), (64, 2), (256, 8), (256, 4)]],
}
CROP_SWEEP = {
    "forward": [{"LANES": lanes, "BLOCK_D": d, "num_warps": w} for lanes, d, w in
                [(256, 64, 4), (512, 64, 4), (1024, 64, 8), (256, 32, 2), (512, 128, 4),
                 (128, 32, 1), (1024, 256, 8), (2048, 256, 8)]],
    "grad_image": [{"BLOCK_D": d, "TILE_H": h, "TILE_W": tw, "num_warps": w} for d, h, tw, w in
                   [(32, 4, 8, 4), (32, 8, 8, 4), (32, 8, 8, 8), (16, 4, 4, 2), (64, 4, 4, 4),
                    (32, 2, 4, 2), (32, 4, 4, 2), (8, 8, 8, 4), (32, 4, 8, 2)]],
    "grad_boxes": [{"BLOCK": b, "num_warps": w} for b, w in
                   [(128, 4), (256, 2), (512, 4), (1024, 8)]],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sweep", action="store_true",
                        help="instead, time the kernels under every launch shape of ROI_SWEEP "
                             "and CROP_SWEEP")
    parser.add_argument("--skip-deterministic", action="store_true",
                        help="leave out torchvision's deterministic mode")
    return parser.parse_args()


def synchronized(device, fn):
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize(device)
    return call


def copy_bandwidth(device, repeats):
    """Bytes per second of a device-to-device copy, counting bytes read and written."""
    source = torch.empty(1 << 28, dtype=torch.float32, device=device)  # 1 GiB
    target = torch.empty_like(source)
    seconds = median_seconds({"copy": synchronized(device, lambda: target.copy_(source))},
                             repeats)["copy"]
    return 2 * source.numel() * source.element_size() / seconds


def peak_bytes(device, fn):
    """Bytes ``fn`` allocates at its peak above what was allocated before it ran."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def make_rois(count, image_size, generator, device):
    height, width = image_size
    x1 = torch.rand(count, generator=generator, dtype=torch.float64) * width * 0.8
    y1 = torch.rand(count, generator=generator, dtype=torch.float64) * height * 0.8
    x2 = torch.clamp(x1 + 16 + torch.rand(count, generator=generator, dtype=torch.float64) * 384,
                     max=width)
    y2 = torch.clamp(y1 + 16 + torch.rand(count, generator=generator, dtype=torch.float64) * 384,
                     max=height)
    index = torch.randint(0, 2, (count,), generator=generator).double()
    return torch.stack([index, x1, y1, x2, y2], dim=1).float().to(device)


def roi_inputs(workload, generator, device):
    _, shape, scale, count, pooled, image_size = workload
    features = torch.randn(shape, generator=generator).to(device)
    rois = make_rois(count, image_size, generator, device)
    grads = torch.randn((count, shape[1], pooled, pooled), generator=generator).to(device)
    return features, rois, grads


def bench_roi_align(device, repeats, generator, deterministic):
    from torchvision.ops import roi_align as tv_roi_align

    import roiops.torch.ops as ops

    for workload in ROI_WORKLOADS:
        title, shape, scale, count, pooled, _ = workload
        features, rois, grads = roi_inputs(workload, generator, device)
        leaf = features.clone().requires_grad_()
        options = ([pooled, pooled], scale, SAMPLING_RATIO, True, "torchvision", 1)

        def roiops_forward():
            return roiops.roi_align(features, rois, pooled, spatial_scale=scale,
                                    sampling_ratio=SAMPLING_RATIO, aligned=True)

        def tv_forward():
            return tv_roi_align(features, rois, pooled, scale, SAMPLING_RATIO, True)

        def roiops_backward():
            return ops.roi_align_grad_input(grads, rois, list(shape), *options)

        def tv_backward():
            return torch.ops.torchvision._roi_align_backward(
                grads, rois, scale, pooled, pooled, *shape, SAMPLING_RATIO, True)

        def roiops_both():
            leaf.grad = None
            roiops.roi_align(leaf, rois, pooled, spatial_scale=scale,
                             sampling_ratio=SAMPLING_RATIO, aligned=True).backward(grads)

        def tv_both():
            leaf.grad = None
            tv_roi_align(leaf, rois, pooled, scale, SAMPLING_RATIO, True).backward(grads)

        def tv_deterministic_both():
            torch.use_deterministic_algorithms(True)
            try:
                tv_both()
            finally:
                torch.use_deterministic_algorithms(False)

        forward = median_seconds({"torchvision": synchronized(device, tv_forward),
                                  "roiops": synchronized(device, roiops_forward)}, repeats)
        report(f"roi_align forward: {title}", forward, ["torchvision"])
        backward = median_seconds(
            {"torchvision (atomic)": synchronized(device, tv_backward),
             "roiops (deterministic)": synchronized(device, roiops_backward)}, repeats)
        report(f"roi_align input gradient alone: {title}", backward, ["torchvision (atomic)"])
        both_contenders = {"torchvision": synchronized(device, tv_both),
                           "roiops (deterministic backward)": synchronized(device, roiops_both)}
        if deterministic:
            both_contenders["torchvision, deterministic mode"] = synchronized(
                device, tv_deterministic_both)
        both = median_seconds(both_contenders, repeats)
        notes = []
        if device.type == "cuda":
            base = {"torchvision": tv_both, "roiops (deterministic backward)": roiops_both}
            if deterministic:
                base["torchvision, deterministic mode"] = tv_deterministic_both
            peaks = ", ".join(f"{name} {peak_bytes(device, fn) / 2**20:.0f} MiB"
                              for name, fn in base.items())
            notes.append(f"Peak memory above the inputs: {peaks}.")
        report(f"roi_align forward+backward: {title}", both, ["torchvision"], notes)


def bench_overhead(device, repeats):
    """A tiny roi_align (8 channels, 8 x 8 pixels, one roi: the kernel's own time is a few
    microseconds), so that the medians are what each layer costs on the host: the public
    function, the ``torch.library`` op, its CUDA implementation (checks, the rois copied to
    the host for them), the kernel launch alone; torchvision's public function beside them."""
    from torchvision.ops import roi_align as tv_roi_align

    import roiops.torch.ops as ops
    from roiops.roi_align import api as roi_api
    from roiops.roi_align import cuda as roi_cuda

    features = torch.randn(1, 8, 8, 8, device=device)
    rois = torch.tensor([[0.0, 1.0, 1.0, 6.0, 6.0]], device=device)
    indices = torch.zeros(1, dtype=torch.int64, device=device)
    options = roi_api.Options((2, 2), 1.0, 2, True, "torchvision", 1)
    layers = {
        "torchvision.ops.roi_align": lambda: tv_roi_align(features, rois, 2, 1.0, 2, True),
        "roiops.roi_align": lambda: roiops.roi_align(features, rois, 2, sampling_ratio=2,
                                                     aligned=True),
        "torch.ops.roiops.roi_align": lambda: ops.roi_align(features, rois, [2, 2], 1.0, 2,
                                                            True, "torchvision", 1),
        "its CUDA implementation": lambda: ops._cuda_roi_align(features, rois, [2, 2], 1.0, 2,
                                                               True, "torchvision", 1),
        "the kernels alone": lambda: roi_cuda.forward(features, rois, indices, options),
    }
    medians = median_seconds({name: synchronized(device, fn) for name, fn in layers.items()},
                             repeats * 4)
    report("host cost of one tiny roi_align call, by layer", medians,
           ["torchvision.ops.roi_align"])


def crop_inputs(workload, generator, device):
    _, image_shape, count, crop_size = workload
    image = torch.rand(image_shape, generator=generator).to(device)
    start = torch.rand((count, 2), generator=generator) * 0.7
    boxes = torch.cat([start, start + 0.1 + torch.rand((count, 2), generator=generator) * 0.2],
                      dim=1).to(device)
    indices = torch.randint(0, image_shape[0], (count,), generator=generator,
                            dtype=torch.int32).to(device)
    grads = torch.randn((count, *crop_size, image_shape[3]), generator=generator).to(device)
    return image, boxes, indices, grads


def bench_crop_and_resize(device, repeats, generator, bandwidth):
    for workload in CROP_WORKLOADS:
        title, image_shape, count, crop_size = workload
        image, boxes, indices, grads = crop_inputs(workload, generator, device)
        item = 4
        output_bytes = grads.numel() * item
        image_bytes = image.numel() * item
        operators = [
            ("forward", output_bytes,
             lambda: roiops.crop_and_resize(image, boxes, indices, crop_size)),
            ("GradImage", output_bytes + image_bytes,
             lambda: roiops.crop_and_resize_grad_image(grads, boxes, indices, image_shape)),
            ("GradBoxes", output_bytes + image_bytes,
             lambda: roiops.crop_and_resize_grad_boxes(grads, image, boxes, indices)),
        ]
        for name, moved, fn in operators:
            seconds = median_seconds({"roiops": synchronized(device, fn)}, repeats)["roiops"]
            floor = moved / bandwidth
            print(f"\n### crop_and_resize {name}: {title}\n")
            print(f"roiops {seconds * 1e3:.3f} ms; floor {floor * 1e3:.3f} ms "
                  f"({moved / 1e6:.1f} MB at {bandwidth / 1e9:.0f} GB/s); "
                  f"roiops / floor = {seconds / floor:.2f}")


def _kernel_milliseconds(fn):
    from triton.testing import do_bench
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def _sweep_table(title, module, kernel, shapes, fn):
    """Time ``fn`` (a kernel call) under each launch shape of ``kernel``; restore the default."""
    default = dict(module.LAUNCH[kernel])
    print(f"\n### {title}\n\n| launch shape | kernel median ms |\n|---|---|")
    try:
        for shape in shapes:
            module.LAUNCH[kernel] = dict(shape)
            try:
                milliseconds = f"{_kernel_milliseconds(fn):.3f}"
            except Exception as error:  # a shape the compiler refuses (registers, shared memory)
                milliseconds = f"failed: {type(error).__name__}: {str(error)[:80]}"
            label = ", ".join(f"{k}={v}" for k, v in shape.items())
            print(f"| {label} | {milliseconds} |", flush=True)
    finally:
        module.LAUNCH[kernel] = default


def sweep(device, generator):
    """The kernels alone (no checks, no host round trip) under each launch shape."""
    from roiops.crop_and_resize import cuda as crop_cuda
    from roiops.roi_align import api as roi_api
    from roiops.roi_align import cuda as roi_cuda

    for workload in ROI_WORKLOADS[:1]:
        title, shape, scale, count, pooled, image_size = workload
        features, rois, grads = roi_inputs(workload, generator, device)
        indices = rois[:, 0].long()
        options = roi_api.Options((pooled, pooled), scale, SAMPLING_RATIO, True,
                                  "torchvision", 1)
        _sweep_table(f"roi_align forward kernel: {title}", roi_cuda, "forward",
                     ROI_SWEEP["forward"],
                     lambda: roi_cuda.forward(features, rois, indices, options))
        _sweep_table(f"roi_align input gradient kernel: {title}", roi_cuda, "grad_input",
                     ROI_SWEEP["grad_input"],
                     lambda: roi_cuda.grad_input(grads, rois, indices, shape, options))
        _sweep_table(f"roi_align box gradient kernel: {title}", roi_cuda, "grad_boxes",
                     ROI_SWEEP["grad_boxes"],
                     lambda: roi_cuda.grad_boxes(grads, features, rois, indices, options))
        # A hot spot: every roi a 1-pixel box in one corner of image 0, so that all the adds
        # land on 4 pixels (a tile-owning kernel serializes them all in one program).
        corner = rois.clone()
        corner[:, 0] = 0
        corner[:, 1:] = torch.tensor([0.0, 0.0, 1.0, 1.0], device=device)
        corner_indices = torch.zeros_like(indices)
        print(f"\nroi_align input gradient, every roi on one corner (hot spot): "
              f"{_kernel_milliseconds(lambda: roi_cuda.grad_input(grads, corner, corner_indices, shape, options)):.3f} ms")  # noqa: E501
    for workload in CROP_WORKLOADS:
        title, image_shape, count, crop_size = workload
        image, boxes, indices, grads = crop_inputs(workload, generator, device)
        indices = indices.long()
        _sweep_table(f"crop_and_resize forward kernel: {title}", crop_cuda, "forward",
                     CROP_SWEEP["forward"],
                     lambda: crop_cuda.forward(image, boxes, indices, crop_size, "bilinear",
                                               0.0, "NHWC", torch.float32))
        _sweep_table(f"crop_and_resize GradImage kernel: {title}", crop_cuda, "grad_image",
                     CROP_SWEEP["grad_image"],
                     lambda: crop_cuda.grad_image(grads, boxes, indices, image_shape,
                                                  "bilinear", "NHWC", torch.float32))
        _sweep_table(f"crop_and_resize GradBoxes kernel: {title}", crop_cuda, "grad_boxes",
                     CROP_SWEEP["grad_boxes"],
                     lambda: crop_cuda.grad_boxes(grads, image, boxes, indices, "NHWC",
                                                  torch.float32))


def resource_report():
    """Registers, spills and shared memory of every compiled kernel variant (Triton's
    compiled-kernel cache), to read alongside the sweep."""
    from roiops.crop_and_resize import cuda as crop_cuda
    from roiops.roi_align import cuda as roi_cuda

    print("\n### Compiled kernels\n\n| kernel | variant | warps | registers | spills | "
          "shared bytes |\n|---|---|---|---|---|---|")
    for module in (roi_cuda, crop_cuda):
        for name in sorted(vars(module)):
            kernel = getattr(module, name)
            for cache in getattr(kernel, "device_caches", {}).values():
                for compiled in cache[0].values():
                    try:
                        compiled._init_handles()
                        meta = compiled.metadata
                        constants = {k: v for k, v in dict(getattr(meta, "constants", {})).items()
                                     if isinstance(v, (int, bool))}
                        print(f"| {module.__name__.split('.')[1]}.{name} | {constants} | "
                              f"{meta.num_warps} | {compiled.n_regs} | {compiled.n_spills} | "
                              f"{meta.shared} |")
                    except Exception as error:  # a report, never a failure
                        print(f"| {name} | unreadable: {type(error).__name__} | | | | |")


def main():
    args = parse_args()
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    import torchvision
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:  # the CPU smoke test runs without it
        triton_version = "absent"

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"## roiops on {name}, float32\n")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"triton {triton_version}, roiops {roiops.__version__}, numpy {np.__version__}")
    if args.sweep:
        sweep(device, generator)
        resource_report()
        return
    bandwidth = copy_bandwidth(device, args.repeats)
    print(f"\ndevice-to-device copy: {bandwidth / 1e9:.0f} GB/s (read + written)", flush=True)
    if device.type == "cuda":
        try:
            bench_overhead(device, args.repeats)
        except Exception as error:  # a diagnostic: never in the way of the benchmarks
            print(f"\nhost-cost table failed: {type(error).__name__}: {error}")
    bench_roi_align(device, args.repeats, generator, not args.skip_deterministic)
    bench_crop_and_resize(device, args.repeats, generator, bandwidth)


if __name__ == "__main__":
    main()
