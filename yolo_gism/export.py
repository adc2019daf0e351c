"""ONNX export (FP32, FP16, INT8) on top of Ultralytics' exporter, with a parity report beside every file.

Ultralytics does the graph export (FP32, and FP16 through its CPU float16 conversion that keeps float32
inputs and outputs); INT8 is our own static quantization (``yolo_gism.quantize``) of the FP32 graph,
because Ultralytics' ``quantize=8`` ONNX export measured slower than FP32 on this CPU. Everything is built
in a temporary folder beside the destination and moved into place only once it and its report exist, so
a failed export never replaces a good one.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_gism.compat import check_ultralytics_version
from yolo_gism.quantize import DEFAULT_VIDEOS, MIN_CALIB_FRAMES, load_frames, quantize_int8
from yolo_gism.runtime import Detections, OnnxDetector

PRECISIONS = {"fp32": "", "fp16": "-fp16", "int8": "-int8"}  # precision -> file-name suffix
PRECISION_ALIASES = {32: "fp32", 16: "fp16", 8: "int8", "32": "fp32", "16": "fp16", "8": "int8", "float32": "fp32",
                     "float16": "fp16", "half": "fp16"}
MATCH_IOU = 0.9  # a detection "agrees" when the other model has one of the same class at this IoU or more


@dataclass
class ExportResult:
    """Where the export and its report went, and what the report says."""

    path: Path  # the .onnx
    report_path: Path  # the parity report JSON beside it
    precision: str
    report: dict


def export(model, imgsz=640, precision="fp32", dynamic=False, opset=None, nms=False, calib=None, data=None,
           batch=1, frames=MIN_CALIB_FRAMES, out_dir=None, conf=0.25, parity_frames=16) -> ExportResult:
    """Export an Ultralytics detector checkpoint to ONNX and write ``<name>.parity.json`` beside it.

    precision: fp32 | fp16 | int8; the file is ``<stem>.onnx``, ``<stem>-fp16.onnx`` or ``<stem>-int8.onnx``
    (``-nms`` appended for graphs with NMS embedded). calib: data.yaml, image folder or video for INT8
    calibration (default: the project's real videos), ``frames`` of them. data: a data.yaml to compare mAP
    of the export with PyTorch. conf: the threshold baked into ``nms=True`` graphs and used for agreement.
    Parity is measured on ``parity_frames`` real frames: data's val split, else calib, else the videos.
    """
    check_ultralytics_version()
    precision = _check_precision(precision)
    pt = _check_file(model)
    out_dir = Path(out_dir) if out_dir else pt.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{pt.stem}{PRECISIONS[precision]}{'-nms' if nms else ''}.onnx"
    settings = dict(imgsz=imgsz, dynamic=bool(dynamic), opset=opset, nms=bool(nms), batch=int(batch), conf=conf)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{final.stem}-") as tmp:
        work = Path(tmp) / pt.name
        shutil.copy2(pt, work)  # Ultralytics writes its export beside the checkpoint: keep that in tmp
        built, quant = _build(work, pt, precision, settings, calib, frames)
        check = calib if data is None else data
        report = parity_report(pt, built, frames_source=check, data=data, n_frames=parity_frames, **settings)
        report.update(precision=precision, source_model=str(pt), onnx=str(final), quantization=quant,
                      seconds=round(time.perf_counter() - t0, 2))
        report_tmp = built.with_suffix(".parity.json")
        report_tmp.write_text(json.dumps(report, indent=2, default=str))
        os.replace(built, final)
        os.replace(report_tmp, final.with_suffix(".parity.json"))
    return ExportResult(final, final.with_suffix(".parity.json"), precision, report)


def _check_precision(precision) -> str:
    value = PRECISION_ALIASES.get(precision, str(precision).lower())
    if value not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    return value


def _check_file(model) -> Path:
    """The checkpoint must exist; whether it loads and is a detector is checked when it is loaded."""
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    return path


def _load_yolo(work: Path, original: Path):
    """YOLO(checkpoint) with errors that name the user's file, and a detector check."""
    from ultralytics import YOLO

    try:
        yolo = YOLO(str(work))
    except Exception as e:
        raise ValueError(f"{original} is not a loadable Ultralytics checkpoint (corrupt or truncated?): {e}") from e
    if yolo.task != "detect":
        raise ValueError(f"{original} is a {yolo.task} model, not a detector; only detectors are exported here")
    return yolo


def _build(work: Path, original: Path, precision: str, s: dict, calib, frames: int):
    """Run Ultralytics' exporter (and INT8 quantization) inside the temporary folder; return the file."""
    yolo = _load_yolo(work, original)
    kwargs = dict(format="onnx", imgsz=s["imgsz"], dynamic=s["dynamic"], opset=s["opset"], batch=s["batch"],
                  simplify=True, device="cpu", nms=True if s["nms"] else False, verbose=False)
    if s["nms"]:
        kwargs["conf"] = s["conf"]
    if precision == "fp16":
        kwargs["quantize"] = 16  # Ultralytics converts on CPU with float16 inside, float32 inputs and outputs
    try:
        built = Path(yolo.export(**kwargs))
    except Exception as e:
        raise ValueError(f"Ultralytics could not export {original} to ONNX: {e}") from e
    if precision != "int8":
        return built, None
    int8 = built.with_name(f"{built.stem}-int8.onnx")
    return int8, quantize_int8(built, int8, source=calib, frames=frames)


# ----------------------------------------------------------------------------------------------- parity
def parity_report(pt, onnx_path, frames_source=None, data=None, n_frames=16, imgsz=640, conf=0.25, nms=False,
                  **settings) -> dict:
    """Compare an ONNX export with its PyTorch checkpoint: raw outputs, detections, and mAP when data is given."""
    from ultralytics import YOLO

    frames, origin = load_check_frames(frames_source, n_frames)
    yolo = YOLO(str(pt))
    det = OnnxDetector(onnx_path, conf=conf)
    if det.end2end and not nms and getattr(yolo.model, "end2end", None) is False:
        yolo.model.end2end = True  # compare a YOLO26-style graph with the same one-to-one head in PyTorch
    parity = {"frames": len(frames), "frame_source": origin, "conf": conf, "match_iou": MATCH_IOU}
    parity.update(raw_difference(yolo.model, onnx_path, frames, nms, conf))
    parity.update(match_detections(torch_detections(yolo, frames, det, imgsz), [det(f)[0] for f in frames]))
    if nms:
        parity["note"] = f"NMS is inside the graph (conf={conf}, iou=0.7 baked in); PyTorch compared at that conf"
    return {
        "export": {"imgsz": imgsz, "nms": nms, "conf": conf, **settings, "end2end": det.end2end, "input": det.imgsz},
        "parity": parity,
        "map": compare_map(yolo, onnx_path, data, imgsz, conf if nms else None) if data else None,
        "versions": versions(),
    }


def load_check_frames(source, n: int) -> tuple[list[np.ndarray], str]:
    """Real frames to compare on: the val split of data, the calibration source, or the project's videos."""
    if source is None and DEFAULT_VIDEOS.is_dir():
        source = DEFAULT_VIDEOS
    if source is None:
        warnings.warn("no data, calib or default videos to check parity on: using random frames")
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n)], "random"
    return load_frames(source, n, splits=("val",)), str(source)


