"""``yolo-gism data ...`` (a YOLO dataset) and ``yolo-gism data video ...`` (a labelled clip).

    yolo-gism data out=DIR train=N val=M imgsz=S seed=K exist_ok=0
    yolo-gism data video out=clip.mp4 frames=F fps=R imgsz=S seed=K exist_ok=0
"""

from __future__ import annotations

from .clip import make_clip
from .dataset import make_dataset

DATASET_DEFAULTS = {"out": "datasets/gism_traffic", "train": 1000, "val": 200, "imgsz": 320, "seed": 0, "exist_ok": False}
VIDEO_DEFAULTS = {"out": "clip.mp4", "frames": 300, "fps": 30, "imgsz": 320, "seed": 0, "exist_ok": False}


def merged(defaults: dict, kwargs: dict, what: str) -> dict:
    """Defaults overridden by the command line; an unknown key is an error that lists the valid ones."""
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for {what}; valid: {', '.join(defaults)}")
    return {**defaults, **kwargs}


def data_cli(words: list[str], kwargs: dict) -> None:
    """Entry point of ``yolo-gism data``: words is [] for a dataset or ["video"] for a clip."""
    if "out" in kwargs and isinstance(kwargs["out"], (int, float)) and not isinstance(kwargs["out"], bool):
        kwargs = {**kwargs, "out": str(kwargs["out"])}  # out=2024 is a folder name, not a number
    try:
        if words == ["video"]:
            path = make_clip(**merged(VIDEO_DEFAULTS, kwargs, "'data video'"))
        elif not words:
            path = make_dataset(**merged(DATASET_DEFAULTS, kwargs, "'data'"))
        else:
            raise ValueError(f"unknown word(s) {' '.join(words)!r}; use 'yolo-gism data key=value ...' "
                             "or 'yolo-gism data video key=value ...'")
    except FileExistsError as e:  # the command reports ValueErrors as one line, not a traceback
        raise ValueError(str(e)) from e
    print(f"wrote {path}")
