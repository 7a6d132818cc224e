"""roiops's Triton kernels on a GPU: the RoI operators against torchvision's CUDA kernels
(their atomic backward and, where it has one, their deterministic mode), rotated RoI Align
beside roi_align, crop_and_resize against the copy-bandwidth floor, float32, side by side in
one process.

    PYTHONPATH=src:benchmarks python3 benchmarks/bench_cuda.py [--repeats 25] [--only SECTIONS]
    PYTHONPATH=src:benchmarks python3 benchmarks/bench_cuda.py --sweep

Needs torch with CUDA, triton and torchvision (the device machine's image has them; roiops
runs from the checkout). ``--device cpu`` runs the same script on the CPU kernels, as a smoke
test where there is no GPU (no sweep, no host-cost table, no memory figures). ``--only``
takes a comma-separated list of sections (below; ``family`` stands for roi_pool,
ps_roi_align, ps_roi_pool, multi_scale and rotated); every section by default. A section
that fails prints its error, the others still run, and the script exits with status 1.

Timing: every call is timed from before the launch to after ``torch.cuda.synchronize()``,
contenders taking turns in a seeded random order (``harness.median_seconds``); the tables
give medians. That is what a user's call costs, host work included: roiops copies the boxes
to the host to check them, a device sync per call. ``--sweep`` times the kernels alone
(``triton.testing.do_bench``: CUDA events, median, L2 flushed between calls) for each
launch shape of ``roiops.<op>.cuda.LAUNCH``.

Before timing, each table's contenders are run once and their results compared with the
first contender's (torchvision's, or roiops's roi_align in the rotated section): the note
under the table says "equal bit for bit" or the largest difference over the largest
magnitude of the reference; beyond 1e-4 the section fails. Every section draws its inputs
from its own seeded generator; the rois of a workload come from a generator of their own, so
every section on the first roi_align workload pools the same 512 rois. The
forward+backward tables give, on a GPU, the peak memory each contender allocates above the
inputs; "torchvision, deterministic mode" is torchvision under
``torch.use_deterministic_algorithms(True)``: a pure-PyTorch path for roi_align (so for
MultiScaleRoIAlign too), none for the other operators, whose CUDA backward raises under the
mode in torchvision's releases that flag its atomic adds ("not supported" in the table) and
runs the usual atomic kernel in those that do not (said under the table).

- overhead (GPU only): the host cost of one tiny roi_align call, layer by layer.
- roi_align: the forward; the input gradient alone (roiops's deterministic kernel against
  torchvision's ``_roi_align_backward``, atomic); forward+backward through autograd, also for
  torchvision under its deterministic mode, with peak memory.
- crop: crop_and_resize forward, GradImage and GradBoxes against the floor: the bytes an
  operator must move over the device's copy bandwidth (a 1 GiB device-to-device copy,
  counting the bytes read and written). Forward: the output written; GradImage: the
  gradients read and the image-sized result written; GradBoxes: the gradients and the image
  read.
- roi_pool: ``roiops.roi_pool`` against ``torchvision.ops.roi_pool`` on the first roi_align
  workload ([2,256,100,152], 1/8, 512 rois, 7x7): forward; forward+backward through autograd
  (input gradient).
- ps_roi_align, ps_roi_pool: against torchvision's on R-FCN score maps, 21 classes x 7 x 7 =
  1029 channels ([2,1029,100,152], 126 MB), the same 512 rois, 7x7, 1/8, sampling_ratio 2
  for ps_roi_align: forward; forward+backward (input gradient).
- multi_scale: ``roiops.compat.torchvision.MultiScaleRoIAlign`` against
  ``torchvision.ops.MultiScaleRoIAlign`` on benchmarks/bench_multi_scale.py's workload: 4 FPN
  levels of an 800x1216 image ([1,256,200,304] .. [1,256,25,38]), 1000 boxes, 7x7,
  sampling_ratio 2: forward; forward+backward (the gradients of the four levels).
- rotated: ``roiops.roi_align_rotated`` (detectron2's convention) has no torchvision
  counterpart: absolute figures beside roiops's roi_align on the first roi_align workload's
  rois (the same boxes as centre, size and angle rows), at angle 0 (checked against
  roi_align) and at angles uniform in [-180, 180) degrees (not checked: no reference here).
"""
import argparse
import sys
import traceback

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
# R-FCN's position-sensitive score maps: classes x bins channels.
PS_CLASSES = 21
# The largest difference over the reference's largest magnitude that a check lets pass:
# atomic adds in another order, fused multiply-adds, the rotated geometry's rounding.
TOLERANCE = 1e-4
SEED = 0