def torch_raw(model, blob: np.ndarray) -> np.ndarray:
    """The PyTorch model's raw output on a blob, Conv+BN fused as the exporter fuses it."""
    import copy

    import torch

    m = copy.deepcopy(model).float().eval()
    m = m.fuse(verbose=False) if hasattr(m, "fuse") else m
    with torch.inference_mode():
        out = m(torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)))
    return (out[0] if isinstance(out, (list, tuple)) else out).numpy()


def raw_difference(model, onnx_path, frames: list[np.ndarray], nms: bool, conf: float = 0.25) -> dict:
    """Max |ONNX - PyTorch| of raw outputs on the same letterboxed frames, boxes (px) and scores apart.

    Boxes of anchors nobody would report (flat DFL bins) move most under INT8, so the box difference is
    also given for the anchors PyTorch scores above conf.
    """
    if nms:
        return {"max_abs_diff": None, "raw_note": "graph ends in NMS: its output rows are detections, not raw"}
    det = OnnxDetector(onnx_path, rect=False)
    blob, _ = det.preprocess(frames)
    ours, ref = det.infer(blob).astype(np.float32), torch_raw(model, blob)
    if ours.shape != ref.shape:
        raise ValueError(f"{onnx_path}: output {ours.shape} differs from PyTorch's {ref.shape}")
    note = {}
    if det.end2end:  # top-k rows: compare in score order; equal scores (untrained heads) may still swap rows
        ours, ref = _by_score(ours), _by_score(ref)
        note = {"raw_note": "end-to-end rows compared in descending score order"}
    d = np.abs(ours - ref)
    boxes, scores = (d[..., :4], d[..., 4]) if det.end2end else (d[:, :4], d[:, 4:])
    kept = ref[..., 4] > conf if det.end2end else ref[:, 4:].max(1) > conf  # anchors PyTorch would report
    kept_boxes = boxes[kept] if det.end2end else boxes.transpose(0, 2, 1)[kept]
    return {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "max_abs_diff_boxes_px": float(boxes.max()), "max_abs_diff_scores": float(scores.max()),
            "max_abs_diff_boxes_px_above_conf": float(kept_boxes.max()) if kept_boxes.size else None, **note}


