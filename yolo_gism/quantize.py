"""INT8 static quantization of Ultralytics ONNX detectors with ONNX Runtime, and the frames it calibrates on.

``INT8_SETTINGS`` were chosen by measurement on this project's CPU (AMD EPYC Zen 4 with AVX-512 VNNI,
2 shared cores, ONNX Runtime 1.32), YOLOv8n. Latency: 640 px, batch 1, sessions interleaved, CPU
provider; FP32 = 1.00x. Accuracy: the same model at 128 px on a 16-image synthetic val set, mAP50-95
through Ultralytics' validator (FP32 ONNX 0.160), agreement = FP32 detections kept (same class, IoU>=0.9).

    setting                                  speed (1 thr / 2 thr)   mAP50-95   agreement
    QDQ, U8S8, per-channel, MinMax (chosen)   2.27x / 2.14x           0.151      16/16
    QDQ, U8S8, per-tensor                     2.28x / 1.96x           0.144      15/16
    QOperator, U8S8, per-channel              2.28x / 2.08x           0.151      16/16
    QDQ, S8S8, per-channel                    0.67x / 0.66x           0.151      16/16
    Ultralytics quantize=8 (S8S8, convs only) - / 0.74x                -          -
    QDQ, U8S8, per-channel, Percentile        not finished in 13 min  0.160      16/16
    QDQ, U8S8, per-channel, MinMax moving avg -                       0.089       0/16
    chosen, but head tail quantized too       -                       0.000       0/16

- **uint8 activations x int8 weights**: VNNI's dot product (vpdpbusd) is unsigned x signed, so U8S8 runs
  on it natively; S8S8 falls back to a slower path and is slower than FP32 here (as is Ultralytics' own
  ``quantize=8``, which is S8S8). No ``reduce_range``: VNNI does not saturate.
- **QDQ**: as fast as QOperator here, and the format that ORT's CPU, CUDA and TensorRT providers all fuse.
- **per-channel**: per-tensor loses accuracy on the thin YOLO convs and gains no speed.
- **MinMax**: Percentile was 1 point better on the tiny model but its histograms of every activation did
  not finish at 640 px in 13 minutes on this CPU; pass ``settings={"calibrate_method": "Percentile"}``
  for small inputs. A moving-average MinMax lost half the mAP.
- ORT's suggested ``quant_pre_process`` made no difference (38.9 vs 38.8 ms), so it is not run.
- **the head's tail stays float**: every node after the Detect head's last convolutions (DFL softmax and
  its fixed conv, anchor decode, concat, sigmoid, NMS) is excluded; with one int8 scale shared by box
  pixels and [0, 1] scores every score rounds away (last row of the table).

Timings are from a machine shared with other jobs: read the ratios, not the milliseconds.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from yolo_gism.runtime import OnnxDetector, letterbox, to_blob

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
MIN_CALIB_FRAMES = 300
DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"

INT8_SETTINGS = {  # the module docstring has the measurements behind each choice
    "quant_format": "QDQ",
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": True,
    "calibrate_method": "MinMax",
}


# ----------------------------------------------------------------------------------------- frame sources
def _dataset_images(data_yaml: Path, splits: tuple[str, ...]) -> list[Path]:
    """Image files of a YOLO data.yaml's splits, resolved the way Ultralytics resolves them."""
    from ultralytics.data.utils import check_det_dataset

    try:
        info = check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as e:
        raise ValueError(f"cannot read dataset {data_yaml}: {e}") from e
    files = []
    for split in splits:
        entries = info.get(split) or []
        for entry in [entries] if isinstance(entries, (str, Path)) else entries:
            p = Path(entry)
            if p.is_dir():
                files += _folder_images(p)
            elif p.suffix == ".txt" and p.is_file():
                base = p.parent
                files += [Path(s) if Path(s).is_absolute() else base / s for s in p.read_text().split()]
    return files


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)


def _video_frames(video: Path) -> list[tuple[Path, int]]:
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return [(video, i) for i in range(max(n, 0))]


def list_frames(source, splits: tuple[str, ...] = ("train", "val")) -> list:
    """Every frame a source offers: image paths, or (video, index) pairs. Raises if there are none."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"frame source not found: {path}")
    if path.suffix.lower() in {".yaml", ".yml"}:
        items = _dataset_images(path, splits)
    elif path.is_dir():
        items = _folder_images(path)
        for video in sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTS):
            items += _video_frames(video)
    elif path.suffix.lower() in VIDEO_EXTS:
        items = _video_frames(path)
    elif path.suffix.lower() in IMAGE_EXTS:
        items = [path]
    else:
        raise ValueError(f"{path}: not a data.yaml, image folder, image or video file")
    if not items:
        raise ValueError(f"frame source {path} holds no images or video frames")
    return items


def sample_frames(items: list, n: int) -> list:
    """n items spread evenly over the source (all of them when it has fewer), so scenes vary."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def iter_frames(items: list):
    """Yield BGR frames for image paths and (video, index) pairs, decoding each video once, in order."""
    cap, cap_path, pos, frame = None, None, -1, None
    for item in items:
        if isinstance(item, tuple):
            video, index = item
            if video != cap_path:
                if cap is not None:
                    cap.release()
                cap, cap_path, pos, frame = cv2.VideoCapture(str(video)), video, -1, None
            while pos < index and cap.isOpened():
                ok, frame = cap.read()
                pos = pos + 1 if ok else index  # a short video (frame count over-reported) stops here
                frame = frame if ok else None
            if frame is not None:
                yield frame
        else:
            image = cv2.imread(str(item))
            if image is None:
                raise ValueError(f"cannot read image {item}")
            yield image
    if cap is not None:
        cap.release()


