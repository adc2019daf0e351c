"""How strong is each distillation signal next to the detection loss, at the start of training?

    python bench/loss_magnitude.py teacher=path/to/teacher.pt data=path/to/data.yaml [batches=4] [imgsz=256]

On the same batches (same seed), a fresh student under GISM (lambda at full strength, for the given kd_gain
values) and under Ultralytics' built-in distill_model= (default dis). Reports each method's distillation
part divided by the detection loss. Used to put GISM's default kd_gain on the built-in's scale; it says
nothing about accuracy. Writes bench/results/loss_magnitude.json and .md.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from distill_gain import RESULTS, environment  # noqa: E402


def ratios(trainer_cls, overrides: dict, batches: int) -> list[float]:
    """Distillation part / detection loss on the first `batches` training batches of a fresh student."""
    torch.manual_seed(0)
    trainer = trainer_cls(overrides=overrides)
    trainer._setup_train()
    trainer.epoch = 0
    trainer._model_train()
    out, loader = [], iter(trainer.train_loader)
    for _ in range(batches):
        with torch.no_grad():
            loss, _ = trainer.model(trainer.preprocess_batch(next(loader)))
        out.append(float(loss[-1] / loss[:-1].sum()))
    return out


def main(argv: list[str]) -> None:
    from ultralytics.models.yolo.detect import DetectionTrainer

    from yolo_gism import GISMTrainer

    args = dict(a.split("=", 1) for a in argv)
    batches, imgsz = int(args.get("batches", 4)), int(args.get("imgsz", 256))
    common = dict(model=args.get("student", "yolov8n.yaml"), data=args["data"], imgsz=imgsz, batch=16, device="cpu",
                  workers=0, plots=False, amp=False, epochs=10, exist_ok=True, verbose=False,
                  project=str(ROOT / "bench" / "runs" / "loss_magnitude"))
    results = {"builtin_dis6": ratios(DetectionTrainer, {**common, "name": "builtin",
                                                          "distill_model": args["teacher"]}, batches)}
    for gain in (1.0, 4.0):
        results[f"gism_kd_gain{gain:g}"] = ratios(GISMTrainer, {**common, "name": f"gism{gain:g}", "kd_gain": gain,
                                                                "teacher": args["teacher"], "kd_warmup": 0,
                                                                "kd_ramp": 0}, batches)
    summary = {k: statistics.mean(v) for k, v in results.items()}
    report = {"command": "python bench/loss_magnitude.py " + " ".join(argv), "environment": environment(),
              "seed": 0, "batches": batches, "imgsz": imgsz, "teacher": args["teacher"],
              "summary": {"distill_over_detection_loss": summary}, "per_batch": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "loss_magnitude.json").write_text(json.dumps(report, indent=2))
    lines = ["# Distillation part / detection loss, fresh student", "", f"Command: `{report['command']}`", "",
             "| method | ratio (mean over batches) |", "|---|---|", *[f"| {k} | {v:.3f} |" for k, v in summary.items()]]
    (RESULTS / "loss_magnitude.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
