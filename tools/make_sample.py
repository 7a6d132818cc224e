"""Make the demo's sample image and its COCO annotations (``roiops demo`` uses them).

    python tools/make_sample.py

Draws a procedurally generated street scene (sky, sun, clouds, hills, houses, trees, cars and
balls) with Pillow at twice the size and downsamples it (anti-aliasing), then writes
``sample.jpg`` (640x480) and ``sample.json`` (COCO: ``images``, ``annotations`` with ``bbox``
``[x, y, w, h]`` in pixels, ``categories``) into the package's ``src/roiops/data``. Every
object's box comes from the parameters it was drawn with, so the annotations are exact. Fixed
seed: running it again gives the same scene (and, with the same Pillow, the same bytes).
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 640, 480
SCALE = 2  # drawn at twice the size, then downsampled
HORIZON = 300
CATEGORIES = ["sun", "cloud", "house", "tree", "car", "ball"]
DATA = Path(__file__).resolve().parent.parent / "src" / "roiops" / "data"


class Scene:
    """A canvas at ``SCALE`` times the output size that records object boxes in output pixels."""

    def __init__(self, rng):
        self.rng = rng
        self.image = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE))
        self.draw = ImageDraw.Draw(self.image)
        self.objects = []

    def s(self, *values):
        return [int(round(v * SCALE)) for v in values]

    def add(self, category, x1, y1, x2, y2):
        """Record an object's box ``[x1, y1, x2, y2]`` (output pixels, clipped to the image)."""
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(WIDTH), x2), min(float(HEIGHT), y2)
        self.objects.append((category, [round(x1, 1), round(y1, 1),
                                        round(x2 - x1, 1), round(y2 - y1, 1)]))

    def background(self):
        sky = np.linspace([90, 150, 230], [200, 225, 250], HORIZON * SCALE)
        ground = np.linspace([95, 160, 80], [60, 120, 50], (HEIGHT - HORIZON) * SCALE)
        rows = np.concatenate([sky, ground]).astype(np.uint8)
        pixels = np.repeat(rows[:, None, :], WIDTH * SCALE, axis=1)
        noise = self.rng.normal(0, 4, pixels.shape)
        self.image.paste(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)))
        for i in range(3):  # rolling hills on the horizon
            cx, r = 120 + 220 * i, 150 + 30 * i
            self.draw.ellipse(self.s(cx - r, HORIZON - 60, cx + r, HORIZON + 200),
                              fill=(80 + 10 * i, 140 + 8 * i, 70))
        self.draw.rectangle(self.s(0, 400, WIDTH, 440), fill=(70, 70, 75))  # road
        for x in range(0, WIDTH, 60):
            self.draw.rectangle(self.s(x + 10, 418, x + 40, 422), fill=(235, 235, 220))

    def sun(self, cx, cy, r):
        self.draw.ellipse(self.s(cx - r, cy - r, cx + r, cy + r), fill=(255, 220, 80))
        self.add("sun", cx - r, cy - r, cx + r, cy + r)

    def cloud(self, x, y, w):
        puffs = [(0.25, 0.55, 0.25), (0.5, 0.4, 0.3), (0.75, 0.55, 0.25)]
        for fx, fy, fr in puffs:
            cx, cy, r = x + fx * w, y + fy * w * 0.5, fr * w
            self.draw.ellipse(self.s(cx - r, cy - r * 0.7, cx + r, cy + r * 0.7),
                              fill=(248, 248, 252))
        top = min(y + fy * w * 0.5 - fr * w * 0.7 for fx, fy, fr in puffs)
        bottom = max(y + fy * w * 0.5 + fr * w * 0.7 for fx, fy, fr in puffs)
        self.add("cloud", x, top, x + w, bottom)

    def house(self, x, base, w, h, wall, roof):
        self.draw.rectangle(self.s(x, base - h, x + w, base), fill=wall)
        roof_top = base - h - 0.6 * w
        self.draw.polygon(self.s(x - 8, base - h, x + w / 2, roof_top, x + w + 8, base - h),
                          fill=roof)
        self.draw.rectangle(self.s(x + w * 0.4, base - h * 0.45, x + w * 0.6, base),
                            fill=(90, 60, 40))
        for fx in (0.12, 0.68):
            self.draw.rectangle(self.s(x + w * fx, base - h * 0.8, x + w * (fx + 0.2),
                                       base - h * 0.55), fill=(180, 210, 240))
        self.add("house", x - 8, roof_top, x + w + 8, base)

    def tree(self, x, base, h):
        trunk_w = h * 0.12
        self.draw.rectangle(self.s(x - trunk_w / 2, base - h * 0.35, x + trunk_w / 2, base),
                            fill=(110, 75, 45))
        r = h * 0.33
        self.draw.ellipse(self.s(x - r, base - h, x + r, base - h + 2 * r), fill=(40, 120, 50))
        self.add("tree", x - r, base - h, x + r, base)

    def car(self, x, y, w, colour):
        h = w * 0.45
        self.draw.rounded_rectangle(self.s(x, y + h * 0.35, x + w, y + h * 0.8),
                                    radius=6 * SCALE, fill=colour)
        self.draw.rounded_rectangle(self.s(x + w * 0.2, y, x + w * 0.75, y + h * 0.4),
                                    radius=5 * SCALE, fill=colour)
        self.draw.rectangle(self.s(x + w * 0.27, y + h * 0.08, x + w * 0.68, y + h * 0.35),
                            fill=(170, 200, 230))
        for fx in (0.22, 0.78):
            cx, cy, r = x + w * fx, y + h * 0.8, h * 0.2
            self.draw.ellipse(self.s(cx - r, cy - r, cx + r, cy + r), fill=(25, 25, 25))
        self.add("car", x, y, x + w, y + h)

    def ball(self, cx, cy, r, colour):
        self.draw.ellipse(self.s(cx - r, cy - r, cx + r, cy + r), fill=colour)
        self.draw.arc(self.s(cx - r * 0.7, cy - r * 0.7, cx + r * 0.7, cy + r * 0.7),
                      200, 300, fill=(255, 255, 255), width=2 * SCALE)
        self.add("ball", cx - r, cy - r, cx + r, cy + r)

    def render(self):
        """The finished image at the output size."""
        smooth = self.image.filter(ImageFilter.GaussianBlur(0.6 * SCALE))
        return smooth.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)


