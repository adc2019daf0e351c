"""Does a distilled student end up closer to its teacher than a vanilla one, and where?

On this data GISM's lead over the vanilla student stayed about one point whether the teacher stood 3 or 9 points
above it. Either the student does not imitate the teacher much (the terms are too weak to bind), or it imitates it
and the imitation is not what validation rewards (on training images, where distillation happens, the teacher is
itself overfit). This reads the two GISM response terms, class (binary KL of sigmoid(z/T)) and box (KL of the
DFL bin distributions), of each student against the teacher on the training and the validation images:

    python bench/teacher_agreement.py protocol=cfg/distill_gain_cpu_small_data.yaml \\
        teacher=bench/results/distill_gain_runs/cpu_small_data/teacher/seed0/best.pt \\
        students=vanilla=.../vanilla/seed0/weights/best.pt,gism=.../gism/seed0/weights/best.pt

Over every anchor and over the teacher's foreground (anchors where its top class probability at T=1 is at least
`fg=0.25`), with Ultralytics' validation transforms on both splits. Writes
bench/results/teacher_agreement_<protocol name>.json and .md.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import distill_gain  # noqa: E402
from teacher_precision import dataset_images, kd_terms  # noqa: E402

DEFAULTS = dict(protocol=None, teacher=None, students=None, imgsz=256, temperature=2.0, fg=0.25, chunk=25, threads=1)


def head_outputs(model, images: torch.Tensor, chunk: int) -> dict:
    """Raw class logits and DFL bins of a model (a FrozenTeacher) on the images, a chunk of images at a time."""
    parts = [model(images[i:i + chunk]) for i in range(0, len(images), chunk)]
    return {key: torch.cat([p[key] for p in parts]) for key in ("scores", "boxes")}


def foreground(teacher: dict, threshold: float) -> torch.Tensor:
    """(B, A) weight: 1 where the teacher's top class probability is at least the threshold."""
    return (teacher["scores"].float().sigmoid().amax(1) >= threshold).float()


def agreement(teacher: dict, students: dict, temperature: float, reg_max: int, threshold: float) -> dict:
    """Each student's class and box terms against the teacher, everywhere and on the teacher's foreground."""
    fg = foreground(teacher, threshold)
    rows = {"foreground_share": fg.mean().item()}
    for name, outputs in students.items():
        everywhere = kd_terms(teacher, outputs, temperature, reg_max)
        on_fg = kd_terms(teacher, outputs, temperature, reg_max, fg)
        rows[name] = {"kdcls": everywhere["kdcls"], "kdbox": everywhere["kdbox"],
                      "kdcls_fg": on_fg["kdcls"], "kdbox_fg": on_fg["kdbox"]}
    return rows


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"# Student against teacher: GISM's response terms ({cfg['protocol']}'s data)", "",
             f"`{result['command']}`", "",
             f"T = {cfg['temperature']}; foreground: anchors where the teacher's top class probability is at least "
             f"{cfg['fg']}. Lower is closer to the teacher.", "",
             "| split | student | class KL, all anchors | box KL, all anchors | class KL, teacher foreground | "
             "box KL, teacher foreground |", "|---|---|---|---|---|---|"]
    for split, rows in result["splits"].items():
        for name, r in rows.items():
            if name != "foreground_share":
                lines.append(f"| {split} | {name} | {r['kdcls']:.5f} | {r['kdbox']:.4f} | {r['kdcls_fg']:.4f} | "
                             f"{r['kdbox_fg']:.4f} |")
    shares = ", ".join(f"{split} {100 * rows['foreground_share']:.2f} %" for split, rows in result["splits"].items())
    return "\n".join([*lines, "", f"Teacher foreground share of anchors: {shares}."])


def main(argv: list[str]) -> dict:
    from yolo_gism.cli import parse_args
    from yolo_gism.fps_report import environment
    from yolo_gism.teacher import FrozenTeacher, detect_head, load_teacher_model

    words, kwargs = parse_args(argv)
    cfg = {**DEFAULTS, **kwargs}
    if words or set(kwargs) - set(DEFAULTS) or not all(cfg[k] for k in ("protocol", "teacher", "students")):
        raise SystemExit("usage: teacher_agreement.py protocol=cfg/....yaml teacher=best.pt "
                         "students=name=best.pt,name=best.pt [key=value ...]; keys: " + ", ".join(DEFAULTS))
    torch.set_num_threads(int(cfg["threads"]))
    protocol = distill_gain.load_protocol(str(ROOT / cfg["protocol"]))
    data = str(distill_gain.dataset(protocol))
    students = dict(item.split("=", 1) for item in str(cfg["students"]).split(","))
    load = lambda path: FrozenTeacher(load_teacher_model(path), torch.device("cpu"), "fp32")  # noqa: E731
    teacher_model, student_models = load(str(cfg["teacher"])), {name: load(path) for name, path in students.items()}
    reg_max = detect_head(teacher_model.model).reg_max
    splits = {}
    for split in ("train", "val"):
        images = dataset_images(data, int(cfg["imgsz"]), None, split)
        teacher = head_outputs(teacher_model, images, int(cfg["chunk"]))
        outputs = {name: head_outputs(model, images, int(cfg["chunk"])) for name, model in student_models.items()}
        splits[split] = agreement(teacher, outputs, float(cfg["temperature"]), reg_max, float(cfg["fg"]))
    result = {"command": "python bench/teacher_agreement.py " + " ".join(argv),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": cfg,
              "environment": environment(), "students": students, "splits": splits}
    out = distill_gain.RESULTS / f"teacher_agreement_{protocol['name']}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    block = markdown(result)
    out.with_suffix(".md").write_text(block + "\n")
    print(block)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