def load_frames(source, n: int, splits: tuple[str, ...] = ("train", "val")) -> list[np.ndarray]:
    """Up to n frames from a data.yaml, folder, image or video, sampled evenly."""
    return list(iter_frames(sample_frames(list_frames(source, splits), n)))


# ----------------------------------------------------------------------------------------- quantization
def _is_dfl_conv(node, weights: dict) -> bool:
    """The DFL's fixed 1x1 conv (weights 0..reg_max-1) is arithmetic on box bins, not a learned layer."""
    w = weights.get(node.input[1]) if len(node.input) > 1 else None
    return w is not None and w.ndim == 4 and w.shape[0] == 1 and np.array_equal(w.ravel(), np.arange(w.shape[1]))


def head_tail_nodes(model) -> list[str]:
    """Names of the nodes after the Detect head's last convolutions: walk back from the outputs to the convs.

    Shape nodes are kept (they read only shapes) but not walked through, so dynamic-anchor graphs do not
    drag neck nodes into the float set.
    """
    from onnx import numpy_helper

    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer if len(t.dims) == 4}
    producer = {out: node for node in graph.node for out in node.output}
    tail, stack = {}, [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in tail:
            continue
        if node.op_type == "Conv" and not _is_dfl_conv(node, weights):
            continue  # a last conv of the box or class branch: the boundary, quantized
        tail[node.name] = node
        if node.op_type != "Shape":
            stack.extend(node.input)
    return list(tail)


def _name_nodes(model) -> None:
    """Give unnamed nodes a unique name, since exclusion goes by name."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


class _FrameReader(CalibrationDataReader):
    """Calibration batches from letterboxed uint8 frames; set_range lets ORT calibrate chunk by chunk.

    Chunking (ORT's CalibStridedMinMax) bounds memory: histogram calibrators otherwise keep every
    activation of every frame until the end.
    """

    def __init__(self, detector, frames):
        self.detector, self.step = detector, detector.batch or 1
        self.images = [letterbox(f, detector.imgsz, stride=detector.stride)[0] for f in frames]
        self.images += [self.images[-1]] * (-len(self.images) % self.step)  # a static batch needs full batches
        self.set_range(0, len(self))

    def __len__(self) -> int:  # in batches
        return len(self.images) // self.step

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, end_index

    def get_next(self):
        if self._next >= self._end:
            return None
        chunk = self.images[self._next * self.step : (self._next + 1) * self.step]
        self._next += 1
        return {self.detector.input_name: to_blob(chunk, np.float16 if self.detector.fp16 else np.float32)}

    def stride(self, most: int = 8) -> int:
        """Largest chunk size up to `most` batches that divides the data, as ORT requires."""
        return max(d for d in range(1, most + 1) if len(self) % d == 0)


def quantize_int8(fp32_onnx, out_onnx, source=None, frames: int = MIN_CALIB_FRAMES, settings: dict | None = None,
                  exclude_head: bool = True) -> dict:
    """Quantize an FP32 Ultralytics ONNX detector to INT8 from calibration frames; return what was done.

    source: data.yaml, image folder, image or video (default: the project's real videos); frames: how many,
    spread evenly over the source. settings override INT8_SETTINGS.
    """
    import onnx

    cfg = {**INT8_SETTINGS, **(settings or {})}
    source = _default_source() if source is None else source
    items = sample_frames(list_frames(source), frames)
    if len(items) < MIN_CALIB_FRAMES:
        warnings.warn(f"INT8 calibration on {len(items)} frames from {source} (fewer than {MIN_CALIB_FRAMES}): "
                      "activation ranges may not cover real scenes")
    reader = _FrameReader(OnnxDetector(fp32_onnx, rect=False), iter_frames(items))
    model = onnx.load(str(fp32_onnx))
    _name_nodes(model)
    excluded = head_tail_nodes(model) if exclude_head else []
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        _quantize_static(named, out_onnx, reader, cfg, excluded)
    _copy_metadata(model, out_onnx)
    return {**cfg, "calibration_source": str(source), "calibration_frames": len(items), "float_nodes": excluded}


def _quantize_static(src: Path, out, reader, cfg: dict, excluded: list[str]) -> None:
    """ORT's quantize_static with our settings, calibrating chunk by chunk, its pre-processing hint muted."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    hint = _DropHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_static(
            str(src), str(out), reader,
            quant_format=getattr(QuantFormat, cfg["quant_format"]),
            activation_type=getattr(QuantType, cfg["activation_type"]),
            weight_type=getattr(QuantType, cfg["weight_type"]),
            per_channel=cfg["per_channel"], nodes_to_exclude=excluded,
            calibrate_method=getattr(CalibrationMethod, cfg["calibrate_method"]),
            extra_options={"CalibStridedMinMax": reader.stride(), "CalibPercentile": cfg.get("percentile", 99.999)},
        )
    finally:
        logging.getLogger().removeFilter(hint)


class _DropHint(logging.Filter):
    """ORT logs a pre-processing hint on every call; measured useless here (module docstring)."""

    def filter(self, record) -> bool:
        return "pre-process" not in record.getMessage()


def _copy_metadata(src_model, out_onnx) -> None:
    """quantize_static drops metadata_props; put Ultralytics' back so loaders find names and imgsz."""
    import onnx

    out = onnx.load(str(out_onnx))
    del out.metadata_props[:]
    out.metadata_props.extend(src_model.metadata_props)
    onnx.save(out, str(out_onnx))


def _default_source() -> Path:
    """The project's real videos, where this checkout sits beside them."""
    if not DEFAULT_VIDEOS.is_dir():
        raise FileNotFoundError(f"no calibration source given and the default videos folder {DEFAULT_VIDEOS} is "
                                "absent; pass calib=<data.yaml | image folder | video>")
    return DEFAULT_VIDEOS