def build_scene(seed=2024):
    scene = Scene(np.random.default_rng(seed))
    scene.background()
    scene.sun(560, 70, 38)
    scene.cloud(60, 40, 150)
    scene.cloud(300, 80, 120)
    scene.house(70, 370, 110, 90, (220, 190, 150), (150, 50, 40))
    scene.house(400, 360, 130, 100, (200, 200, 215), (70, 80, 120))
    scene.tree(250, 372, 120)
    scene.tree(330, 350, 80)
    scene.tree(600, 380, 140)
    scene.car(90, 392, 120, (200, 40, 40))
    scene.car(420, 398, 100, (40, 90, 190))
    scene.ball(230, 455, 16, (240, 160, 30))
    scene.ball(520, 460, 12, (220, 50, 160))
    return scene


def coco(objects, file_name):
    """COCO annotations for one image."""
    return {
        "images": [{"id": 1, "file_name": file_name, "width": WIDTH, "height": HEIGHT}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": CATEGORIES.index(category) + 1,
             "bbox": bbox, "area": round(bbox[2] * bbox[3], 1), "iscrowd": 0}
            for i, (category, bbox) in enumerate(objects, start=1)
        ],
        "categories": [{"id": i, "name": name} for i, name in enumerate(CATEGORIES, start=1)],
    }


def main(out_dir=DATA):
    scene = build_scene()
    out_dir = Path(out_dir)
    scene.render().save(out_dir / "sample.jpg", quality=90, optimize=True)
    with open(out_dir / "sample.json", "w") as f:
        json.dump(coco(scene.objects, "sample.jpg"), f, indent=1)
    print(f"wrote {out_dir / 'sample.jpg'} and {out_dir / 'sample.json'} "
          f"({len(scene.objects)} objects)")


if __name__ == "__main__":
    main()
