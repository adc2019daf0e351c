"""The frozen teacher: loading, checks against the student, class mapping, and its forward pass.

The teacher is never part of the student model: it lives beside it in the trainer, so nothing that
copies or saves the student ever sees it.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import DetectionModel, guess_model_task, load_checkpoint

from .cpuinfo import cpu_flags


def load_teacher_model(source: str | Path | nn.Module, names: dict[int, str] | None = None) -> DetectionModel:
    """Load a teacher from an Ultralytics checkpoint, or build an untrained one from a model yaml (tests)."""
    if isinstance(source, nn.Module):
        model = source
    else:
        path = Path(str(source))
        if path.suffix in {".yaml", ".yml"}:
            model = DetectionModel(str(path), nc=len(names) if names else None, verbose=False)
            if names:
                model.names = dict(names)
        else:
            if not path.is_file():
                raise FileNotFoundError(f"teacher={source}: file not found")
            try:
                model = load_checkpoint(str(path))[0]
            except Exception as e:  # corrupt, truncated or not a checkpoint at all
                raise ValueError(f"teacher={source}: cannot be read as an Ultralytics checkpoint ({e})") from e
    check_is_detector(model, source)
    return model.float()


def check_is_detector(model: nn.Module, source) -> None:
    """Only plain detection models have the (boxes, scores, feats) head outputs GISM distils."""
    head = getattr(model, "model", [None])[-1] if hasattr(model, "model") else None
    try:
        task = guess_model_task(model)
    except Exception:
        task = None
    if not isinstance(model, DetectionModel) or type(head) is not Detect or task != "detect":
        raise ValueError(f"teacher={source}: not a detection model (task={task!r}, head={type(head).__name__})")


def detect_head(model: nn.Module) -> Detect:
    return model.model[-1]


def resolve_class_groups(
    teacher_names: dict[int, str], student_names: dict[int, str], class_map: dict | None = None
) -> list[list[int]]:
    """For each student class, the teacher classes whose scores stand for it (their max is used).

    Same classes -> identity; teacher a superset -> matched by name; otherwise class_map
    {teacher class: student class} (names or indices) is required. Anything else is an error.
    """
    t_index = {v: k for k, v in teacher_names.items()}
    s_index = {v: k for k, v in student_names.items()}
    if class_map:
        groups: list[list[int]] = [[] for _ in student_names]
        for t_key, s_key in class_map.items():
            t = _lookup(t_key, teacher_names, t_index, "teacher")
            s = _lookup(s_key, student_names, s_index, "student")
            groups[s].append(t)
        missing = [student_names[i] for i, g in enumerate(groups) if not g]
        if missing:
            raise ValueError(f"class_map leaves student classes {missing} without a teacher class")
        return groups
    if [teacher_names[k] for k in sorted(teacher_names)] == [student_names[k] for k in sorted(student_names)]:
        return [[i] for i in sorted(student_names)]
    missing = [n for n in student_names.values() if n not in t_index]
    if missing:
        raise ValueError(
            f"teacher classes {list(teacher_names.values())[:12]}{'...' if len(teacher_names) > 12 else ''} neither "
            f"match the student's {list(student_names.values())} nor contain {missing} by name; "
            "pass class_map={teacher class: student class}"
        )
    return [[t_index[student_names[i]]] for i in sorted(student_names)]


def _lookup(key, names: dict[int, str], index: dict[str, int], role: str) -> int:
    if isinstance(key, str) and key in index:
        return index[key]
    if isinstance(key, int) and key in names:
        return key
    if isinstance(key, str) and key.isdigit() and int(key) in names:
        return int(key)
    raise ValueError(f"class_map: {role} class {key!r} not found among {list(names.values())}")


def map_teacher_scores(scores: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    """(B, C_teacher, A) logits -> (B, C_student, A): the max logit over each student class's teacher group."""
    width = max(len(g) for g in groups)
    if width == 1:
        return scores[:, [g[0] for g in groups]]
    index = torch.tensor([g + g[:1] * (width - len(g)) for g in groups], device=scores.device)  # pad by repeat
    return scores[:, index.flatten()].view(scores.shape[0], len(groups), width, -1).amax(2)


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bfloat16 arithmetic in hardware, not emulated (which would be slower than fp32)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def auto_dtype(device: torch.device) -> str:
    """The teacher's precision for teacher_dtype=auto: fp16 on CUDA; bf16 on CPUs that compute it natively,
    where a fused YOLOv8s teacher ran 1.94x faster, its softened class probabilities stayed within 0.01 of
    fp32 and rounding added a loss floor under 0.1 % of a trained student's KD terms
    (bench/results/teacher_precision.md); fp32 elsewhere."""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


class FrozenTeacher:
    """A teacher model fused, frozen, in eval mode, run without autograd in the chosen precision."""

    def __init__(self, model: DetectionModel, device: torch.device, dtype: str = "auto"):
        model = model.to(device)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self.model = model.fuse(verbose=False)  # folds Conv+BN; drops the unused branch of end-to-end heads
        self.device = device
        self.dtype = auto_dtype(device) if dtype == "auto" else dtype
        if self.dtype == "fp16":
            self.model.half()
        # channels-last convolutions are faster on CPU: a fused YOLOv8s teacher under bf16 autocast went from
        # 0.81 to 0.61 s per batch of 16 at 256 px on one thread (one hand measurement on a busy machine, not a
        # committed benchmark)
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    def eval(self) -> None:
        """Whatever the trainer does to the student, the teacher (BatchNorm included) stays in eval mode."""
        self.model.eval()

    def head_outputs(self, feats: list[torch.Tensor]) -> dict:
        """The teacher's own Detect head on other feature maps (the adapted student's), autograd on.

        The head's weights stay frozen; gradients reach only what made the maps. This is the cross-head term
        (CrossKD, Wang et al., 2024): the student's features are judged by the teacher's head, so the student's
        own head learns from the ground truth alone. Same precision as the teacher's forward.
        """
        head = detect_head(self.model)
        branch = head.one2many if getattr(head, "cv2", None) is not None else head.one2one  # fused YOLO26: one2one
        with self._precision():
            return head.forward_head([self._cast(f) for f in feats], **branch)

    def _precision(self):
        """bf16 autocast for a bf16 teacher; fp16 and fp32 teachers hold their weights in that precision instead."""
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.dtype == "bf16" else nullcontext()

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.half() if self.dtype == "fp16" else x

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict:
        """Raw head outputs {'boxes', 'scores', 'feats'} of the one-to-many branch."""
        with self._precision():
            out = self.model(self._cast(images.contiguous(memory_format=self.memory_format)))
        preds = out[1] if isinstance(out, tuple) else out
        return preds.get("one2many", preds)
