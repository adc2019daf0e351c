"""Frame rate on real and synthetic traffic video: teacher vs student vs distilled student, harness vs Ultralytics.

For every video and model, interleaved in one process so that machine load hits all alike:

- the harness (yolo_gism.fps) with PyTorch and with ONNX Runtime, each sequential and pipelined;
- the reference: Ultralytics' own ``predict(stream=True)`` on the same .pt, and on the same .onnx through
  Ultralytics' ONNX backend, same video, imgsz and thread count;
- a bare ONNX Runtime session timed on pre-decoded, pre-letterboxed frames (no harness code at all).

    python bench/video_fps.py --teacher yolov8l.pt --student yolov8n.pt --distilled gism_v8n.pt \
        --synthetic synthetic.mp4 --imgsz 640 --threads 2 --repeats 3

Writes bench/results/video_fps.json and .md (the exact command, versions, machine, seed, and a ``summary``).
ONNX files are exported next to a work copy of each .pt unless --onnx gives them. Use --frames to keep a check short.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from readme_block import replace_block  # noqa: E402
from yolo_gism.fps import STAGES, measure, model_map  # noqa: E402
from yolo_gism.fps_report import environment  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
REAL_VIDEOS = ("udacity_highway_720p.mp4", "udacity_highway_540p.mp4", "intel_parking_432p.mp4")
ROLES = ("teacher", "student", "distilled")
CREDITS = (
    "Videos: `intel_parking_432p.mp4` is `car-detection.mp4` from intel-iot-devkit/sample-videos, licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/), used unmodified. `udacity_highway_720p.mp4` and "
    "`udacity_highway_540p.mp4` come from udacity/CarND-Vehicle-Detection and udacity/CarND-LaneLines-P1 (MIT).")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for role in ROLES:
        p.add_argument(f"--{role}", help=f"{role} .pt (required unless --report)")
    p.add_argument("--onnx", nargs=3, metavar=("TEACHER", "STUDENT", "DISTILLED"),
                   help="dynamic-shape ONNX files (else exported)")
    p.add_argument("--synthetic",
                   help="synthetic clip (e.g. from `yolo-gism data video`), or 'auto': made once in --work "
                        "(300 frames, 30 fps, 640 px, --seed)")
    p.add_argument("--videos", default=str(VIDEOS), help="folder of the three real videos")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch and ORT intra-op threads")
    p.add_argument("--frames", type=int, default=None, help="frames per video (default: all)")
    p.add_argument("--warmup", type=int, default=5, help="frames excluded from every timing")
    p.add_argument("--bare-frames", type=int, default=100, help="pre-decoded frames for the bare ONNX Runtime timing")
    p.add_argument("--repeats", type=int, default=1, help="rounds; the order of runs rotates every round")
    p.add_argument("--data", default=None, help="data.yaml: mAP50-95 of each .pt beside its frame rate")
    p.add_argument("--map-imgsz", type=int, default=None, help="image size of the mAP validation (default: --imgsz)")
    p.add_argument("--report", action="store_true", help="only rewrite the .md and README from the existing JSON")
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="README whose video_fps block is rewritten")
    p.add_argument("--note", default="", help="conditions worth keeping with the result (e.g. other load)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=str(ROOT / "bench" / "runs" / "video_fps"), help="exports go here")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "video_fps.json"))
    args = p.parse_args(argv)
    missing = [f"--{k}" for k in (*ROLES, "synthetic") if getattr(args, k) is None]
    if missing and not args.report:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def _require_dynamic(onnx: Path) -> None:
    """Given ONNX files must take any input size: every run here letterboxes to the same rectangle."""
    import onnxruntime as ort

    from yolo_gism.runtime import has_dynamic_size

    shape = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    if not has_dynamic_size(shape):
        raise SystemExit(f"--onnx {onnx}: static input {shape}; export with dynamic=True so that it infers on the "
                         "same rectangle as Ultralytics' predict")


def prepare_models(args) -> dict[str, dict[str, Path]]:
    """role -> {"pt", "onnx"}: ONNX given, or exported (dynamic shapes) at imgsz from a copy of the .pt in the work
    folder."""
    from ultralytics import YOLO

    models = {}
    for i, role in enumerate(ROLES):
        pt = Path(getattr(args, role))
        if args.onnx:
            onnx = Path(args.onnx[i])
            _require_dynamic(onnx)
        else:
            folder = Path(args.work) / role
            folder.mkdir(parents=True, exist_ok=True)
            copy = Path(shutil.copy(pt, folder / pt.name))
            # dynamic shapes: every run below letterboxes a wide frame to the same rectangle (e.g. 384x640), as
            # Ultralytics' predict does with a .pt by default, so all of them infer on the same pixels
            onnx = Path(YOLO(str(copy)).export(format="onnx", imgsz=args.imgsz, simplify=True, dynamic=True))
        models[role] = {"pt": pt, "onnx": onnx}
    return models


def harness_run(video: Path, model: Path, mode: str, args) -> dict:
    """One harness measurement, kept as a flat dict (no per-frame records)."""
    r = measure(video, [model], imgsz=args.imgsz, mode=mode, frames=args.frames, warmup=args.warmup,
                threads=args.threads, per_frame=False).results[0]
    return {"fps": r.fps, "frames": r.frames, "latency_p50_ms": r.latency.p50, "latency_p90_ms": r.latency.p90,
            "latency_p99_ms": r.latency.p99, "first_frame_ms": r.first_frame_ms,
            **{f"{k}_ms": getattr(r, k).mean for k in ("decode", "preprocess", "inference", "postprocess")},
            "decode_fps": r.decode_fps, "compute_fps": r.compute_fps, "bottleneck": r.bottleneck,
            "precision": r.precision, "ended_early": r.ended_early, "stalled": r.stalled}


def _pin_ort_threads(yolo, onnx: Path, threads: int) -> None:
    """Give Ultralytics' ONNX Runtime session the same intra-op thread count as ours (CPU sessions only)."""
    import onnxruntime as ort

    backend = yolo.predictor.model.backend
    if getattr(backend, "use_io_binding", False):
        return
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    backend.session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])


