"""Argument checks shared by the dataset writer, the clip writer and the command line.

Every check raises ``ValueError`` naming the argument, so the ``yolo-gism`` command prints one clear line.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

MIN_IMGSZ, MAX_IMGSZ, STRIDE = 32, 4096, 32


def check_int(name: str, value, minimum: int) -> int:
    """An integer (not a bool, not a float) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_imgsz(value) -> int:
    """Image side: a multiple of 32 (the largest YOLO stride) between 32 and 4096."""
    size = check_int("imgsz", value, MIN_IMGSZ)
    if size % STRIDE or size > MAX_IMGSZ:
        raise ValueError(f"imgsz must be a multiple of {STRIDE} between {MIN_IMGSZ} and {MAX_IMGSZ}, got {size}")
    return size


def check_fps(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 240:
        raise ValueError(f"fps must be a number in (0, 240], got {value!r}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """True/False, or 0/1 as the command line writes them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be True/False (or 1/0), got {value!r}")


def check_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise ValueError(f"{name} must be a path, got {value!r}")
    return Path(value)


def refuse_nonempty(folder: Path, exist_ok: bool) -> None:
    """Refuse to write into an existing non-empty folder unless exist_ok, before anything is written."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"'{folder}' exists and is not a folder")
    if not exist_ok and folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(f"'{folder}' exists and is not empty; pass exist_ok=True to write into it")
