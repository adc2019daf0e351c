"""Built-in synthetic traffic-camera data: still images as a YOLO dataset, and labelled video clips.

numpy + OpenCV only. Classes use COCO's spelling: 0 car, 1 bus, 2 truck, 3 motorcycle, 4 bicycle, 5 person.
An object gets a box when at least 30 % of its own mask is visible and the visible box is >= 2 px a side.
"""

from .clip import make_clip
from .dataset import make_dataset
from .labels import MIN_BOX_PX, MIN_VISIBLE
from .render import render_sample
from .scene import CLASS_NAMES
from .speed import measure_generation_speed

__all__ = ["CLASS_NAMES", "MIN_BOX_PX", "MIN_VISIBLE", "make_clip", "make_dataset", "measure_generation_speed",
           "render_sample"]
