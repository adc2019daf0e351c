"""Write a synthetic traffic video: one fixed viewpoint and lighting, continuous motion, labels per frame.

For ``out="clip.mp4"`` it writes ``clip.mp4`` (mp4v, imgsz x imgsz), ``clip_labels/000000.txt`` ... (YOLO
format, one file per frame, possibly empty) and ``clip.json`` (frames, fps, imgsz, seed, names, conditions).
The written video is read back and its frame count checked.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from .background import draw_background
from .checks import check_bool, check_fps, check_imgsz, check_int, check_path
from .dataset import clear_stale, progress
from .labels import yolo_lines
from .motion import Traffic
from .render import Rendered, render_scene
from .scene import CLASS_NAMES, Scene, sample_conditions, sample_view

CLIP_STREAM = 2  # keeps clip generators apart from the dataset's train (0) and val (1) streams


def clip_setting(imgsz: int, seed: int):
    """(generator, view, conditions) of a clip: fixed for all its frames."""
    rng = np.random.default_rng([seed, CLIP_STREAM])
    view = sample_view(rng, imgsz)
    return rng, view, sample_conditions(rng)


def simulate(frames: int, fps: float, imgsz: int, seed: int):
    """Yield (Rendered, Scene) for each frame of a clip; the scene's agents keep their ids across frames."""
    rng, view, cond = clip_setting(imgsz, seed)
    traffic = Traffic(rng, view)
    background = draw_background(view, cond, rng)
    for frame in range(frames):
        if frame:
            traffic.step(1.0 / fps)
        scene = Scene(view, cond, traffic.agents)
        frame_rng = np.random.default_rng([seed, CLIP_STREAM, frame])  # noise and rain differ per frame
        yield render_scene(scene, frame_rng, background), scene


def clip_paths(out: Path) -> tuple[Path, Path]:
    """The label folder and the json that go beside a video."""
    return out.with_name(out.stem + "_labels"), out.with_suffix(".json")


def refuse_existing(out: Path, exist_ok: bool) -> None:
    """Refuse to replace a video, its json or a non-empty label folder unless exist_ok."""
    labels, meta = clip_paths(out)
    taken = [p for p in (out, meta) if p.exists()] + ([labels] if labels.is_dir() and any(labels.iterdir()) else [])
    if taken and not exist_ok:
        raise FileExistsError(f"'{taken[0]}' already exists; pass exist_ok=True to replace the clip")
    if out.exists() and out.is_dir():
        raise FileExistsError(f"'{out}' is a folder, expected a video file name")


def count_frames(path: Path) -> int:
    """Frames actually decodable from a written video."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def write_frames(out: Path, labels: Path, frames: int, fps: float, imgsz: int, seed: int) -> Rendered:
    """Render and write every frame and its label file; return the last frame."""
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (imgsz, imgsz))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to '{out}'")
    bar = progress(frames, f"yolo_gism video -> {out}")
    try:
        for index, (rendered, _) in enumerate(simulate(frames, fps, imgsz, seed)):
            writer.write(rendered.image)
            (labels / f"{index:06d}.txt").write_text(yolo_lines(rendered.labels(), imgsz, imgsz))
            if bar is not None:
                bar.update(1)
    finally:
        writer.release()
        if bar is not None:
            bar.close()
    return rendered


def make_clip(out="clip.mp4", frames: int = 300, fps: float = 30, imgsz: int = 320, seed: int = 0,
              exist_ok: bool = False) -> Path:
    """Write a traffic video of ``frames`` frames with per-frame labels beside it; return the video path.

    ``out`` must end in .mp4; ``frames`` >= 1; ``fps`` in (0, 240]; ``imgsz`` a multiple of 32 in
    [32, 4096]; ``seed`` >= 0 (ValueError otherwise). Existing outputs are refused (FileExistsError)
    unless ``exist_ok``. Raises RuntimeError if the video read back has another frame count.
    """
    out = check_path("out", out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"out must be an .mp4 file name, got '{out}'")
    frames, fps = check_int("frames", frames, 1), check_fps(fps)
    imgsz, seed = check_imgsz(imgsz), check_int("seed", seed, 0)
    exist_ok = check_bool("exist_ok", exist_ok)
    refuse_existing(out, exist_ok)
    labels, meta = clip_paths(out)
    clear_stale(labels)
    labels.mkdir(parents=True, exist_ok=True)
    write_frames(out, labels, frames, fps, imgsz, seed)
    written = count_frames(out)
    if written != frames:
        raise RuntimeError(f"'{out}' holds {written} frames, expected {frames}")
    _, view, cond = clip_setting(imgsz, seed)
    info = {"video": out.name, "frames": frames, "fps": fps, "imgsz": imgsz, "seed": seed, "labels": labels.name,
            "names": {str(k): v for k, v in CLASS_NAMES.items()}, "conditions": asdict(cond),
            "lanes": view.lanes}
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return out


__all__ = ["make_clip", "simulate"]
