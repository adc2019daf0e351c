"""GPU checks for one short call on a lent CUDA machine: does distillation train under AMP, and what do
training and inference cost there?

    YOLO_OFFLINE=1 python bench/gpu_check.py [epochs=20] [device=0] [frames=300] [out=bench/results/gpu_check.json]

1. amp: a vanilla YOLOv8n and a GISM YOLOv8n (teacher: the committed YOLOv8s of cfg/distill_gain_cpu_long.yaml) on
   that protocol's data with amp=True, two processes side by side. Checked: Ultralytics kept AMP on, the teacher
   ran in fp16, every logged loss is finite, the GISM checkpoint is an ordinary Ultralytics file (it loads with
   YOLO(), holds no teacher or adapter) and finds objects. Recorded: epoch times and final mAP50-95.
2. overhead: bench/train_overhead.py on the GPU (untrained YOLOv8l teacher, YOLOv8n student, 640 px, batch 32).
3. fps: `yolo-gism fps` with device=0 half=True on the real traffic videos (../shared/data/videos, or videos=DIR):
   the YOLOv8s teacher and both students of part 1, at 640 px.

A part that fails is recorded with its error; the others still run. Writes the JSON and a Markdown summary;
`python bench/gpu_check.py report [note=...]` rewrites the summary from the JSON (with a note on the conditions).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RUNS = ROOT / "bench" / "runs" / "gpu_check"
PROTOCOL = ROOT / "cfg" / "distill_gain_cpu_long.yaml"
DEFAULTS = dict(epochs=20, device="0", frames=300, videos=str(ROOT.parent / "shared" / "data" / "videos"),
                out=str(ROOT / "bench" / "results" / "gpu_check.json"))


def parse_args(argv: list[str]) -> dict:
    """The project's key=value parsing (yolo_gism.cli); an unknown key stops the check before it uses the GPU."""
    from yolo_gism.cli import parse_args as key_values

    words, values = key_values(argv)
    unknown = [*words, *(k for k in values if k not in DEFAULTS)]
    if unknown:
        raise SystemExit(f"bad argument(s) {unknown}; expected key=value with key in {sorted(DEFAULTS)}")
    return {**DEFAULTS, **values, "device": str(values.get("device", DEFAULTS["device"]))}


def cpu_protocol() -> dict:
    """The CPU gain protocol whose data, teacher and students this check reuses on the GPU."""
    import distill_gain as gain

    return gain.load_protocol(str(PROTOCOL))


# ----- part 1: AMP training, one process per method -------------------------------------------
def train(method: str, epochs: int, device: str) -> dict:
    """Train one student under AMP and return what the checks need (runs in its own process)."""
    import torch
    from ultralytics import YOLO

    import distill_gain as gain
    from yolo_gism import GISMTrainer

    protocol = cpu_protocol()
    seen = {"amp": [], "teacher_dtype": None}

    def on_epoch_end(trainer):
        seen["amp"].append(bool(trainer.amp) and trainer.scaler.is_enabled())
        if getattr(trainer, "teacher", None) is not None:
            seen["teacher_dtype"] = str(next(trainer.teacher.model.parameters()).dtype)

    model = YOLO(protocol["student"]["model"])
    model.add_callback("on_train_epoch_end", on_epoch_end)
    args = dict(data=str(gain.dataset(protocol)), epochs=epochs, imgsz=protocol["imgsz"], batch=protocol["batch"],
                device=device, seed=0, project=str(RUNS), name=method, exist_ok=True,
                **{**protocol["train_args"], "amp": True, "workers": 4})
    if method == "gism":
        model.train(trainer=GISMTrainer, teacher=str(gain.teacher_path(protocol)), **args)
    else:
        model.train(**args)
    return {"amp_on_every_epoch": all(seen["amp"]) and len(seen["amp"]) == epochs, "teacher_dtype": seen["teacher_dtype"],
            "torch_cuda": torch.version.cuda}


