"""Train, briefly, the YOLOv8l that bench/video_fps.py times as the teacher.

Frame rates and NMS times are only meaningful on a trained model (a random one finds nothing, or everything), and
no YOLOv8l weights may be downloaded here. So this trains one from yolov8l.yaml on the gain protocol's built-in
traffic data (cfg/distill_gain_cpu.yaml). It is a speed reference, not a good detector: its mAP is recorded
beside its weights so that nobody mistakes it for one.

    python bench/fps_teacher.py epochs=4 nbs=16 imgsz=256 threads=1

nbs=16 (one optimizer step per batch of 16, as in the gain protocol) gives 4 epochs 128 steps, more than the
96 that 12 epochs got with Ultralytics' default nbs=64, at a third of the time (a YOLOv8l epoch took 5-15 minutes
on one thread of this machine, depending on the day). More steps did not make a better model: 3 of the 4 epochs
are Ultralytics' warm-up (warmup_epochs=3), and the 4-epoch model of 2026-12-03 reached 0.0064 mAP50-95 (0.021
mAP50; it finds cars, little else) against 0.044 for the 12-epoch one. For frame rates that is enough: YOLOv8l's
inference at 640 px is about a second per frame here, and NMS a millisecond or two of it.

Cached in bench/runs/video_fps/yolov8l (resumed from last.pt if interrupted, skipped once finished); writes
bench/results/fps_teacher.json with the command, versions and final validation metrics.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import distill_gain  # noqa: E402  (the protocol's data, generated once and shared)

FOLDER = ROOT / "bench" / "runs" / "video_fps" / "yolov8l"
OUT = ROOT / "bench" / "results" / "fps_teacher.json"


def last_row(results_csv: Path) -> dict:
    with open(results_csv) as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return rows[-1]


def main(argv: list[str]) -> Path:
    import torch
    from ultralytics import YOLO

    args = {"epochs": "4", "nbs": "16", "imgsz": "256", "threads": "1", "seed": "0",
            **dict(a.split("=", 1) for a in argv)}
    best, last = FOLDER / "weights" / "best.pt", FOLDER / "weights" / "last.pt"
    protocol = distill_gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    data = distill_gain.dataset(protocol)
    threads = int(args["threads"])
    if not (last.exists() and distill_gain._finished(last)):
        resume = last.exists()
        model = YOLO(str(last) if resume else "yolov8l.yaml")
        model.add_callback("on_pretrain_routine_end", lambda trainer: torch.set_num_threads(threads))
        if resume:
            model.train(resume=True)
        else:
            model.train(data=str(data), epochs=int(args["epochs"]), imgsz=int(args["imgsz"]), batch=16,
                        device="cpu", seed=int(args["seed"]), nbs=int(args["nbs"]), workers=0, plots=False, amp=False,
                        project=str(FOLDER.parent), name=FOLDER.name, exist_ok=True)
    final = last_row(FOLDER / "results.csv")
    import ultralytics

    OUT.write_text(json.dumps({
        "command": " ".join(["python bench/fps_teacher.py", *argv]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
        "model": "yolov8l.yaml", "data": str(data.relative_to(ROOT)), "weights": str(best.relative_to(ROOT)),
        "settings": args,
        "epochs_done": int(float(final["epoch"])),
        "final_val": {k: float(final[k]) for k in ("metrics/mAP50(B)", "metrics/mAP50-95(B)")},
        "note": "speed reference for bench/video_fps.py, trained briefly; not a good detector",
    }, indent=2) + "\n")
    print(f"[fps_teacher] {best} ({OUT})")
    return best


if __name__ == "__main__":
    main(sys.argv[1:])
