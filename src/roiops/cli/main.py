"""The ``roiops`` command: ``demo``, ``crop`` and ``bench`` (guide: docs/cli.md).

Exit status: 0 when every item succeeded, 1 when any item failed (each failure printed on one
line), 2 for a usage error (a bad flag, an unreadable annotation file), 130 after Ctrl-C and 143
after SIGTERM.
"""
import argparse
import math
import os
import sys

import numpy as np

import roiops

from . import stopping
from .errors import Terminated, UsageError

METHODS = ("bilinear", "nearest", "bilinear_v2")
FLOAT32_MAX = float(np.finfo(np.float32).max)
FORMATS = ("png", "jpg", "npz")
DTYPES = ("uint8", "float32")
LAYOUTS = ("flat", "class")
ENGINES = ("local", "ray")

DESCRIPTION = """\
Exact, fast region-of-interest sampling. Cut fixed-size object crops out of an image dataset
with TensorFlow's crop_and_resize semantics, try it on a built-in sample, or time the
operators against the frameworks installed here."""

EXAMPLES = """\
examples:
  roiops demo                                   crops and a contact sheet from the sample
  roiops crop instances.json --images images/ --out crops/ --size 224 --square --margin 0.1
  roiops crop boxes.csv --images images/ --out crops/ --format npz
  roiops bench --chart bench.png

exit status: 0 all items succeeded, 1 some item failed, 2 usage error"""

CROP_DESCRIPTION = """\
Cut one crop per box out of the images named by ANNOTATIONS and resize it to --size with
roiops.crop_and_resize (TensorFlow's semantics, exactly).

ANNOTATIONS is a COCO JSON file ("images" with optional "width"/"height", "annotations" with
"bbox" [x, y, w, h] in pixels, "categories"), a CSV with a header
image,x1,y1,x2,y2[,label,width,height] (other names through --columns; pixels, or with
--normalized crop_and_resize's normalized coordinates), a folder of YOLO label files
(class x_center y_center width height; the image sub/a.* for sub/a.txt; class names from
--names or classes.txt), or a Pascal VOC XML file or folder of them. Image paths are relative
to --images; a path that leaves it (../x.png, an absolute path, a link to a file elsewhere) is
an error for its boxes unless --allow-outside-images. --out may not be --images or a folder
inside it.

Box convention: pixel boxes are in pixel-edge coordinates (pixel i covers [i, i+1), so
[0, 0, W, H] is the whole image; COCO [x, y, w, h] is x1=x, x2=x+w; VOC's 1-based xmin..xmax
is x1=xmin-1, x2=xmax). The crop's corner samples fall on the centres of the box's first and
last pixels: columns x1 .. x2-1, i.e. normalized x1/(W-1) .. (x2-1)/(W-1). A box of w x h
pixels cropped to --size HxW = h x w gives exactly its pixels. Parts of a box outside the image
get --extrapolation-value; a box entirely outside is an error. --antialias averages several
samples per crop pixel when a box is reduced (otherwise fine patterns alias).

Images are decoded to 8-bit RGB and turned upright as their EXIF orientation says (unless
--ignore-exif-orientation); an image whose size differs from the annotation's width and height
is an error for its boxes. crop_and_resize gives float32 crops; PNG, JPEG and npz (uint8) hold
them rounded (half to even) and clipped to 0..255; --dtype float32 keeps them in npz.

Output: <image stem>_<annotation id, CSV row, YOLO line or VOC object>_<label>.<png|jpg> in
--out (or in --out/<label>/ with --layout class; labels keep letters and digits of any script,
other runs become _), or npz shards --out/crops-00000.npz, ... (arrays crops, image, id, label,
box, sampled_box, image_size and the settings), and --out/manifest.csv listing every crop
(file or shard and row, image, id, label, box, image size, sampled box). Existing outputs are
skipped (a second run resumes) unless --overwrite. Input files are never written; outputs are
written atomically and replace links instead of writing through them. A --size whose crops
cannot fit in the memory available is refused. A progress bar runs on stderr when it is a
terminal."""

