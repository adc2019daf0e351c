"""Export parity and ONNX Runtime CPU latency of FP32, FP16 and INT8 exports, in one run.

    python bench/export_parity.py models=a.pt,b.pt data=data.yaml imgsz=640 [calib=...] [frames=300]
        [parity_frames=16] [rounds=10] [iters=5] [threads=0] [seed=0] [out=bench/results/export_parity.json]

For every model: export the three precisions with ``yolo_gism.export.export`` (parity report, mAP when data
is given), then time every session interleaved (round-robin, a few iterations each per round) so that
background load on a shared machine hits all precisions alike. Writes the JSON and a Markdown summary
beside it; exports go to bench/runs/export_parity/ (not committed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yolo_gism.cli import parse_args  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULTS = dict(models=None, data=None, imgsz=640, calib=None, frames=300, parity_frames=16, rounds=10, iters=5,
                threads=0, seed=0, out=str(ROOT / "bench" / "results" / "export_parity.json"))


def machine() -> dict:
    """The environment as every result records it, plus the CPU flag the INT8 speed depends on."""
    from yolo_gism.cpuinfo import cpu_flags
    from yolo_gism.fps_report import environment

    return {**environment(), "avx512_vnni": "avx512_vnni" in cpu_flags()}


def export_all(models: list[Path], cfg: dict) -> dict:
    """{model: {precision: ExportResult}}, each model's exports in its own folder under bench/runs."""
    import shutil

    from yolo_gism.export import export

    runs = ROOT / "bench" / "runs" / "export_parity"
    out = {}
    for i, pt in enumerate(models):
        folder = runs / f"{i}-{pt.stem}"  # one folder per model: checkpoints are often all called best.pt
        folder.mkdir(parents=True, exist_ok=True)
        out[str(pt)] = {
            prec: export(pt, imgsz=cfg["imgsz"], precision=prec, calib=cfg["calib"], data=cfg["data"],
                         frames=cfg["frames"], parity_frames=cfg["parity_frames"], out_dir=folder)
            for prec in PRECISIONS
        }
        shutil.rmtree(folder / "runs", ignore_errors=True)
    return out


