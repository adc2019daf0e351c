"""Is a bfloat16 teacher good enough, and how much faster is it? The teacher's forward pass is the largest
cost of distillation, so its precision decides how many extra epochs the time-matched vanilla student gets.

    python bench/teacher_precision.py teacher=bench/results/distill_gain_runs/cpu/teacher/seed0/best.pt \
        data=<protocol data.yaml> imgsz=256 batch=16 rounds=5

On real validation images, through the same FrozenTeacher the trainer uses (Conv+BN fused, no autograd):
- time of one teacher forward per precision (fp32, bf16 autocast), interleaved round by round;
- fidelity of the bf16 targets against fp32 ones, in the quantities GISM reads: class probabilities
  sigmoid(z/T), the DFL bin distributions softmax(bins/T), and the two GISM terms evaluated with the
  bf16 outputs as "student" and the fp32 ones as teacher (the loss floor that rounding adds), beside the
  same terms for a real student (`student=`, e.g. a trained YOLOv8n) so the floor can be read against the signal.
Writes bench/results/teacher_precision.json and .md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULTS = dict(teacher=None, data=None, student=None, imgsz=256, batch=16, rounds=5, temperature=2.0, threads=1,
                out=str(ROOT / "bench" / "results" / "teacher_precision.json"))


def dataset_images(data_yaml: str, imgsz: int, count: int | None, split: str = "val") -> torch.Tensor:
    """The first `count` images (None: all) of a split, letterboxed by Ultralytics' own dataset code with its
    validation transforms (no augmentation, whichever the split)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(data_yaml)
    cfg = get_cfg(overrides={"imgsz": imgsz, "rect": False})
    dataset = build_yolo_dataset(cfg, data[split], 1, data, mode="val", stride=32)
    items = [dataset[i] for i in range(len(dataset) if count is None else count)]
    return torch.stack([item["img"] for item in items]).float() / 255


def timed(fn, images) -> float:
    start = time.perf_counter()
    fn(images)
    return time.perf_counter() - start


def kd_terms(teacher: dict, student: dict, temperature: float, reg_max: int, weight: torch.Tensor | None = None) -> dict:
    """GISM's class and box terms of `student` against `teacher`, over every anchor (or weighted by a (B, A) weight)."""
    from yolo_gism.losses import BinDistributionKD, ClassScoreKD

    t_scores, s_scores = teacher["scores"].float(), student["scores"].float()
    weight = torch.ones(t_scores.shape[0], t_scores.shape[2]) if weight is None else weight
    cls = ClassScoreKD(temperature)(s_scores.permute(0, 2, 1), t_scores.permute(0, 2, 1), weight)
    box = BinDistributionKD(reg_max, temperature)(student["boxes"].float().permute(0, 2, 1),
                                                  teacher["boxes"].float().permute(0, 2, 1), weight)
    return {"kdcls": cls.item(), "kdbox": box.item()}


def fidelity(reference: dict, rounded: dict, temperature: float, reg_max: int) -> dict:
    """bf16 outputs against fp32 ones, in what GISM's losses read."""
    t_scores, r_scores = reference["scores"].float(), rounded["scores"].float()
    prob_diff = ((t_scores / temperature).sigmoid() - (r_scores / temperature).sigmoid()).abs()
    floor = kd_terms(reference, rounded, temperature, reg_max)
    feats = [((a.float() - b.float()).abs().max() / a.float().abs().max()).item()
             for a, b in zip(reference["feats"], rounded["feats"])]
    return {"score_prob_max_abs_diff": prob_diff.max().item(), "score_prob_mean_abs_diff": prob_diff.mean().item(),
            "kdcls_floor": floor["kdcls"], "kdbox_floor": floor["kdbox"], "feature_max_rel_diff_per_level": feats}


def main(argv: list[str]) -> dict:
    from yolo_gism.cli import parse_args
    from yolo_gism.fps_report import environment
    from yolo_gism.teacher import FrozenTeacher, detect_head, load_teacher_model

    words, kwargs = parse_args(argv)
    if words or set(kwargs) - set(DEFAULTS) or not kwargs.get("teacher") or not kwargs.get("data"):
        raise SystemExit(f"usage: teacher_precision.py teacher=best.pt data=data.yaml [key=value ...]; "
                         f"keys: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **kwargs}
    torch.set_num_threads(int(cfg["threads"]))
    images = dataset_images(str(cfg["data"]), int(cfg["imgsz"]), int(cfg["batch"]))
    teachers = {dtype: FrozenTeacher(load_teacher_model(str(cfg["teacher"])), torch.device("cpu"), dtype)
                for dtype in ("fp32", "bf16")}
    outputs = {dtype: teacher(images) for dtype, teacher in teachers.items()}  # also the warm-up
    times = {dtype: [] for dtype in teachers}
    for _ in range(int(cfg["rounds"])):
        for dtype, teacher in teachers.items():
            times[dtype].append(timed(teacher, images))
    median = {dtype: statistics.median(t) for dtype, t in times.items()}
    temperature, reg_max = float(cfg["temperature"]), detect_head(teachers["fp32"].model).reg_max
    summary = {"bf16_speedup_vs_fp32": median["fp32"] / median["bf16"],
               **fidelity(outputs["fp32"], outputs["bf16"], temperature, reg_max)}
    if cfg["student"]:
        student = FrozenTeacher(load_teacher_model(str(cfg["student"])), torch.device("cpu"), "fp32")(images)
        signal = kd_terms(outputs["fp32"], student, temperature, reg_max)
        summary.update(student_kdcls=signal["kdcls"], student_kdbox=signal["kdbox"])
    result = {"command": "python bench/teacher_precision.py " + " ".join(argv), "config": cfg,
              "environment": environment(), "seconds_per_forward": times, "median_seconds": median,
              "summary": summary}
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    env = result["environment"]
    lines = ["# Teacher precision: fp32 vs bf16 autocast", "", f"`{result['command']}`", "",
             f"{env['cpu']}, {cfg['threads']} thread(s); batch {cfg['batch']} at {cfg['imgsz']} px, "
             f"{cfg['rounds']} interleaved rounds.", "",
             "| quantity | value |", "|---|---|",
             *[f"| median s/forward {d} | {m:.4f} |" for d, m in median.items()],
             *[f"| {k} | {v if isinstance(v, list) else round(v, 6)} |" for k, v in summary.items()]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
