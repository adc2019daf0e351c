"""Coded test clips shared by the video and frame-rate tests: frame i is a flat grey of level grey_of(i),
so any frame read back tells which frame it is (MJPG in AVI keeps a flat grey close enough)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def grey_of(index: int) -> int:
    """The grey level frame `index` of a coded clip is painted with."""
    return 10 + 6 * index


def index_of(image: np.ndarray) -> int:
    """Read a coded frame's index back from its pixels."""
    return int(round((float(image.mean()) - 10) / 6))


def write_clip(path: Path, n: int, fps: float = 25.0, size=(96, 64)) -> Path:
    """An MJPG clip of n coded frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), grey_of(i), np.uint8))
    writer.release()
    return path
