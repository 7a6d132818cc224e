"""roiops's Triton kernels on a GPU: roi_align vs torchvision's CUDA kernels, crop_and_resize
vs the memory-bandwidth floor, float32, side by side in one process.

    PYTHONPATH=src python3 benchmarks/bench_cuda.py [--repeats 25] [--device cuda]

Needs torch with CUDA, triton and torchvision (the device machine's image has them; roiops
runs from the checkout). ``--device cpu`` runs the same script on the CPU kernels, as a smoke
test where there is no GPU.

Each call is timed from before the launch to after ``torch.cuda.synchronize()``, contenders
alternate in a seeded random order each round, and the tables give medians. roi_align
forward+backward is each library's autograd (input gradient; roiops's backward is the
deterministic one). The floor of a crop_and_resize operator is the bytes it must move (below)
over the device's copy bandwidth, measured here as a device-to-device copy of 1 GiB counting
the bytes read and written:

- forward: the output written;
- GradImage: the gradients read and the image-sized result written;
- GradBoxes: the gradients and the image read.
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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--device", default="cuda")
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


def bench_roi_align(device, repeats, generator):
    from torchvision.ops import roi_align as tv_roi_align

    for title, shape, scale, count, pooled, image_size in ROI_WORKLOADS:
        features = torch.randn(shape, generator=generator).to(device)
        rois = make_rois(count, image_size, generator, device)
        grads = torch.randn((count, shape[1], pooled, pooled), generator=generator).to(device)
        leaf = features.clone().requires_grad_()

        def roiops_forward():
            return roiops.roi_align(features, rois, pooled, spatial_scale=scale,
                                    sampling_ratio=SAMPLING_RATIO, aligned=True)

        def tv_forward():
            return tv_roi_align(features, rois, pooled, scale, SAMPLING_RATIO, True)

        def roiops_both():
            leaf.grad = None
            roiops.roi_align(leaf, rois, pooled, spatial_scale=scale,
                             sampling_ratio=SAMPLING_RATIO, aligned=True).backward(grads)

        def tv_both():
            leaf.grad = None
            tv_roi_align(leaf, rois, pooled, scale, SAMPLING_RATIO, True).backward(grads)

        forward = median_seconds({"torchvision": synchronized(device, tv_forward),
                                  "roiops": synchronized(device, roiops_forward)}, repeats)
        report(f"roi_align forward: {title}", forward, ["torchvision"])
        both = median_seconds({"torchvision": synchronized(device, tv_both),
                               "roiops (deterministic backward)": synchronized(device, roiops_both)},
                              repeats)
        report(f"roi_align forward+backward: {title}", both, ["torchvision"])


def bench_crop_and_resize(device, repeats, generator, bandwidth):
    for title, image_shape, count, crop_size in CROP_WORKLOADS:
        image = torch.rand(image_shape, generator=generator).to(device)
        start = torch.rand((count, 2), generator=generator) * 0.7
        boxes = torch.cat([start, start + 0.1 + torch.rand((count, 2), generator=generator) * 0.2],
                          dim=1).to(device)
        indices = torch.randint(0, image_shape[0], (count,), generator=generator,
                                dtype=torch.int32).to(device)
        out_shape = (count, *crop_size, image_shape[3])
        grads = torch.randn(out_shape, generator=generator).to(device)
        item = 4
        output_bytes = int(np.prod(out_shape)) * item
        image_bytes = int(np.prod(image_shape)) * item
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
          f"triton {triton_version}, roiops {roiops.__version__}, "
          f"deterministic algorithms: {torch.are_deterministic_algorithms_enabled()}")
    bandwidth = copy_bandwidth(device, args.repeats)
    print(f"\ndevice-to-device copy: {bandwidth / 1e9:.0f} GB/s (read + written)")
    bench_roi_align(device, args.repeats, generator)
    bench_crop_and_resize(device, args.repeats, generator, bandwidth)


if __name__ == "__main__":
    main()