def results_of(folder: Path) -> dict:
    """Losses from the run's results.csv, its epoch time and final mAP as the gain benchmark reads them, and what
    the checkpoint holds."""
    import csv

    import torch
    from ultralytics import YOLO

    import distill_gain as gain

    with open(folder / "results.csv") as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    losses = [k for k in rows[0] if k.startswith("train/")]
    curve = gain._curve(folder / "results.csv")
    best = folder / "weights" / "best.pt"
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    model_keys = [k for k in ckpt["model"].state_dict() if "teacher" in k or "adapter" in k]
    image = min((gain.dataset(cpu_protocol()).parent / "images" / "val").iterdir())
    found = len(YOLO(str(best)).predict(str(image), imgsz=256, device="cpu", verbose=False)[0].boxes)
    return {
        "epochs": len(rows),
        "all_losses_finite": all(math.isfinite(r[k]) for r in rows for k in losses),
        "loss_columns": losses,
        "last_losses": {k: rows[-1][k] for k in losses},
        "epoch_seconds": curve["epoch_seconds"],
        "map50_95": curve["curve_map50_95"][-1],
        "checkpoint_model_class": type(ckpt["model"]).__name__,
        "checkpoint_teacher_or_adapter_tensors": len(model_keys),
        "boxes_found_on_a_val_image": found,
        "best": str(best.relative_to(ROOT)),
    }


def part_amp(args: dict) -> dict:
    import distill_gain as gain

    gain.dataset(cpu_protocol())  # generate once, before two processes read it
    procs = {m: subprocess.Popen([sys.executable, __file__, "_train", m, str(args["epochs"]), args["device"]],
                                 stdout=subprocess.PIPE, text=True) for m in ("vanilla", "gism")}
    out = {}
    for method, proc in procs.items():
        stdout, _ = proc.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith("GPU_CHECK ")]
        if proc.returncode != 0 or not lines:
            out[method] = {"error": f"exit {proc.returncode}", "tail": stdout[-2000:]}
            continue
        out[method] = {**json.loads(lines[-1].removeprefix("GPU_CHECK ")), **results_of(RUNS / method)}
    if not any("error" in result for result in out.values()):
        out["gism_epoch_time_vs_vanilla"] = out["gism"]["epoch_seconds"] / out["vanilla"]["epoch_seconds"]
    return out


