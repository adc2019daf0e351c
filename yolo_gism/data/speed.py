"""How fast the generator makes images, for benchmarks (the target is >= 50 images/s at 320 px, one process)."""

from __future__ import annotations

import time

import cv2

from .checks import check_imgsz, check_int
from .dataset import JPEG_QUALITY
from .render import render_sample


def measure_generation_speed(n: int = 200, imgsz: int = 320, seed: int = 0) -> float:
    """Images per second of rendering plus labels plus JPEG encoding (disk writes excluded), one process.

    One warm-up image first (it builds the cached noise field); then ``n`` consecutive images are timed.
    """
    n, imgsz, seed = check_int("n", n, 1), check_imgsz(imgsz), check_int("seed", seed, 0)
    render_sample(seed, n, imgsz)  # warm-up: index n is not among the timed ones
    start = time.perf_counter()
    for index in range(n):
        rendered = render_sample(seed, index, imgsz)
        cv2.imencode(".jpg", rendered.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        rendered.labels()
    return n / (time.perf_counter() - start)
