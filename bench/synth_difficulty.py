"""Is the built-in traffic data hard enough? A YOLOv8n trained from scratch vs a larger model trained the
same way, on the gain benchmark's schedule, and how fast the generator is.

    python bench/synth_difficulty.py [protocol=cfg/distill_gain_cpu.yaml]

The two trainings are the gain protocol's `vanilla` (seed 0) and `teacher` runs (run them with
`python bench/distill_gain.py steps=teacher,main seeds=0`); this script trains nothing itself, it reads
their metrics and measures generation speed. Writes bench/results/synth_difficulty.json and .md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from distill_gain import RESULTS, environment, finished_metrics, load_protocol  # noqa: E402


def main(argv: list[str]) -> None:
    from yolo_gism.data import measure_generation_speed

    args = dict(a.split("=", 1) for a in argv)
    protocol = load_protocol(args.get("protocol", str(ROOT / "cfg" / "distill_gain_cpu.yaml")))
    speed = measure_generation_speed(n=int(args.get("n", 200)), imgsz=320, seed=0)
    runs = {}
    for role, method, seed in (("student", "vanilla", 0), ("teacher", "teacher", protocol["teacher"].get("seed", 0))):
        done = finished_metrics(protocol, method, seed)  # local run, or the committed record of one
        runs[role] = json.loads(done.read_text()) if done else None
    summary = {"images_per_second": speed}
    if runs["student"] and runs["teacher"]:
        s, t = runs["student"], runs["teacher"]
        summary.update(student_map50_95=s["map50_95"], teacher_map50_95=t["map50_95"],
                       gap_points=100 * (t["map50_95"] - s["map50_95"]),
                       gap_points_small=100 * (t["ap_small"] - s["ap_small"]),
                       gap_points_crowded=100 * (t["ap_crowded"] - s["ap_crowded"]),
                       relative_gap_all=(t["map50_95"] - s["map50_95"]) / max(t["map50_95"], 1e-9),
                       relative_gap_small=(t["ap_small"] - s["ap_small"]) / max(t["ap_small"], 1e-9),
                       relative_gap_crowded=(t["ap_crowded"] - s["ap_crowded"]) / max(t["ap_crowded"], 1e-9))
    report = {"command": " ".join(["python bench/synth_difficulty.py", *argv]), "environment": environment(),
              "protocol": protocol["_file"], "student": protocol["student"], "teacher": protocol["teacher"],
              "summary": summary, "complete": all(runs.values()), "runs": runs,
              "note": "generation speed: single process, 320 px, rendering + labels + JPEG encoding, no disk writes"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "synth_difficulty.json").write_text(json.dumps(report, indent=2))
    lines = ["# Synthetic traffic data: difficulty", "", f"Command: `{report['command']}`", "",
             "| quantity | value |", "|---|---|", *[f"| {k} | {v:.4g} |" for k, v in summary.items()]]
    if not report["complete"]:
        lines += ["", "**Incomplete:** the protocol's vanilla (seed 0) or teacher run has not finished yet."]
    (RESULTS / "synth_difficulty.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