CROP_EXAMPLES = """\
examples:
  roiops crop instances.json --images images/ --out crops/
  roiops crop instances.json --images images/ --out crops/ --size 224 --square --margin 0.1 \\
      --contact-sheet sheet.png --workers 8 --layout class
  roiops crop boxes.csv --images images/ --out crops/ --size 32x64 --format npz
  roiops crop boxes.csv --normalized --images images/ --out crops/ --method nearest
  roiops crop train_labels.csv --images images/ --out crops/ \\
      --columns image=filename,x1=xmin,y1=ymin,x2=xmax,y2=ymax,label=class
  roiops crop labels/train --images images/train --out crops/ --names data.yaml
  roiops crop VOC2012/Annotations --images VOC2012/JPEGImages --out crops/ --category dog
  roiops crop instances.json --images images/ --out crops/ --min-size 16 --limit 100 --dry-run
  ray job submit -- roiops crop instances.json --images s3://bucket/images \\
      --out /shared/crops --engine ray

exit status: 0 every crop written or skipped, 1 some item failed (one line each on stderr),
2 usage error (bad flag, unreadable annotation file, missing --images, --out inside --images,
--size too large for the memory), 130 Ctrl-C, 143 SIGTERM"""


def size(text):
    """``"64"`` -> (64, 64); ``"32x48"`` -> (32, 48) (height x width)."""
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) < 1:
        raise argparse.ArgumentTypeError(f"expected H or HxW with positive integers, got {text!r}")
    return (values[0], values[-1])


def finite_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def float32_value(text):
    """A finite number that stays finite in float32, the type the crops are computed in."""
    value = finite_float(text)
    if abs(value) > FLOAT32_MAX:
        raise argparse.ArgumentTypeError(f"expected a number that float32 holds (at most "
                                         f"{FLOAT32_MAX:.7g} in magnitude), got {text!r}")
    return value