def ultralytics_stream(video: Path, model: Path, args) -> dict:
    """Ultralytics' predict(stream=True) end to end: decode, preprocess, inference, NMS, one after the other."""
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    common = dict(imgsz=args.imgsz, device="cpu", verbose=False, save=False)
    cap = cv2.VideoCapture(str(video))
    ok, first = cap.read()
    cap.release()
    yolo.predict(first, **common)  # builds the predictor, so its ORT session can be pinned before timing
    if model.suffix == ".onnx":
        _pin_ort_threads(yolo, model, args.threads)
    stamps, speeds = [], []
    t0 = time.perf_counter()
    for i, result in enumerate(yolo.predict(str(video), stream=True, **common)):
        stamps.append(time.perf_counter())
        speeds.append(result.speed)
        if args.frames and i + 1 >= args.frames:
            break
    w = min(args.warmup, len(stamps) - 1)
    start = stamps[w - 1] if w > 0 else t0
    stage = {k: statistics.fmean(s[k] for s in speeds[w:]) for k in ("preprocess", "inference", "postprocess")}
    return {"fps": (len(stamps) - w) / (stamps[-1] - start), "frames": len(stamps) - w,
            **{f"{k}_ms": v for k, v in stage.items()}}


def predecode(video: Path, frames: int | None, imgsz: int) -> np.ndarray:
    """Frames letterboxed as the harness does (to the next stride multiple of the scaled frame), RGB, as one
    uint8 NCHW array, prepared outside any timing."""
    from yolo_gism.runtime import letterbox

    cap, blobs = cv2.VideoCapture(str(video)), []
    while frames is None or len(blobs) < frames:
        ok, img = cap.read()
        if not ok:
            break
        blobs.append(letterbox(img, (imgsz, imgsz), auto=True)[0][..., ::-1].transpose(2, 0, 1))
    cap.release()
    return np.ascontiguousarray(np.stack(blobs))


