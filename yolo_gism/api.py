"""``yolo_gism.distill`` and the ``yolo-gism distill`` command: thin front doors to GISMTrainer."""

from __future__ import annotations

from typing import Any


def distill(student: str = "yolov8n.yaml", teacher: str | None = None, data: str | None = None, **kwargs: Any):
    """Train `student` under `teacher` on `data` with GISM; returns the trained ultralytics YOLO model.

    Ultralytics train arguments (epochs, imgsz, batch, ...) and GISM keys (temperature, alpha, ...) both go in
    kwargs; `resume="path/to/last.pt"` continues an interrupted distillation with its teacher and adapters.
    """
    from ultralytics import YOLO

    from .trainer import GISMTrainer

    resume = kwargs.get("resume")
    model = YOLO(resume if isinstance(resume, str) else student)
    if teacher is not None:
        kwargs["teacher"] = teacher
    if data is not None:
        kwargs["data"] = data
    model.train(trainer=GISMTrainer, **kwargs)
    return model


def distill_cli(words: list[str], kwargs: dict) -> None:
    """yolo-gism distill model=yolov8n.yaml teacher=teacher.pt data=data.yaml epochs=100 imgsz=640 ..."""
    if words:
        raise ValueError(f"unexpected words {words}; arguments are key=value")
    student = kwargs.pop("model", kwargs.pop("student", "yolov8n.yaml"))
    distill(student=student, **kwargs)