def _by_score(rows: np.ndarray) -> np.ndarray:
    """[B, N, 6] rows sorted by score, highest first, per image."""
    order = np.argsort(-rows[..., 4], axis=1, kind="stable")
    return np.take_along_axis(rows, order[..., None], axis=1)


def torch_detections(yolo, frames, det: OnnxDetector, imgsz) -> list[Detections]:
    """Ultralytics' PyTorch predictions with the detector's thresholds and the same letterbox mode."""
    out = []
    for frame in frames:
        r = yolo.predict(frame, imgsz=imgsz, conf=det.conf, iou=det.iou, max_det=det.max_det, rect=det.dynamic,
                         device="cpu", verbose=False)[0].boxes
        out.append(Detections(r.xyxy.numpy().astype(np.float32), r.conf.numpy().astype(np.float32),
                              r.cls.numpy().astype(np.int64)))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, (N, M)."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clip(0).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def match_detections(ref: list[Detections], got: list[Detections], iou: float = MATCH_IOU) -> dict:
    """Share of reference detections that the other model reproduces (same class, IoU >= iou), one-to-one."""
    matched = 0
    for r, g in zip(ref, got):
        if not (len(r) and len(g)):
            continue
        ious = box_iou(r.boxes, g.boxes) * (r.classes[:, None] == g.classes[None])
        free = np.ones(len(g), bool)
        for i in np.argsort(-r.scores, kind="stable"):
            cand = np.where(free & (ious[i] >= iou), ious[i], -1.0)
            if cand.max() >= iou:
                free[cand.argmax()] = False
                matched += 1
    n_ref, n_got = sum(len(r) for r in ref), sum(len(g) for g in got)
    return {"detection_agreement": matched / n_ref if n_ref else None, "torch_detections": n_ref,
            "onnx_detections": n_got, "matched": matched}


def compare_map(yolo, onnx_path, data, imgsz, conf=None) -> dict:
    """mAP of the export and of PyTorch on data's val split, through Ultralytics' own validator."""
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as runs:
        kw = dict(data=str(data), imgsz=imgsz, device="cpu", plots=False, verbose=False, project=runs, name="val")
        kw.update({"conf": conf} if conf is not None else {})
        ours, ref = YOLO(str(onnx_path), task="detect").val(**kw).box, yolo.val(**kw).box
    return {"data": str(data), "conf": conf, "onnx": {"map50_95": float(ours.map), "map50": float(ours.map50)},
            "torch": {"map50_95": float(ref.map), "map50": float(ref.map50)},
            "map50_95_drop_points": round(100 * float(ref.map - ours.map), 3),
            "note": "PyTorch validates with rectangular batches, a static-shape ONNX with square inputs"}


def versions() -> dict:
    import onnx
    import onnxruntime
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


# --------------------------------------------------------------------------------------------------- CLI
def export_cli(words: list[str], kwargs: dict) -> ExportResult:
    """``yolo-gism export model=best.pt imgsz=640 precision=int8 dynamic=0 opset=17 nms=0 calib=...``."""
    valid = list(inspect.signature(export).parameters)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown export argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if words:
        raise ValueError(f"unexpected word(s) {' '.join(words)}; use key=value, e.g. model=best.pt")
    if "model" not in kwargs:
        raise ValueError(f"model=<checkpoint.pt> is required; valid arguments: {', '.join(valid)}")
    result = export(**kwargs)
    p = result.report["parity"]
    print(f"exported {result.path} ({result.precision}); report {result.report_path}\n"
          f"  max |onnx - torch| {p['max_abs_diff']}, detection agreement {p['detection_agreement']} "
          f"({p['matched']}/{p['torch_detections']})")
    if result.report["map"]:
        m = result.report["map"]
        print(f"  mAP50-95 onnx {m['onnx']['map50_95']:.4f} vs torch {m['torch']['map50_95']:.4f}")
    return result