def bare_ort(onnx: Path, blobs: np.ndarray, args) -> dict:
    """session.run alone on pre-decoded frames: the floor any ONNX Runtime pipeline can reach on this machine."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name, times = session.get_inputs()[0].name, []
    for i, frame in enumerate(blobs):
        blob = frame[None].astype(np.float32) / 255  # outside the clock: only the session is timed
        t0 = time.perf_counter()
        session.run(None, {name: blob})
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    if not times:
        raise ValueError(f"--frames leaves nothing after --warmup={args.warmup} for the bare ONNX Runtime timing")
    return {"inference_ms": statistics.fmean(times), "inference_p50_ms": float(np.median(times)),
            "fps": 1000 / statistics.fmean(times), "frames": len(times)}


LETTERBOX_NOTES = {  # results from before 2026-12-02 were measured square and carry no "letterbox" setting
    "rect": "- Every run letterboxes a frame as Ultralytics' predict does by default: scaled to imgsz on its long side, "
            "padded to the next multiple of 32 (ONNX exported with dynamic shapes), so all infer on the same pixels.",
    "square": "- Harness runs letterbox to a square imgsz (as a static ONNX export must); Ultralytics' predict on a "
              ".pt uses its default rectangular letterbox, so on wide video it infers on fewer pixels.",
}
KINDS = ("harness-pytorch-sequential", "harness-pytorch-pipelined", "harness-ort-sequential", "harness-ort-pipelined",
         "ultralytics-stream-pt", "ultralytics-stream-onnx", "bare-ort")


def run_kind(kind: str, video: Path, paths: dict, blobs: np.ndarray, args) -> dict:
    if kind.startswith("harness-"):
        _, backend, mode = kind.split("-")
        return harness_run(video, paths["pt" if backend == "pytorch" else "onnx"], mode, args)
    if kind.startswith("ultralytics-stream-"):
        return ultralytics_stream(video, paths[kind.rsplit("-", 1)[1]], args)
    return bare_ort(paths["onnx"], blobs, args)


def run_all(videos: list[Path], models: dict, args) -> list[dict]:
    """Every kind for every video and model, rounds rotating the order so no kind always runs first."""
    runs = []
    bare_frames = min(args.frames or args.bare_frames, args.bare_frames)
    for round_ in range(args.repeats):
        kinds = KINDS[round_ % len(KINDS):] + KINDS[: round_ % len(KINDS)]
        for video in videos:
            blobs = predecode(video, bare_frames, args.imgsz)  # per video, so only one video's frames are held
            for role, paths in models.items():
                for kind in kinds:
                    result = run_kind(kind, video, paths, blobs, args)
                    runs.append({"round": round_, "video": video.name, "model": role, "kind": kind, **result})
                    print(f"{video.name:28s} {role:10s} {kind:28s} {result['fps']:8.1f} fps", flush=True)
    return runs


def aggregate(runs: list[dict]) -> dict[tuple, dict]:
    """(video, model, kind) -> the median over rounds of every numeric field."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["video"], run["model"], run["kind"]), []).append(run)
    out = {}
    for key, group in groups.items():
        fields = [k for k, v in group[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[key] = {**group[0], **{k: statistics.median(g[k] for g in group if g[k] is not None) for k in fields
                                   if any(g[k] is not None for g in group)}}
    return out


def _ratios(pairs: dict[str, tuple[float | None, float | None]], what: str) -> dict:
    per_case = {k: a / b for k, (a, b) in pairs.items() if a and b}
    geomean = float(np.exp(np.mean(np.log(list(per_case.values()))))) if per_case else None
    return {"what": what, "geomean": geomean, "per_case": per_case}


GOALS = {  # issue 4's goals on this CPU: (summary key, lower bound, upper bound)
    "ort_pipelined_vs_ultralytics_stream": (1.5, None),
    "pipelined_vs_two_stage_limit": (0.90, None),
    "student_vs_teacher_fps": (4.0, None),
    "harness_vs_bare_inference": (0.95, 1.05),
}
TABLE_KINDS = ("harness-ort-pipelined", "harness-pytorch-pipelined", "ultralytics-stream-pt")


def goal_values(summary: dict) -> dict:
    """The one number each goal is judged on (geometric means; the stream ratio is the one against the .pt)."""
    return {"ort_pipelined_vs_ultralytics_stream": summary["ort_pipelined_vs_ultralytics_stream"]["vs_pt"]["geomean"],
            "pipelined_vs_two_stage_limit": summary["pipelined_vs_two_stage_limit"]["geomean"],
            "student_vs_teacher_fps": summary["student_vs_teacher_fps"]["student"]["geomean"],
            "harness_vs_bare_inference": summary["harness_vs_bare_inference"]["geomean"]}


def goals(summary: dict) -> dict:
    out = {}
    for key, value in goal_values(summary).items():
        low, high = GOALS[key]
        met = None if value is None else value >= low and (high is None or value <= high)
        out[key] = {"value": value, "target": f">= {low}" if high is None else f"{low} to {high}", "met": met}
    return out


def per_model(agg: dict, videos: list[str], maps: dict) -> dict:
    """role -> FPS (geometric mean over the videos) for the table's kinds, speed-up vs the teacher, and mAP."""
    def geomean(role, kind):
        values = [agg[(v, role, kind)]["fps"] for v in videos if (v, role, kind) in agg]
        return float(np.exp(np.mean(np.log(values)))) if values else None

    fps = {role: {kind: geomean(role, kind) for kind in TABLE_KINDS} for role in ROLES}
    return {role: {"fps": fps[role], "speedup_vs_teacher": {k: (f / fps["teacher"][k] if f and fps["teacher"][k]
                                                                else None) for k, f in fps[role].items()},
                   **maps.get(role, {})} for role in ROLES}


def summarise(agg: dict, videos: list[str]) -> dict:
    cases = [(v, m) for v in videos for m in ROLES]
    g = lambda v, m, k, f="fps": agg.get((v, m, k), {}).get(f)  # noqa: E731
    two_stage = {}
    for v, m in cases:
        for backend in ("pytorch", "ort"):
            run = agg.get((v, m, f"harness-{backend}-pipelined"), {})
            limits = [x for x in (run.get("decode_fps"), run.get("compute_fps")) if x]
            two_stage[f"{v}/{m}/{backend}"] = (run.get("fps"), min(limits) if limits else None)
    return {
        "ort_pipelined_vs_ultralytics_stream": {
            "same_onnx": _ratios({f"{v}/{m}": (g(v, m, "harness-ort-pipelined"), g(v, m, "ultralytics-stream-onnx"))
                                  for v, m in cases}, "harness ORT pipelined FPS / Ultralytics stream FPS, same .onnx"),
            "vs_pt": _ratios({f"{v}/{m}": (g(v, m, "harness-ort-pipelined"), g(v, m, "ultralytics-stream-pt"))
                              for v, m in cases}, "harness ORT pipelined FPS / Ultralytics stream FPS on the .pt"),
        },
        "pipelined_vs_two_stage_limit": _ratios(
            two_stage, "pipelined end-to-end FPS / min(decode FPS, preprocess+inference+postprocess FPS), same run"),
        "student_vs_teacher_fps": {
            role: _ratios({f"{v}/{k}": (g(v, role, k), g(v, "teacher", k)) for v in videos for k in KINDS[:4]},
                          f"{role} FPS / teacher FPS, same video and harness setting")
            for role in ("student", "distilled")},
        "harness_vs_bare_inference": _ratios(
            {f"{v}/{m}": (g(v, m, "harness-ort-sequential", "inference_ms"), g(v, m, "bare-ort", "inference_ms"))
             for v, m in cases}, "harness ORT inference ms (sequential) / bare session.run ms on pre-decoded frames"),
        # what bounds the stream ratio: pipelining can only hide the work around inference, not the engines' speed
        "ort_vs_pytorch_inference": {
            role: _ratios({v: (g(v, role, "ultralytics-stream-pt", "inference_ms"),
                               g(v, role, "harness-ort-pipelined", "inference_ms")) for v in videos},
                          "Ultralytics stream .pt inference ms / harness ORT pipelined inference ms: the engines alone")
            for role in ROLES},
        "ort_inference_share": {
            role: _ratios({v: (g(v, role, "harness-ort-pipelined", "inference_ms"),
                               sum(g(v, role, "harness-ort-pipelined", f"{stage}_ms") or 0.0 for stage in STAGES))
                           for v in videos},
                          "harness ORT pipelined inference ms / (decode + preprocess + inference + postprocess) ms")
            for role in ROLES},
    }


def _cell(value, digits=1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(payload: dict) -> str:
    env, s = payload["environment"], payload["summary"]
    lines = ["# Video frame rate: teacher vs student vs distilled", "", f"Measured {payload['created']}; seed "
             f"{payload['seed']}; {payload['settings']['repeats']} round(s), medians shown.", "", "```",
             payload["command"], "```", "",
             "| video | model | run | FPS | p50 ms | p99 ms | decode | pre | infer | post |", "|" + "---|" * 10]
    for r in payload["aggregated"]:
        lines.append("| " + " | ".join([r["video"], r["model"], r["kind"], _cell(r["fps"]),
                                        *(_cell(r.get(k)) for k in ("latency_p50_ms", "latency_p99_ms")),
                                        *(_cell(r.get(f"{k}_ms"), 2) for k in ("decode", "preprocess", "inference",
                                                                                "postprocess"))]) + " |")
    lines += ["", "## Per model (geometric mean FPS over the videos)", "", *model_table(s["models"]),
              "", "## Goals", "", *goal_lines(s["goals"])]
    lines += ["", "## Summary (geometric means over videos and models)", ""]
    flat = {"ort_pipelined_vs_ultralytics_stream (same .onnx)": s["ort_pipelined_vs_ultralytics_stream"]["same_onnx"],
            "ort_pipelined_vs_ultralytics_stream (vs .pt)": s["ort_pipelined_vs_ultralytics_stream"]["vs_pt"],
            "pipelined_vs_two_stage_limit": s["pipelined_vs_two_stage_limit"],
            **{f"student_vs_teacher_fps ({k})": v for k, v in s["student_vs_teacher_fps"].items()},
            "harness_vs_bare_inference": s["harness_vs_bare_inference"],
            **{f"ort_vs_pytorch_inference ({k})": v for k, v in s.get("ort_vs_pytorch_inference", {}).items()},
            **{f"ort_inference_share ({k})": v for k, v in s.get("ort_inference_share", {}).items()}}
    lines += [f"- **{k}**: {_cell(v['geomean'], 3)} — {v['what']}" for k, v in flat.items()]
    lines += ["", "## Notes", "",
              LETTERBOX_NOTES[payload["settings"].get("letterbox", "square")],
              "- Threads: torch and every ONNX Runtime session (Ultralytics' included) use "
              f"{payload['settings']['threads']} intra-op threads.",
              "- Stage columns are mean ms per frame; Ultralytics' come from its own `Results.speed`.", "",
              "## Machine", "",
              f"- CPU: {env['cpu']} ({env['usable_cores']} usable cores); GPU: {env['gpu'] or 'none'}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), "", "## Credits", "", CREDITS]
    return "\n".join(lines) + "\n"


def synthetic_clip(args) -> Path:
    """The synthetic clip given, or with 'auto' the project's own traffic clip, generated once per seed."""
    if args.synthetic != "auto":
        return Path(args.synthetic)
    from yolo_gism.data import make_clip

    clip = Path(args.work) / f"synthetic_seed{args.seed}.mp4"
    return clip if clip.exists() else make_clip(clip, frames=300, fps=30, imgsz=640, seed=args.seed)


def model_maps(models: dict, args) -> dict:
    """role -> mAP50-95 and mAP50 of its .pt through Ultralytics' validator (empty without --data)."""
    if not args.data:
        return {}
    imgsz = args.map_imgsz or args.imgsz
    out = {}
    for role, paths in models.items():
        m, m50 = model_map(paths["pt"], args.data, imgsz)
        out[role] = {"map50_95": m, "map50": m50, "map_imgsz": imgsz}
    return out


def write_outputs(payload: dict, out: Path, readme: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(payload))
    replace_block(readme, "video_fps", readme_section(payload))
    print(f"wrote {out}, {out.with_suffix('.md')} and the video_fps block of {readme}")


def _times(ratio) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def model_table(models: dict) -> list[str]:
    lines = ["| model | mAP50-95 | FPS, ONNX Runtime pipelined | FPS, PyTorch pipelined | FPS, Ultralytics stream (.pt) "
             "| speed-up vs teacher (ORT pipelined) |", "|" + "---|" * 6]
    for role, m in models.items():
        lines.append("| " + " | ".join([role, _cell(m.get("map50_95"), 4), *(_cell(m["fps"][k]) for k in TABLE_KINDS),
                                        _times(m["speedup_vs_teacher"]["harness-ort-pipelined"])]) + " |")
    return lines


def goal_lines(goals_: dict) -> list[str]:
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    return [f"- {k}: {_cell(g['value'], 3)} (goal {g['target']}): {verdict[g['met']]}" for k, g in goals_.items()]


def readme_section(payload: dict) -> str:
    s, st, env = payload["summary"], payload["settings"], payload["environment"]
    map_note = (f" mAP50-95 on `{st['data']}` at {s['models']['teacher'].get('map_imgsz')} px through Ultralytics' "
                f"validator." if st.get("data") else "")
    return "\n".join([
        f"Written by `bench/video_fps.py` into [`bench/results/video_fps.json`](bench/results/video_fps.json) "
        f"({payload['created']}; {env['cpu']}, {st['threads']} thread(s), imgsz {st['imgsz']}, "
        f"{st['frames'] or 'all'} frames per video, {st['repeats']} round(s)). Reproduce with:", "",
        "```bash", payload["command"], "```", "",
        f"Frame rates are geometric means over the three real videos and a synthetic clip.{map_note}"
        + (f" Conditions: {st['note']}" if st.get("note") else ""), "",
        *model_table(s["models"]), "", "Goals on this CPU:", "", *goal_lines(s["goals"]), *engine_lines(s), "",
        CREDITS])


def engine_lines(summary: dict) -> list[str]:
    """How far the engines alone go: the stream ratio can exceed the inference ratio only by what pipelining
    hides (decode, pre- and postprocessing), a small share of each frame when inference dominates."""
    engines, share = summary.get("ort_vs_pytorch_inference"), summary.get("ort_inference_share")
    if not engines or not share:
        return []
    ratios = ", ".join(f"{role} {_times(r['geomean'])}" for role, r in engines.items())
    shares = ", ".join(f"{role} {100 * r['geomean']:.0f} %" for role, r in share.items() if r["geomean"])
    return ["", f"Inference alone, ONNX Runtime against PyTorch (Ultralytics' .pt inference time / the harness's "
                f"ONNX Runtime inference time, geometric means): {ratios}. Inference is {shares} of the harness's "
                f"per-frame work (decode, preprocess, inference, postprocess), so the end-to-end ratio against "
                f"Ultralytics' stream can exceed the inference ratio only by the remainder that pipelining hides."]


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    if args.report:  # the summary is recomputed from the stored medians, so a new summary key needs no rerun
        payload = json.loads(out.read_text())
        agg = {(a["video"], a["model"], a["kind"]): a for a in payload["aggregated"]}
        videos = list(dict.fromkeys(a["video"] for a in payload["aggregated"]))
        payload["summary"] = {**summarise(agg, videos), "models": payload["summary"]["models"]}
        payload["summary"]["goals"] = goals(payload["summary"])
        write_outputs(payload, out, Path(args.readme))
        return payload
    np.random.seed(args.seed)
    command = "python bench/video_fps.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    videos = [Path(args.videos) / name for name in REAL_VIDEOS] + [synthetic_clip(args)]
    missing = [str(v) for v in videos if not v.exists()]
    if missing:
        raise SystemExit(f"video(s) not found: {', '.join(missing)}")
    import torch

    torch.set_num_threads(args.threads)
    models = prepare_models(args)
    maps = model_maps(models, args)
    runs = run_all(videos, models, args)
    agg = aggregate(runs)
    summary = summarise(agg, [v.name for v in videos])
    summary["goals"] = goals(summary)
    summary["models"] = per_model(agg, [v.name for v in videos], maps)
    payload = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command, "seed": args.seed,
        "settings": {**{k: v for k, v in vars(args).items() if k not in ROLES}, "letterbox": "rect"},
        "models": {role: {k: str(p) for k, p in paths.items()} for role, paths in models.items()},
        "environment": environment(), "summary": summary, "aggregated": list(agg.values()), "runs": runs,
    }
    write_outputs(payload, out, Path(args.readme))
    return payload


if __name__ == "__main__":
    main()