# ----- parts 2 and 3: the existing benchmarks, on the GPU ----------------------------------------
def part_overhead(args: dict) -> dict:
    target = Path(args["out"]).with_name("train_overhead_h200.json")
    command = [sys.executable, str(ROOT / "bench" / "train_overhead.py"), f"device={args['device']}", "imgsz=640",
               "batch=32", "rounds=5", "iters=10", "warmup=2", f"out={target}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "tail": (done.stdout + done.stderr)[-2000:]}
    return {"file": str(target.relative_to(ROOT)), "summary": json.loads(target.read_text())["summary"]}


def part_fps(args: dict, amp: dict) -> dict:
    import distill_gain as gain

    videos = sorted(Path(args["videos"]).glob("*.mp4"))
    students = [amp.get(m, {}).get("best") for m in ("vanilla", "gism")]
    if not videos or None in students:
        return {"error": f"no videos in {args['videos']}" if not videos else "part 1 left no students"}
    models = ",".join([str(gain.teacher_path(cpu_protocol())), *[str(ROOT / s) for s in students]])
    out = {}
    for video in videos:
        folder = RUNS / "fps" / video.stem
        command = [sys.executable, "-m", "yolo_gism.cli", "fps", f"source={video}", f"models={models}",
                   f"device={args['device']}", f"half={args['device'] != 'cpu'}", "imgsz=640",
                   f"frames={args['frames']}", "warmup=10", "per_frame=False", f"json={folder / 'fps.json'}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            out[video.name] = {"error": f"exit {done.returncode}", "tail": (done.stdout + done.stderr)[-2000:]}
            continue
        report = json.loads((folder / "fps.json").read_text())
        out[video.name] = {"command": " ".join(command[1:]).replace(str(ROOT) + "/", ""), "report": report}
    return out


def machine() -> dict:
    import torch
    import ultralytics

    return {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__,
            "cuda": torch.version.cuda, "ultralytics": ultralytics.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count()}


def markdown(report: dict) -> str:
    amp = report["amp"]
    lines = [f"# GPU checks ({report['machine']['gpu']}, {report['date']})", "", f"Command: `{report['command']}`", "",
             "| method | AMP on | teacher dtype | losses finite | epoch s | mAP50-95 | checkpoint |",
             "|---|---|---|---|---|---|---|"]
    for method in ("vanilla", "gism"):
        r = amp.get(method, {})
        if "error" in r or not r:
            lines.append(f"| {method} | failed: {r.get('error')} | | | | | |")
            continue
        lines.append(f"| {method} | {r['amp_on_every_epoch']} | {r['teacher_dtype']} | {r['all_losses_finite']} | "
                     f"{r['epoch_seconds']:.2f} | {r['map50_95']:.4f} | {r['checkpoint_model_class']}, "
                     f"{r['checkpoint_teacher_or_adapter_tensors']} teacher/adapter tensors |")
    if "gism_epoch_time_vs_vanilla" in amp:
        lines += ["", f"GISM epoch time / vanilla epoch time (side by side): {amp['gism_epoch_time_vs_vanilla']:.2f}"]
    overhead = report["overhead"].get("summary")
    if overhead:
        lines += ["", f"Training overhead ({report['overhead']['file']}, median iteration, YOLOv8l teacher, YOLOv8n "
                  f"student, 640 px, batch 32): GISM {overhead['median_s']['gism'] * 1000:.0f} ms, student alone "
                  f"{overhead['median_s']['student'] * 1000:.0f} ms, teacher forward "
                  f"{overhead['median_s']['teacher'] * 1000:.0f} ms, built-in {overhead['median_s']['builtin'] * 1000:.0f}"
                  f" ms; GISM / (student + teacher) = {overhead['ratio_gism_vs_student_plus_teacher']:.2f} (goal "
                  f"<= 1.10), GISM / built-in = {overhead['ratio_gism_vs_builtin']:.2f}."]
    else:
        lines += ["", f"Training overhead failed: {report['overhead'].get('error')}"]
    fps = report.get("fps", {})
    lines += ["", "| video | model | precision | fps | bottleneck |", "|---|---|---|---|---|"]
    for video, result in ({"all": fps} if "error" in fps else fps).items():
        for r in result.get("report", {}).get("results", []):
            lines.append(f"| {video} | {r['model']} | {r['precision']} | {r['fps']:.1f} | {r['bottleneck']} |")
        if "error" in result:
            lines.append(f"| {video} | failed: {result['error']} | | | |")
    if report.get("note"):
        lines += ["", f"Conditions: {report['note']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_train":
        print("GPU_CHECK " + json.dumps(train(argv[1], int(argv[2]), argv[3])), flush=True)
        return
    if argv and argv[0] == "report":  # rewrite the Markdown from the JSON, keeping note=... with the result
        out = Path(DEFAULTS["out"])
        report = json.loads(out.read_text())
        report.update(dict(a.split("=", 1) for a in argv[1:] if a.startswith("note=")))
        out.write_text(json.dumps(report, indent=2))
        out.with_suffix(".md").write_text(markdown(report))
        return
    args = parse_args(argv)
    started = time.time()
    report = {"command": "YOLO_OFFLINE=1 python bench/gpu_check.py " + " ".join(argv),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    for name, part in (("amp", lambda: part_amp(args)), ("overhead", lambda: part_overhead(args)),
                       ("fps", lambda: part_fps(args, report.get("amp", {})))):
        t0 = time.time()
        try:
            report[name] = part()
        except Exception as error:  # one broken part must not lose the others' results
            report[name] = {"error": repr(error)}
        print(f"[gpu_check] {name}: {time.time() - t0:.0f} s", flush=True)
    report["seconds"] = round(time.time() - started, 1)
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(f"[gpu_check] wrote {out}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
