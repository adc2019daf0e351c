"""Write the synthetic traffic scenes as a YOLO detection dataset that Ultralytics trains on as is.

Layout::

    out/images/{train,val}/000000.jpg   square imgsz x imgsz JPEG (quality 95)
    out/labels/{train,val}/000000.txt   'cls cx cy w h' per labelled object (may be empty)
    out/data.yaml                       path, train, val, names (COCO spelling)

Image ``i`` of a split depends only on ``(seed, split, i)``: the same arguments give byte-identical files.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2

from .checks import check_bool, check_imgsz, check_int, check_path, refuse_nonempty
from .labels import yolo_lines
from .render import render_sample
from .scene import CLASS_NAMES

JPEG_QUALITY = 95
NUMBERED = re.compile(r"^\d{6}\.(jpg|txt)$")


def progress(total: int, desc: str):
    """Ultralytics' own progress bar (quiet when Ultralytics is not verbose), or none if it is missing."""
    try:
        from ultralytics.utils import TQDM
    except ImportError:  # the generator itself needs only numpy and OpenCV
        return None
    return TQDM(total=total, desc=desc, unit="img")


def clear_stale(folder: Path) -> None:
    """Remove files an earlier run wrote here (numbered images/labels), so a smaller rerun leaves none behind."""
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and NUMBERED.match(f.name):
                f.unlink()
    cache = folder.with_suffix(".cache")  # Ultralytics' label cache for this split
    if cache.is_file():
        cache.unlink()


def write_image(root: Path, split: str, index: int, imgsz: int, seed: int) -> int:
    """Render, save image and labels; return the number of labels written."""
    rendered = render_sample(seed, index, imgsz, split)
    name = f"{index:06d}"
    ok, buf = cv2.imencode(".jpg", rendered.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {split} image {index}")
    (root / "images" / split / f"{name}.jpg").write_bytes(buf.tobytes())
    labels = rendered.labels()
    (root / "labels" / split / f"{name}.txt").write_text(yolo_lines(labels, imgsz, imgsz))
    return len(labels)


def write_yaml(root: Path, val: int, train: int, imgsz: int, seed: int) -> Path:
    """data.yaml in Ultralytics' format; with val=0 validation reuses the training images."""
    names = "\n".join(f"  {k}: {v}" for k, v in CLASS_NAMES.items())
    text = (f"# yolo_gism synthetic traffic scenes: train={train} val={val} imgsz={imgsz} seed={seed}\n"
            f"path: {root.resolve()}\ntrain: images/train\nval: images/{'val' if val else 'train'}\n"
            f"names:\n{names}\n")
    path = root / "data.yaml"
    path.write_text(text)
    return path


def make_dataset(out, train: int = 1000, val: int = 200, imgsz: int = 320, seed: int = 0,
                 exist_ok: bool = False) -> Path:
    """Write ``train`` + ``val`` synthetic traffic images with labels under ``out``; return its data.yaml.

    Args: ``train`` >= 1, ``val`` >= 0 (0: validation reuses the train images), ``imgsz`` a multiple of 32
    in [32, 4096], ``seed`` >= 0. An existing non-empty ``out`` is refused (FileExistsError naming it) unless
    ``exist_ok``; then earlier numbered images/labels there are replaced. Bad values raise ValueError.
    Labels: see ``yolo_gism.data.labels`` (>= 30 % of an object visible and box >= 2 px).
    """
    out = check_path("out", out)
    train, val = check_int("train", train, 1), check_int("val", val, 0)
    imgsz, seed = check_imgsz(imgsz), check_int("seed", seed, 0)
    exist_ok = check_bool("exist_ok", exist_ok)
    refuse_nonempty(out, exist_ok)
    bar = progress(train + val, f"yolo_gism data -> {out}")
    for split, count in (("train", train), ("val", val)):
        for sub in ("images", "labels"):
            clear_stale(out / sub / split)
            if count:
                (out / sub / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            write_image(out, split, index, imgsz, seed)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return write_yaml(out, val, train, imgsz, seed)