def non_negative_float(text):
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def column_mapping(text):
    """``"image=filename,x1=xmin"`` -> ``{"image": "filename", "x1": "xmin"}``."""
    from .annotations import CSV_COLUMNS, CSV_OPTIONAL_COLUMNS

    names = (*CSV_COLUMNS, *CSV_OPTIONAL_COLUMNS)
    mapping = {}
    for part in text.split(","):
        ours, equals, theirs = part.partition("=")
        ours, theirs = ours.strip().lower(), theirs.strip()
        if not equals or ours not in names or not theirs or ours in mapping:
            raise argparse.ArgumentTypeError(
                f"expected NAME=COLUMN pairs separated by commas, each NAME once and one of "
                f"{', '.join(names)}; got {text!r}")
        mapping[ours] = theirs
    return mapping


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="roiops", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"roiops {roiops.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="crop the objects of the built-in sample image, write a contact sheet",
        description="Crop the 12 objects of the built-in sample image (a generated 640x480 "
                    "street scene with COCO boxes) to 96x96 squares with a 10%% margin, write "
                    "them and a contact sheet to --out, and print where they are.",
        epilog="example:\n  roiops demo --out /tmp/roiops-demo", formatter_class=formatter)
    demo.add_argument("--out", default="roiops-demo", metavar="DIR",
                      help="output folder (default: %(default)s)")
    demo.set_defaults(handler=run_demo)

    crop = commands.add_parser("crop", help="cut fixed-size crops of boxes out of images",
                               description=CROP_DESCRIPTION, epilog=CROP_EXAMPLES,
                               formatter_class=formatter)
    crop.add_argument("annotations", metavar="ANNOTATIONS",
                      help="COCO JSON file, CSV (header image,x1,y1,x2,y2[,label,width,height]), "
                           "folder of YOLO label files, or Pascal VOC XML file or folder")
    crop.add_argument("--images", required=True, metavar="DIR",
                      help="folder the annotation's image paths are relative to, or a pyarrow "
                           "filesystem URI (s3://bucket/images, gs://..., file:///...)")
    crop.add_argument("--out", required=True, metavar="DIR", help="output folder")
    crop.add_argument("--size", type=size, default=(64, 64), metavar="H[xW]",
                      help="crop size: 64 means 64x64, 32x48 is 32 high, 48 wide (default: 64)")
    crop.add_argument("--method", choices=METHODS, default="bilinear",
                      help="sampling method (default: %(default)s)")
    crop.add_argument("--extrapolation-value", type=float32_value, default=0.0, metavar="V",
                      help="value of samples outside the image (default: 0)")
    crop.add_argument("--margin", type=non_negative_float, default=0.0, metavar="F",
                      help="grow each box by F times its size on every side (0.1 = 10%%)")
    crop.add_argument("--square", action="store_true",
                      help="grow the shorter side of each box to the longer one, around its "
                           "centre (after --margin)")
    crop.add_argument("--normalized", action="store_true",
                      help="CSV boxes are normalized: x maps to x*(W-1), y to y*(H-1)")
    crop.add_argument("--columns", type=column_mapping, default={}, metavar="MAP",
                      help="CSV column names, e.g. image=filename,x1=xmin,y1=ymin,x2=xmax,"
                           "y2=ymax,label=class (names: image x1 y1 x2 y2 label width height)")
    crop.add_argument("--names", metavar="FILE",
                      help="YOLO class names: a classes.txt (one per line) or a data.yaml "
                           "(default: classes.txt in the labels folder, else class numbers)")
    crop.add_argument("--ignore-exif-orientation", action="store_false",
                      dest="exif_orientation",
                      help="crop the pixels as stored, not turned as the EXIF orientation says")
    crop.add_argument("--antialias", action="store_true",
                      help="average up to 16x16 samples per crop pixel when a box is reduced "
                           "(default: one sample, TensorFlow's crop_and_resize, which aliases "
                           "fine patterns)")
    crop.add_argument("--category", action="append", default=[], metavar="NAME",
                      help="crop only boxes with this label (category name, CSV label, class "
                           "name); repeat for several")
    crop.add_argument("--min-size", type=non_negative_float, default=0.0, metavar="PIXELS",
                      help="leave out boxes narrower or lower than this (before --margin)")
    crop.add_argument("--limit", type=positive_int, default=None, metavar="N",
                      help="crop only the first N boxes (after --category and --min-size)")
    crop.add_argument("--format", choices=FORMATS, default="png", dest="image_format",
                      help="one PNG or JPEG per crop, or npz shards crops-00000.npz, ... "
                           "(default: png)")
    crop.add_argument("--dtype", choices=DTYPES, default=None,
                      help="npz crops: uint8 (default: rounded as in PNG) or float32 "
                           "(crop_and_resize's values)")
    crop.add_argument("--layout", choices=LAYOUTS, default="flat",
                      help="image files all in --out (flat, the default) or in one folder per "
                           "label, --out/<label>/ (class: torchvision's ImageFolder)")
    crop.add_argument("--contact-sheet", metavar="PNG",
                      help="also write the first 400 crops on a grid in this PNG, labelled, "
                           "with samples outside the image hatched")
    crop.add_argument("--workers", type=positive_int, default=None, metavar="N",
                      help="worker processes, at most one per image (default: one per CPU, "
                           "and at most one per 16 images)")
    crop.add_argument("--engine", choices=ENGINES, default="local",
                      help="local: worker processes on this machine (default); ray: Ray tasks "
                           "on the cluster RAY_ADDRESS names, else a local Ray instance "
                           "(pip install \"roiops[ray]\"; --workers: tasks at once)")
    crop.add_argument("--overwrite", action="store_true",
                      help="replace existing outputs instead of skipping them")
    crop.add_argument("--allow-outside-images", action="store_true",
                      help="read image paths of the annotations that leave --images (../, "
                           "absolute paths, links to files elsewhere) instead of refusing them")
    crop.add_argument("--dry-run", action="store_true",
                      help="read the annotations and check the images exist, count what would "
                           "be cropped, skipped and failed; write nothing")
    crop.add_argument("-q", "--quiet", action="store_true",
                      help="print only errors: no progress bar, no summary")
    crop.set_defaults(handler=run_crop)

    bench = commands.add_parser(
        "bench", help="time the operators against the installed peers",
        description="Time roiops.crop_and_resize and roiops.roi_align against whichever of "
                    "TensorFlow, MindSpore and torchvision are importable, on the same inputs "
                    "in one process, and print a table of median times and ratios.",
        epilog="examples:\n  roiops bench\n  roiops bench --repeats 30 --chart bench.png",
        formatter_class=formatter)
    bench.add_argument("--chart", metavar="PNG", help="also draw the medians (needs matplotlib)")
    bench.add_argument("--repeats", type=positive_int, default=10, metavar="N",
                       help="timed calls per contender (default: %(default)s)")
    bench.set_defaults(handler=run_bench)

    warmup = commands.add_parser(
        "warmup", help="compile every kernel ahead of time (for a Docker or cluster image)",
        description="Compile every CPU kernel variant (each dtype, memory layout and path) "
                    "into Numba's on-disk cache, in parallel processes, so that no later run "
                    "pays the first-run compilation; print each variant and the cache folder. "
                    "The cache is NUMBA_CACHE_DIR if set, else __pycache__ beside roiops's "
                    "modules if writable, else Numba's per-user cache folder: run the jobs "
                    "with the same NUMBA_CACHE_DIR (or none).",
        epilog="examples:\n  roiops warmup\n  NUMBA_CACHE_DIR=/opt/numba-cache roiops warmup"
               "\n  roiops warmup --only 'crop_and_resize uint8' --list",
        formatter_class=formatter)
    warmup.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="processes at once (default: one per CPU)")
    warmup.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the variants whose name contains TEXT (repeatable)")
    warmup.add_argument("--list", action="store_true",
                        help="print the variants' names, compile nothing")
    warmup.set_defaults(handler=run_warmup)
    return parser


