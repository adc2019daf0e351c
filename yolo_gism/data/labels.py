"""Boxes from visible masks, and the YOLO text format.

An object is labelled when, after every nearer object has been painted over it, at least ``MIN_VISIBLE``
(30 %) of its mask inside the image is still visible and the box around its visible pixels is at least
``MIN_BOX_PX`` (2) pixels wide and tall. The box is the tight bounding box of the visible pixels, so a
half-hidden car gets the box of its visible half. An object cut by the image border is labelled like
COCO labels truncated objects: occlusion is measured against its in-frame part, so a truck that fills
the lower corner is never left unlabelled.
"""

from __future__ import annotations

import numpy as np

MIN_VISIBLE = 0.3  # visible / own mask area inside the image
MIN_BOX_PX = 2  # minimum width and height of a labelled box, pixels


def visible_box(ids: np.ndarray, index: int, window: tuple) -> tuple[int, tuple | None]:
    """(visible pixel count, (x0, y0, x1, y1) with exclusive x1/y1) of object ``index`` inside its window."""
    x0, y0, x1, y1 = window
    if x1 <= x0 or y1 <= y0:
        return 0, None
    m = ids[y0:y1, x0:x1] == index
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if rows.size == 0:
        return 0, None
    return int(np.count_nonzero(m)), (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)


def keep_box(cls: int, frame_area: int, visible_area: int, box: tuple | None,
             min_visible: float = MIN_VISIBLE, min_box: int = MIN_BOX_PX) -> bool:
    """The labelling rule stated in the module docstring."""
    if cls < 0 or box is None or frame_area <= 0:
        return False
    return visible_area >= min_visible * frame_area and box[2] - box[0] >= min_box and box[3] - box[1] >= min_box


def yolo_lines(labels: list[tuple[int, tuple]], width: int, height: int) -> str:
    """'cls cx cy w h' lines, normalised to the image size, one per labelled object."""
    lines = []
    for cls, (x0, y0, x1, y1) in labels:
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")
