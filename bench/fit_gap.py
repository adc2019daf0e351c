"""Train-split vs validation-split mAP of the gain protocol's models: memorised, or still learning?

Distillation on the training images can only add what the teacher knows beyond their labels. A teacher that
has memorised its training set (train mAP far above val) repeats the labels there; one that is still underfit
(train close to val) gives a genuinely different signal, and then the student is limited by training time,
which is exactly what the time-matched vanilla student also buys.

    python bench/fit_gap.py models=teacher=bench/results/distill_gain_runs/cpu/teacher/seed0/best.pt,vanilla=... \
        [protocol=cfg/distill_gain_cpu.yaml] [imgsz=256] [threads=1]

Both splits are scored by Ultralytics' validator on the protocol's data, with the same settings. Writes
bench/results/fit_gap.json and .md for the default protocol, fit_gap_<protocol name>.json and .md for another.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import distill_gain  # noqa: E402
from yolo_gism.fps import model_map  # noqa: E402

DEFAULT_PROTOCOL = "cfg/distill_gain_cpu.yaml"


def split_map(weights: str, data: Path, split: str, imgsz: int) -> dict:
    m, m50 = model_map(weights, data, imgsz, split=split)
    return {"map50_95": m, "map50": m50}


def main(argv: list[str]) -> dict:
    import torch

    args = {"imgsz": "256", "threads": "1", "protocol": DEFAULT_PROTOCOL, **dict(a.split("=", 1) for a in argv)}
    if "models" not in args:
        raise SystemExit("give models=name=path.pt,name=path.pt")
    torch.set_num_threads(int(args["threads"]))
    protocol = distill_gain.load_protocol(str(ROOT / args["protocol"]))
    data = distill_gain.dataset(protocol)
    out = distill_gain.RESULTS / ("fit_gap" if args["protocol"] == DEFAULT_PROTOCOL else f"fit_gap_{protocol['name']}")
    models = dict(item.split("=", 1) for item in args["models"].split(","))
    rows = {}
    for name, weights in models.items():
        train, val = (split_map(weights, data, s, int(args["imgsz"])) for s in ("train", "val"))
        rows[name] = {"weights": weights, "train": train, "val": val,
                      "train_minus_val_points": round(100 * (train["map50_95"] - val["map50_95"]), 2)}
        print(f"[fit_gap] {name}: train {train['map50_95']:.4f} val {val['map50_95']:.4f}", flush=True)
    payload = {"command": " ".join(["python bench/fit_gap.py", *argv]),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "environment": distill_gain.environment(), "data": str(data.relative_to(ROOT)),
               "imgsz": int(args["imgsz"]), "models": rows}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# Train vs validation mAP50-95 ({args['protocol']}'s data)", "", f"`{payload['command']}`", "",
             "| model | train | val | train - val, points |", "|---|---|---|---|"]
    lines += [f"| {n} | {r['train']['map50_95']:.4f} | {r['val']['map50_95']:.4f} | {r['train_minus_val_points']:+.2f} |"
              for n, r in rows.items()]
    lines += ["", "Same validator settings for both splits (Ultralytics' val transforms: no augmentation)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