def run_demo(args):
    from . import demo

    return demo.run(args.out)


def run_crop(args):
    from .crop import CropJob, CropOptions

    _check_format_flags(args)
    options = CropOptions(size=args.size, method=args.method,
                          extrapolation_value=args.extrapolation_value, margin=args.margin,
                          square=args.square, normalized=args.normalized,
                          image_format=args.image_format, overwrite=args.overwrite,
                          exif_orientation=args.exif_orientation, antialias=args.antialias,
                          dtype=args.dtype or "uint8", layout=args.layout)
    summary = CropJob(args.annotations, args.images, args.out, options,
                      contact_sheet=args.contact_sheet, workers=args.workers,
                      allow_outside_images=args.allow_outside_images, columns=args.columns,
                      names=args.names, categories=args.category, min_size=args.min_size,
                      limit=args.limit, dry_run=args.dry_run, quiet=args.quiet,
                      engine=args.engine).run()
    if not args.quiet:
        for line in summary.lines():
            print(line)
    return summary.exit_status


def _check_format_flags(args):
    """Flags that apply to some output formats only are usage errors with the others."""
    if args.dtype is not None and args.image_format != "npz":
        raise UsageError(f"--dtype applies to --format npz, not {args.image_format}")
    if args.layout == "class" and args.image_format == "npz":
        raise UsageError("--layout class applies to --format png and jpg (npz shards list "
                         "each crop's label)")


def run_bench(args):
    from . import bench

    return bench.run(chart=args.chart, repeats=args.repeats)


def run_warmup(args):
    from . import warmup

    return warmup.run(jobs=args.jobs, only=args.only, list_only=args.list)


def main(argv=None):
    """Run the ``roiops`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (status 2)
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    try:
        with stopping.signals_stop():
            status = args.handler(args)
            stopping.check()  # a signal whose KeyboardInterrupt was swallowed on the way
            return status
    except UsageError as error:
        print(f"roiops {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"roiops {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"roiops {args.command}: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:  # e.g. `roiops demo | head`: stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
