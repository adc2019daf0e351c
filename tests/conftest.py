"""Shared fixtures: a tiny dataset the tests write themselves and small models trained on it once per run.

Nothing here touches the network: models are built from Ultralytics yaml files, plots are off, and
YOLO_OFFLINE is set before Ultralytics is imported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import cv2
import numpy as np
import pytest

TINY_NAMES = {0: "car", 1: "bus", 2: "person"}
SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
BENCH = Path(__file__).resolve().parents[1] / "bench"


def _draw_tiny_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One image of flat shapes on a noisy road-grey background, with YOLO labels (cls, cx, cy, w, h)."""
    img = np.full((size, size, 3), 90, np.uint8)
    img = cv2.add(img, rng.integers(0, 30, img.shape, dtype=np.uint8))
    labels = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, 3))
        if cls == 0:  # car: wide red box
            w, h, color = rng.integers(size // 6, size // 3), rng.integers(size // 10, size // 6), (40, 40, 220)
        elif cls == 1:  # bus: long yellow box
            w, h, color = rng.integers(size // 3, size // 2), rng.integers(size // 6, size // 4), (30, 200, 230)
        else:  # person: tall thin dark-blue box
            w, h, color = rng.integers(size // 16, size // 10), rng.integers(size // 5, size // 3), (160, 60, 20)
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        cv2.rectangle(img, (x0, y0), (x0 + int(w) - 1, y0 + int(h) - 1), color, -1)
        labels.append((cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return img, labels


def write_tiny_dataset(root: Path, n_train: int = 128, n_val: int = 16, size: int = 128, seed: int = 0) -> Path:
    """Write a YOLO-format dataset under root and return its data.yaml."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, labels = _draw_tiny_image(rng, size)
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.png"), img)
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data_yaml = root / "data.yaml"
    names = "\n".join(f"  {k}: {v}" for k, v in TINY_NAMES.items())
    data_yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data_yaml


def train_tiny(model_yaml: str, data_yaml: Path, project: Path, name: str, epochs: int, imgsz: int = 128) -> Path:
    """Train a stock Ultralytics model briefly and return its best.pt."""
    from ultralytics import YOLO

    YOLO(model_yaml).train(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=16, device="cpu", workers=0, plots=False,
        project=str(project), name=name, exist_ok=True, seed=0, deterministic=False, amp=False, verbose=False,
        mosaic=0.0, val=False, optimizer="SGD", lr0=0.02, warmup_epochs=1,
    )
    return project / name / "weights" / "best.pt"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """data.yaml of a 128/16-image dataset of car, bus and person shapes at 128 px."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def trained_model(tiny_data, tmp_path_factory) -> Path:
    """A yolov8s trained 20 epochs on tiny_data (mAP50 about 0.6): its predictions mean something, unlike random
    weights, so agreement and postprocessing checks cannot pass vacuously. Also the teacher of distillation tests."""
    return train_tiny("yolov8s.yaml", tiny_data, tmp_path_factory.mktemp("trained"), "v8s", epochs=20)


@pytest.fixture(scope="session")
def trained_teacher(trained_model) -> Path:
    """The distillation tests' teacher: the trained yolov8s (bigger channels than the yolov8n student)."""
    return trained_model


def _bench_script(name: str):
    """A bench/ script imported as a module: the scripts are not a package, yet their helpers have tests."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gain():
    return _bench_script("distill_gain")


@pytest.fixture(scope="module")
def frontier():
    return _bench_script("gain_frontier")


@pytest.fixture(scope="module")
def video_fps_bench():
    return _bench_script("video_fps")


@pytest.fixture(scope="module")
def gpu_check():
    return _bench_script("gpu_check")


@pytest.fixture(scope="module")
def over_epochs():
    return _bench_script("gain_over_epochs")


@pytest.fixture(scope="module")
def agreement_bench():
    return _bench_script("teacher_agreement")
