"""``roiops demo``: crop the objects of the built-in sample image and draw a contact sheet."""
import importlib.resources
from pathlib import Path

from .crop import CropJob, CropOptions

DEMO_OPTIONS = CropOptions(size=(96, 96), margin=0.1, square=True, image_format="png",
                           overwrite=True)


def run(out="roiops-demo", stdout=None):
    """Write ``out/crops/*.png`` and ``out/contact_sheet.png``; return the exit status."""
    out = Path(out)
    data = importlib.resources.files("roiops") / "data"
    with importlib.resources.as_file(data / "sample.json") as annotations, \
            importlib.resources.as_file(data / "sample.jpg") as image:
        job = CropJob(annotations, image.parent, out / "crops", DEMO_OPTIONS,
                      contact_sheet=out / "contact_sheet.png", workers=1)
        summary = job.run()
        print(f"roiops demo: cropped the objects of the sample image {image} "
              f"(boxes: {annotations}) to {DEMO_OPTIONS.size[0]}x{DEMO_OPTIONS.size[1]} "
              f"squares with a 10% margin", file=stdout)
    for line in summary.lines():
        print(line, file=stdout)
    print("next: roiops crop ANNOTATIONS --images DIR --out DIR (see roiops crop --help)",
          file=stdout)
    return summary.exit_status
