"""Draw docs/conventions.png: where each operator and convention puts its samples.

    pip install matplotlib && python docs/conventions.py

Every operator interpolates pixel ``i`` at coordinate ``i`` (the grey dots, pixel centres).
crop_and_resize maps a normalized ``y`` to ``y * (H - 1)``, so 0 and 1 are the centres of the
first and last pixels. roi_align takes boxes in image coordinates as they are
(``aligned=False``), or reads them as pixel-corner coordinates (``aligned=True`` shifts by
-0.5, so a box from 1 to 4 covers pixels 1, 2 and 3 exactly). The sample positions are
computed from the formulas of docs/conventions.md, in float64.
"""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

HEIGHT, WIDTH = 5, 6


def crop_samples(y1, x1, y2, x2, crop_height, crop_width):
    """TensorFlow/MindSpore bilinear and nearest: samples in pixel-centre coordinates."""
    ys = [y1 * (HEIGHT - 1) + i * (y2 - y1) * (HEIGHT - 1) / (crop_height - 1)
          for i in range(crop_height)]
    xs = [x1 * (WIDTH - 1) + j * (x2 - x1) * (WIDTH - 1) / (crop_width - 1)
          for j in range(crop_width)]
    return ys, xs


def bilinear_v2_samples(y1, x1, y2, x2, crop_height, crop_width):
    """MindSpore bilinear_v2: an integer window resized with half-pixel centres."""
    top, bottom = math.trunc(y1 * HEIGHT), math.trunc(y2 * HEIGHT)
    left, right = math.trunc(x1 * WIDTH), math.trunc(x2 * WIDTH)
    h, w = max(bottom - top + 1, 1), max(right - left + 1, 1)
    ys = [top + (i + 0.5) * h / crop_height - 0.5 for i in range(crop_height)]
    xs = [left + (j + 0.5) * w / crop_width - 0.5 for j in range(crop_width)]
    return (top, left, bottom, right), ys, xs


def roi_samples(x1, y1, x2, y2, pooled, grid, offset=0.0, end_extra=0.0):
    """roi_align sample positions (spatial_scale 1): one list per axis, bins times grid."""
    start_x, start_y = x1 - offset, y1 - offset
    end_x, end_y = x2 + end_extra - offset, y2 + end_extra - offset
    bin_w, bin_h = (end_x - start_x) / pooled, (end_y - start_y) / pooled
    xs = [start_x + p * bin_w + (i + 0.5) * bin_w / grid
          for p in range(pooled) for i in range(grid)]
    ys = [start_y + p * bin_h + (i + 0.5) * bin_h / grid
          for p in range(pooled) for i in range(grid)]
    return (start_x, start_y, end_x, end_y), ys, xs


def draw_pixels(ax, title):
    for y in range(HEIGHT):
        for x in range(WIDTH):
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=0.6, ec="0.7"))
            ax.plot(x, y, ".", color="0.6", ms=3)
    ax.set_xlim(-1, WIDTH)
    ax.set_ylim(HEIGHT, -1)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(WIDTH))
    ax.set_yticks(range(HEIGHT))
    ax.tick_params(labelsize=7)


def scatter(ax, ys, xs, color, label):
    points = [(x, y) for y in ys for x in xs]
    ax.plot([p[0] for p in points], [p[1] for p in points], "o", color=color, ms=4, label=label)


def main():
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.4))
    box = (0.2, 0.1, 0.9, 0.8)  # y1, x1, y2, x2

    ax = axes[0, 0]
    draw_pixels(ax, "crop_and_resize bilinear/nearest (TF, MindSpore)\n"
                    "box [0.2, 0.1, 0.9, 0.8] -> y*(H-1), crop 3x4")
    ys, xs = crop_samples(*box, 3, 4)
    ax.add_patch(Rectangle((xs[0], ys[0]), xs[-1] - xs[0], ys[-1] - ys[0], fill=False,
                           ec="tab:blue", lw=1.5))
    scatter(ax, ys, xs, "tab:blue", "samples (corners of the box included)")
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[0, 1]
    draw_pixels(ax, "crop_and_resize bilinear_v2 (MindSpore)\n"
                    "window [trunc(y1*H), trunc(y2*H)], half-pixel centres, crop 3x4")
    (top, left, bottom, right), ys, xs = bilinear_v2_samples(*box, 3, 4)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                           fill=False, ec="tab:orange", lw=1.5))
    scatter(ax, ys, xs, "tab:orange", "samples (window edges replicated)")
    ax.legend(fontsize=7, loc="lower right")

    roi = (1.0, 1.0, 4.0, 3.0)  # x1, y1, x2, y2 in image pixels, spatial_scale 1
    ax = axes[1, 0]
    draw_pixels(ax, "roi_align torchvision: roi (x1,y1,x2,y2) = (1,1,4,3)\n"
                    "2x2 bins, sampling_ratio 2; aligned=True shifts by -0.5")
    for offset, color, name in ((0.0, "tab:green", "aligned=False"),
                                (0.5, "tab:purple", "aligned=True")):
        (sx, sy, ex, ey), ys, xs = roi_samples(*roi, pooled=2, grid=2, offset=offset)
        ax.add_patch(Rectangle((sx, sy), ex - sx, ey - sy, fill=False, ec=color, lw=1.5))
        scatter(ax, ys, xs, color, name)
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[1, 1]
    draw_pixels(ax, "roi_align MindSpore: same roi, 2x2 bins, sample_num 2\n"
                    "roi_end_mode=1 adds one pixel to x2, y2 before scaling")
    for extra, color, name in ((0.0, "tab:red", "roi_end_mode=0"),
                               (1.0, "tab:brown", "roi_end_mode=1")):
        (sx, sy, ex, ey), ys, xs = roi_samples(*roi, pooled=2, grid=2, end_extra=extra)
        ax.add_patch(Rectangle((sx, sy), ex - sx, ey - sy, fill=False, ec=color, lw=1.5))
        scatter(ax, ys, xs, color, name)
    ax.legend(fontsize=7, loc="lower right")

    fig.suptitle("Grey squares: pixels; grey dots: pixel centres (integer indices)", fontsize=9)
    fig.tight_layout()
    target = Path(__file__).with_name("conventions.png")
    fig.savefig(target, dpi=110)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