def interleaved_latency(paths: dict[str, Path], blob: np.ndarray, rounds: int, iters: int, threads: int) -> dict:
    """Per-session latency in ms; all sessions take turns each round, after a warm-up."""
    import onnxruntime as ort

    sessions = {}
    for key, path in paths.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sessions[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {key: {s.get_inputs()[0].name: blob} for key, s in sessions.items()}
    for key, s in sessions.items():
        for _ in range(3):
            s.run(None, feed[key])
    times = {key: [] for key in sessions}
    for _ in range(rounds):
        for key, s in sessions.items():
            for _ in range(iters):
                t = time.perf_counter()
                s.run(None, feed[key])
                times[key].append((time.perf_counter() - t) * 1e3)
    return {k: {"median_ms": float(np.median(v)), "p10_ms": float(np.percentile(v, 10)), "min_ms": float(min(v)),
                "n": len(v)} for k, v in times.items()}


def latency_blob(source, det_path: Path) -> np.ndarray:
    """One real frame letterboxed as the runtime does it (random pixels when there is no source)."""
    from yolo_gism.export import load_check_frames
    from yolo_gism.runtime import OnnxDetector

    frames, _ = load_check_frames(source, 1)
    return OnnxDetector(det_path, rect=False).preprocess(frames[:1])[0]


def model_rows(exports: dict, latency: dict) -> dict:
    """Per model and precision: parity, mAP and latency, plus the INT8-vs-FP32 figures."""
    rows = {}
    for model, by_prec in exports.items():
        row = {}
        for prec, res in by_prec.items():
            p, m = res.report["parity"], res.report["map"]
            row[prec] = {"onnx": str(res.path), "max_abs_diff": p["max_abs_diff"],
                         "max_abs_diff_scores": p["max_abs_diff_scores"],
                         "max_abs_diff_boxes_px_above_conf": p.get("max_abs_diff_boxes_px_above_conf"),
                         "detection_agreement": p["detection_agreement"], "torch_detections": p["torch_detections"],
                         "map": m, "latency": latency[f"{model}|{prec}"]}
        fp32, int8 = row["fp32"], row["int8"]
        row["int8_speedup_vs_fp32"] = fp32["latency"]["median_ms"] / int8["latency"]["median_ms"]
        if int8["map"]:  # against the FP32 export (same letterbox), and against PyTorch
            drop = fp32["map"]["onnx"]["map50_95"] - int8["map"]["onnx"]["map50_95"]
            row["int8_map50_95_drop"] = round(100 * drop, 3)
            row["int8_map50_95_drop_vs_torch"] = int8["map"]["map50_95_drop_points"]
        else:
            row["int8_map50_95_drop"] = row["int8_map50_95_drop_vs_torch"] = None
        rows[model] = row
    return rows


def summary(rows: dict) -> dict:
    """Worst case over models for parity, geometric mean for speed."""
    vals = list(rows.values())
    agree = [r["fp32"]["detection_agreement"] for r in vals if r["fp32"]["detection_agreement"] is not None]
    drops = [r["int8_map50_95_drop"] for r in vals if r["int8_map50_95_drop"] is not None]  # vs FP32 ONNX
    return {
        "fp32_max_abs_diff": max(r["fp32"]["max_abs_diff"] for r in vals),
        "fp32_detection_agreement": min(agree) if agree else None,
        "int8_speedup_vs_fp32": float(np.exp(np.mean([np.log(r["int8_speedup_vs_fp32"]) for r in vals]))),
        "int8_map50_95_drop": max(drops) if drops else None,
    }


def _num(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def markdown(result: dict) -> str:
    s, m = result["summary"], result["machine"]
    lines = ["# Export parity and ONNX Runtime CPU latency", "", f"`{result['command']}`", "",
             f"{m['cpu']}, {m['logical_cores']} cores, {result['threads']} threads; seed {result['seed']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), "",
             "| model | precision | max abs diff | score diff | box diff (px, above conf) | agreement "
             "| mAP50-95 (onnx / torch) | median ms | p10 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, row in result["models"].items():
        for prec in PRECISIONS:
            r = row[prec]
            mp = f"{r['map']['onnx']['map50_95']:.4f} / {r['map']['torch']['map50_95']:.4f}" if r["map"] else "-"
            diffs = (r["max_abs_diff"], r["max_abs_diff_scores"], r["max_abs_diff_boxes_px_above_conf"])
            lines.append(f"| {model} | {prec} | {' | '.join(map(_num, diffs))} "
                         f"| {_num(r['detection_agreement'])} | {mp} "
                         f"| {r['latency']['median_ms']:.2f} | {r['latency']['p10_ms']:.2f} |")
    lines += ["", "Summary: " + ", ".join(f"{k} = {v if not isinstance(v, float) else round(v, 5)}"
                                          for k, v in s.items()), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> dict:
    words, kwargs = parse_args(argv)
    unknown = set(kwargs) - set(DEFAULTS)
    if words or unknown or not kwargs.get("models"):
        raise SystemExit(f"usage: export_parity.py models=a.pt,b.pt [key=value ...]; keys: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **kwargs}
    np.random.seed(cfg["seed"])
    threads = int(cfg["threads"]) or os.cpu_count()
    models = [Path(p) for p in str(cfg["models"]).split(",")]
    t0 = time.perf_counter()
    exports = export_all(models, cfg)
    paths = {f"{model}|{prec}": res.path for model, by in exports.items() for prec, res in by.items()}
    blob = latency_blob(cfg["data"] or cfg["calib"], next(iter(paths.values())))
    latency = interleaved_latency(paths, blob, int(cfg["rounds"]), int(cfg["iters"]), threads)
    rows = model_rows(exports, latency)
    result = {"command": "python bench/export_parity.py " + " ".join(argv), "config": cfg, "threads": threads,
              "seed": cfg["seed"],
              "machine": machine(), "models": rows, "summary": summary(rows),
              "seconds": round(time.perf_counter() - t0, 1)}
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("YOLO_OFFLINE", "1")
    main(sys.argv[1:])