SECTIONS = ["overhead", "roi_align", "crop", "roi_pool", "ps_roi_align", "ps_roi_pool",
            "multi_scale", "rotated"]
FAMILY = ["roi_pool", "ps_roi_align", "ps_roi_pool", "multi_scale", "rotated"]
DETERMINISTIC = "torchvision, deterministic mode"

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
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}, or family "
                             f"({', '.join(FAMILY)}); all by default")
    args = parser.parse_args()
    chosen = set()
    for name in filter(None, args.only.split(",")):
        if name == "family":
            chosen.update(FAMILY)
        elif name in SECTIONS:
            chosen.add(name)
        else:
            parser.error(f"--only: unknown section {name!r}")
    args.sections = [name for name in SECTIONS if name in chosen]
    return args


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


def in_deterministic_mode(fn):
    """``fn`` under ``torch.use_deterministic_algorithms(True)``, the mode restored after."""
    def call():
        torch.use_deterministic_algorithms(True)
        try:
            return fn()
        finally:
            torch.use_deterministic_algorithms(False)
    return call


def _tensors(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def check_results(title, contenders):
    """Run each contender once and compare its results (a tensor or a list of them) with the
    first contender's; the note for the table. AssertionError beyond TOLERANCE: the tables
    would compare different computations."""
    names = list(contenders)
    reference = _tensors(contenders[names[0]]())
    verdicts = []
    for name in names[1:]:
        results = _tensors(contenders[name]())
        assert len(results) == len(reference), f"{title}: {name} gives {len(results)} results"
        worst, equal = 0.0, True
        for got, want in zip(results, reference):
            assert got.shape == want.shape, f"{title}: {name} gives {tuple(got.shape)}"
            if torch.equal(got, want):
                continue
            equal = False
            magnitude = want.abs().max().item() or 1.0
            worst = max(worst, (got.double() - want.double()).abs().max().item() / magnitude)
        if not worst <= TOLERANCE:  # a NaN fails too
            raise AssertionError(f"{title}: {name} differs from {names[0]} by {worst:.2e} of "
                                 f"its largest magnitude")
        verdicts.append(f"{name} equal bit for bit" if equal else
                        f"{name} differs by {worst:.1e} of {names[0]}'s largest magnitude "
                        f"at most")
    return f"Checked before timing against {names[0]}: {'; '.join(verdicts)}."


def compare(device, repeats, title, contenders, unchecked=()):
    """One table: the contenders (the first is the baseline) checked, then timed; the names in
    ``unchecked`` are timed only."""
    note = check_results(title, {name: fn for name, fn in contenders.items()
                                 if name not in unchecked})
    medians = median_seconds({name: synchronized(device, fn)
                              for name, fn in contenders.items()}, repeats)
    report(title, medians, [next(iter(contenders))], [note])


def compare_forward_backward(device, repeats, title, contenders, tv_both=None,
                             deterministic_path=False, unchecked=()):
    """The forward+backward table: ``contenders`` (the first is the baseline) and, where
    ``tv_both`` is given, torchvision's call under its deterministic mode, or "not supported"
    where the mode raises; the peak memory of each on a GPU. ``deterministic_path``: torchvision
    has a deterministic implementation of the op (else the mode can only raise or change
    nothing)."""
    contenders = dict(contenders)
    unsupported = None
    notes = []
    if tv_both is not None:
        in_mode = in_deterministic_mode(tv_both)
        try:
            in_mode()
        except RuntimeError as error:
            reason = str(error).split(". ")[0].splitlines()[0][:160]
            unsupported = f"not supported ({type(error).__name__}: {reason})"
        else:
            contenders[DETERMINISTIC] = in_mode
            if device.type == "cuda" and not deterministic_path:
                notes.append(f"{DETERMINISTIC}: the mode did not raise, and torchvision has no "
                             f"deterministic path for this operator: its usual kernel, atomic "
                             f"adds included.")
    notes.insert(0, check_results(title, {name: fn for name, fn in contenders.items()
                                          if name not in unchecked}))
    medians = median_seconds({name: synchronized(device, fn)
                              for name, fn in contenders.items()}, repeats)
    if device.type == "cuda":
        peaks = ", ".join(f"{name} {peak_bytes(device, fn) / 2**20:.0f} MiB"
                          for name, fn in contenders.items())
        notes.append(f"Peak memory above the inputs: {peaks}.")
    report(title, medians, [next(iter(contenders))])
    if unsupported:
        print(f"| {DETERMINISTIC} | {unsupported} | |")
    for note in notes:
        print(f"\n{note}")


def make_rois(count, image_size, device):
    """``count`` rois ``[K, 5]`` (batch index 0 or 1, x1, y1, x2, y2) over an image of
    ``image_size``, from a generator of their own: one workload's rois in every section."""
    generator = torch.Generator().manual_seed(SEED)
    height, width = image_size
    x1 = torch.rand(count, generator=generator, dtype=torch.float64) * width * 0.8
    y1 = torch.rand(count, generator=generator, dtype=torch.float64) * height * 0.8
    x2 = torch.clamp(x1 + 16 + torch.rand(count, generator=generator, dtype=torch.float64) * 384,
                     max=width)
    y2 = torch.clamp(y1 + 16 + torch.rand(count, generator=generator, dtype=torch.float64) * 384,
                     max=height)
    index = torch.randint(0, 2, (count,), generator=generator).double()
    return torch.stack([index, x1, y1, x2, y2], dim=1).float().to(device)


def roi_inputs(workload, generator, device, channels=None, result_channels=None):
    """Feature maps, rois and result-shaped gradients of a roi workload; ``channels`` and
    ``result_channels`` replace the maps' and the result's channel counts (position-sensitive
    maps)."""
    _, shape, scale, count, pooled, image_size = workload
    shape = (shape[0], channels or shape[1], *shape[2:])
    features = torch.randn(shape, generator=generator).to(device)
    rois = make_rois(count, image_size, device)
    grads = torch.randn((count, result_channels or shape[1], pooled, pooled),
                        generator=generator).to(device)
    return features, rois, grads


def autograd_input_gradient(leaf, forward, grads):
    """A forward+backward contender: ``forward(leaf)`` then its backward; the input gradient."""
    def call():
        leaf.grad = None
        forward(leaf).backward(grads)
        return leaf.grad
    return call


def compare_with_torchvision(device, repeats, name, title, features, leaf, grads, tv_forward,
                             roiops_forward, deterministic, deterministic_path=False):
    """An operator's forward table and forward+backward table against torchvision's:
    ``tv_forward(x)`` and ``roiops_forward(x)`` on ``features``, then each with its autograd
    input gradient through ``leaf`` (and torchvision's deterministic mode where
    ``deterministic``; ``deterministic_path`` as in ``compare_forward_backward``)."""
    tv_both = autograd_input_gradient(leaf, tv_forward, grads)
    compare(device, repeats, f"{name} forward: {title}",
            {"torchvision": lambda: tv_forward(features),
             "roiops": lambda: roiops_forward(features)})
    compare_forward_backward(
        device, repeats, f"{name} forward+backward: {title}",
        {"torchvision": tv_both,
         "roiops (deterministic backward)": autograd_input_gradient(leaf, roiops_forward,
                                                                    grads)},
        tv_both if deterministic else None, deterministic_path=deterministic_path)


def bench_roi_align(device, repeats, generator, deterministic):
    from torchvision.ops import roi_align as tv_roi_align

    import roiops.torch.ops as ops

    for workload in ROI_WORKLOADS:
        title, shape, scale, count, pooled, _ = workload
        features, rois, grads = roi_inputs(workload, generator, device)
        leaf = features.clone().requires_grad_()
        options = ([pooled, pooled], scale, SAMPLING_RATIO, True, "torchvision", 1)

        def roiops_forward(x):
            return roiops.roi_align(x, rois, pooled, spatial_scale=scale,
                                    sampling_ratio=SAMPLING_RATIO, aligned=True)

        def tv_forward(x):
            return tv_roi_align(x, rois, pooled, scale, SAMPLING_RATIO, True)

        def roiops_backward():
            return ops.roi_align_grad_input(grads, rois, list(shape), *options)

        def tv_backward():
            return torch.ops.torchvision._roi_align_backward(
                grads, rois, scale, pooled, pooled, *shape, SAMPLING_RATIO, True)

        compare_with_torchvision(device, repeats, "roi_align", title, features, leaf, grads,
                                 tv_forward, roiops_forward, deterministic,
                                 deterministic_path=True)
        compare(device, repeats, f"roi_align input gradient alone: {title}",
                {"torchvision (atomic)": tv_backward,
                 "roiops (deterministic)": roiops_backward})


def bench_roi_pool(device, repeats, generator, deterministic):
    from torchvision.ops import roi_pool as tv_roi_pool

    workload = ROI_WORKLOADS[0]
    title, _, scale, _, pooled, _ = workload
    features, rois, grads = roi_inputs(workload, generator, device)
    leaf = features.clone().requires_grad_()

    def roiops_forward(x):
        return roiops.roi_pool(x, rois, pooled, spatial_scale=scale)

    def tv_forward(x):
        return tv_roi_pool(x, rois, pooled, scale)

    compare_with_torchvision(device, repeats, "roi_pool", title, features, leaf, grads,
                             tv_forward, roiops_forward, deterministic)


def bench_position_sensitive(operator, device, repeats, generator, deterministic):
    """ps_roi_align or ps_roi_pool on R-FCN score maps over the first roi_align workload's
    rois."""
    import torchvision.ops

    workload = ROI_WORKLOADS[0]
    _, shape, scale, count, pooled, _ = workload
    channels = PS_CLASSES * pooled * pooled
    features, rois, grads = roi_inputs(workload, generator, device, channels, PS_CLASSES)
    leaf = features.clone().requires_grad_()
    extra = {"ps_roi_align": (SAMPLING_RATIO,), "ps_roi_pool": ()}[operator]
    keywords = {"sampling_ratio": SAMPLING_RATIO} if extra else {}
    tv_operator = getattr(torchvision.ops, operator)
    roiops_operator = getattr(roiops, operator)
    title = (f"[{shape[0]},{channels},{shape[2]},{shape[3]}], 1/{round(1 / scale)}, "
             f"{count} rois, {pooled}x{pooled}" + (f", sampling_ratio {extra[0]}" if extra else ""))

    def roiops_forward(x):
        return roiops_operator(x, rois, pooled, spatial_scale=scale, **keywords)

    def tv_forward(x):
        return tv_operator(x, rois, pooled, scale, *extra)

    compare_with_torchvision(device, repeats, operator, title, features, leaf, grads,
                             tv_forward, roiops_forward, deterministic)


def bench_multi_scale(device, repeats, deterministic):
    from collections import OrderedDict

    from bench_multi_scale import COUNT, IMAGE, NAMES, POOLED, SAMPLING, make_boxes
    from torchvision.ops import MultiScaleRoIAlign as TvMultiScaleRoIAlign

    from roiops.compat.torchvision import MultiScaleRoIAlign

    rng = np.random.default_rng(SEED)
    maps = OrderedDict((name, torch.from_numpy(rng.standard_normal(
        (1, 256, IMAGE[0] // stride, IMAGE[1] // stride), dtype=np.float32)).to(device))
        for name, stride in zip(NAMES, (4, 8, 16, 32)))
    boxes = [torch.from_numpy(make_boxes(rng, COUNT)).to(device)]
    grads = torch.from_numpy(
        rng.standard_normal((COUNT, 256, POOLED, POOLED), dtype=np.float32)).to(device)
    shapes = [IMAGE]
    title = (f"{COUNT} boxes, 4 FPN levels of an {IMAGE[0]}x{IMAGE[1]} image, "
             f"{POOLED}x{POOLED}, sampling_ratio {SAMPLING}")
    modules = {"torchvision": TvMultiScaleRoIAlign(NAMES, POOLED, SAMPLING),
               "roiops": MultiScaleRoIAlign(NAMES, POOLED, SAMPLING)}

    def forward(module):
        def call():
            with torch.no_grad():
                return module(maps, boxes, shapes)
        return call

    def forward_backward(module):
        def call():
            leaves = OrderedDict((k, v.detach().requires_grad_()) for k, v in maps.items())
            module(leaves, boxes, shapes).backward(grads)
            return [leaf.grad for leaf in leaves.values()]
        return call

    compare(device, repeats, f"MultiScaleRoIAlign forward: {title}",
            {name: forward(module) for name, module in modules.items()})
    tv_both = forward_backward(modules["torchvision"])
    compare_forward_backward(
        device, repeats, f"MultiScaleRoIAlign forward+backward: {title}",
        {"torchvision": tv_both,
         "roiops (deterministic backward)": forward_backward(modules["roiops"])},
        tv_both if deterministic else None, deterministic_path=True)


def bench_rotated(device, repeats, generator):
    workload = ROI_WORKLOADS[0]
    title, _, scale, count, pooled, _ = workload
    features, rois, grads = roi_inputs(workload, generator, device)
    leaf = features.clone().requires_grad_()
    # The same boxes as (batch index, centre x, centre y, width, height, angle in degrees).
    centred = torch.stack([rois[:, 0], (rois[:, 1] + rois[:, 3]) / 2,
                           (rois[:, 2] + rois[:, 4]) / 2, rois[:, 3] - rois[:, 1],
                           rois[:, 4] - rois[:, 2], torch.zeros_like(rois[:, 0])], dim=1)
    turned = centred.clone()
    turned[:, 5] = (torch.rand(count, generator=generator) * 360 - 180).to(device)
    angle_zero = "roiops roi_align_rotated, angle 0"
    random_angles = "roiops roi_align_rotated, random angles"

    def aligned(x):
        return roiops.roi_align(x, rois, pooled, spatial_scale=scale,
                                sampling_ratio=SAMPLING_RATIO, aligned=True)

    def rotated(angled):
        def forward(x):
            return roiops.roi_align_rotated(x, angled, pooled, spatial_scale=scale,
                                            sampling_ratio=SAMPLING_RATIO)
        return forward

    forwards = {"roiops roi_align": aligned, angle_zero: rotated(centred),
                random_angles: rotated(turned)}
    compare(device, repeats, f"rotated RoI Align forward (detectron2's convention): {title}",
            {name: (lambda fn=fn: fn(features)) for name, fn in forwards.items()},
            unchecked=[random_angles])
    compare_forward_backward(
        device, repeats, f"rotated RoI Align forward+backward (input gradient): {title}",
        {name: autograd_input_gradient(leaf, fn, grads) for name, fn in forwards.items()},
        unchecked=[random_angles])


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
        sweep(device, torch.Generator().manual_seed(SEED))
        resource_report()
        return
    deterministic = not args.skip_deterministic
    repeats = args.repeats

    def overhead(generator):
        try:
            bench_overhead(device, repeats)
        except Exception as error:  # a diagnostic: never in the way of the benchmarks
            print(f"\nhost-cost table failed: {type(error).__name__}: {error}")

    def crop(generator):
        bandwidth = copy_bandwidth(device, repeats)
        print(f"\ndevice-to-device copy: {bandwidth / 1e9:.0f} GB/s (read + written)",
              flush=True)
        bench_crop_and_resize(device, repeats, generator, bandwidth)

    sections = {
        "overhead": overhead,
        "roi_align": lambda generator: bench_roi_align(device, repeats, generator,
                                                       deterministic),
        "crop": crop,
        "roi_pool": lambda generator: bench_roi_pool(device, repeats, generator, deterministic),
        "ps_roi_align": lambda generator: bench_position_sensitive(
            "ps_roi_align", device, repeats, generator, deterministic),
        "ps_roi_pool": lambda generator: bench_position_sensitive(
            "ps_roi_pool", device, repeats, generator, deterministic),
        "multi_scale": lambda generator: bench_multi_scale(device, repeats, deterministic),
        "rotated": lambda generator: bench_rotated(device, repeats, generator),
    }
    failed = []
    for section in args.sections:
        if section == "overhead" and device.type != "cuda":
            continue
        try:
            sections[section](torch.Generator().manual_seed(SEED))
        except Exception as error:  # the other sections still run; the exit status says it
            failed.append(section)
            print(f"\nsection {section} failed: {type(error).__name__}: {error}", flush=True)
            traceback.print_exc()
        sys.stdout.flush()
    if failed:
        sys.exit(f"failed sections: {', '.join(failed)}")


if __name__ == "__main__":
    main()
