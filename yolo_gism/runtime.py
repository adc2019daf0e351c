"""Torch-free ONNX Runtime detector for Ultralytics ONNX exports (edge devices, plain CPUs).

Only numpy, OpenCV and onnxruntime are imported, so this module loads where torch and ultralytics are
absent. It reproduces Ultralytics' predict path step by step (LetterBox, BGR->RGB /255, per-class NMS,
scale_boxes, clip) so that its detections equal ``YOLO("m.onnx").predict(...)`` on the same file.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_WH = 7680  # per-class box offset used by Ultralytics' class-aware NMS
MAX_NMS = 30000  # most candidates that enter NMS, as in Ultralytics
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")  # TensorRT is opt-in: engine builds take minutes


@dataclass
class Detections:
    """Detections for one image, in original-image pixels."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class LetterboxMeta:
    """How one image was placed in the network input, kept to map boxes back."""

    orig_shape: tuple[int, int]  # (h, w) of the original image
    gain: tuple[float, float]  # (gain_x, gain_y) = resized side / original side, per axis
    pad: tuple[int, int]  # (left, top) padding in network pixels


def letterbox(img: np.ndarray, new_shape: tuple[int, int], auto: bool = False, stride: int = 32):
    """Resize keeping aspect ratio and pad to new_shape (h, w), with Ultralytics' LetterBox rounding.

    Returns the padded image and its LetterboxMeta. ``auto=True`` pads only up to a multiple of stride
    (Ultralytics' rectangular inference for dynamic-shape models).
    """
    h, w = img.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)  # each side at least one pixel
    dw, dh = new_shape[1] - new_w, new_shape[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if (w, h) != (new_w, new_h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, LetterboxMeta((h, w), (new_w / w, new_h / h), (left, top))


def to_blob(images: list[np.ndarray], dtype=np.float32) -> np.ndarray:
    """Same-sized BGR uint8 images -> RGB NCHW blob in [0, 1], divided in the target dtype as Ultralytics does."""
    x = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    blob = np.ascontiguousarray(x, dtype=dtype)
    blob /= dtype(255)
    return blob


def scale_boxes(boxes: np.ndarray, meta: LetterboxMeta) -> np.ndarray:
    """Map xyxy boxes from network pixels back to the original image and clip them to it."""
    boxes = boxes.astype(np.float32, copy=True)
    (gx, gy), (left, top), (h, w) = meta.gain, meta.pad, meta.orig_shape
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - left) / gx).clip(0, w)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - top) / gy).clip(0, h)
    return boxes


def xywh2xyxy(x: np.ndarray) -> np.ndarray:
    """Centre-size boxes to corner boxes."""
    y = np.empty_like(x)
    half = x[:, 2:4] / 2
    y[:, :2] = x[:, :2] - half
    y[:, 2:] = x[:, :2] + half
    return y


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float) -> np.ndarray:
    """Greedy NMS in numpy; keeps indices in descending score order like torchvision.ops.nms."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        ih = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_thres)]  # NaN (two empty boxes) is not an overlap, as in torchvision
    return np.asarray(keep, dtype=np.int64)


def decode_raw(pred: np.ndarray, conf: float, iou: float, max_det: int, agnostic: bool = False):
    """One image's [4+nc, A] output -> (xyxy, scores, classes) after best-class filtering and NMS.

    Mirrors Ultralytics' non_max_suppression with multi_label=False: candidates above conf by their best
    class, at most MAX_NMS of them by score, class-aware NMS through a per-class coordinate offset.
    """
    x = pred.T.astype(np.float32, copy=False)
    cls = x[:, 4:]
    j = cls.argmax(1)
    score = cls[np.arange(len(cls)), j]
    keep = score > conf
    box, score, j = xywh2xyxy(x[keep, :4]), score[keep], j[keep]
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        box, score, j = box[top], score[top], j[top]
    offset = j[:, None].astype(np.float32) * (0 if agnostic else MAX_WH)
    i = nms(box + offset, score, iou)[:max_det]
    return box[i], score[i], j[i].astype(np.int64)


def decode_end2end(pred: np.ndarray, conf: float, max_det: int):
    """One image's [max_det, 6] (x1, y1, x2, y2, score, cls) output -> filtered by conf, first max_det kept."""
    pred = pred.astype(np.float32, copy=False)
    pred = pred[pred[:, 4] > conf][:max_det]
    return pred[:, :4], pred[:, 4], pred[:, 5].astype(np.int64)


def resolve_providers(providers) -> list:
    """Execution providers that this onnxruntime build has, in the asked order; warn about the rest."""
    available = set(ort.get_available_providers())
    wanted = DEFAULT_PROVIDERS if providers is None else ([providers] if isinstance(providers, str) else providers)
    chosen = []
    for p in wanted:
        name, opts = (p if isinstance(p, tuple) else (p, None))
        name = PROVIDER_ALIASES.get(str(name).lower(), name)
        if name not in available:
            if providers is not None:
                warnings.warn(f"ONNX Runtime provider {name} is not available here ({sorted(available)}); skipped")
            continue
        chosen.append((name, opts) if opts else name)
    names = [c[0] if isinstance(c, tuple) else c for c in chosen]
    if "CPUExecutionProvider" not in names:
        chosen.append("CPUExecutionProvider")  # always keep a fallback for nodes the accelerator rejects
    return chosen


def parse_metadata(raw: dict) -> dict:
    """Ultralytics writes each metadata value as str(v); turn the ones we read back into Python values."""
    out = {}
    for key, value in raw.items():
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = {"True": True, "False": False}.get(value, value)
    return out


def has_dynamic_size(input_shape) -> bool:
    """True when an NCHW graph input leaves height or width open (named or unknown dims, not ints)."""
    return not all(isinstance(d, int) for d in input_shape[2:4])


class OnnxDetector:
    """Run an Ultralytics ONNX detector with ONNX Runtime: letterbox -> session -> decode/NMS -> original pixels.

    Reads names, imgsz, stride, batch and end2end from the metadata Ultralytics embeds. Dynamic-shape
    models letterbox same-sized images to the smallest stride multiple (``rect=True``), as Ultralytics'
    predictor does; static models always get the exported square/static input.
    """

    def __init__(self, path, providers=None, threads=None, conf=0.25, iou=0.7, max_det=300, agnostic=False,
                 imgsz=None, rect=True):
        """providers: names or aliases ("tensorrt", "cuda", "cpu"), default CUDA then CPU, unavailable ones
        skipped with a warning; threads: ONNX Runtime intra-op threads; imgsz: input size of a dynamic-shape
        model (default: the exported one); rect: minimal-padding letterbox for dynamic models, as Ultralytics.
        """
        self.path = Path(path)
        self.conf, self.iou, self.max_det, self.agnostic, self.rect = conf, iou, max_det, agnostic, rect
        self.session = self._open_session(providers, threads)
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.fp16 = inp.name, inp.type == "tensor(float16)"
        self.dynamic = has_dynamic_size(inp.shape)
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None  # None: any batch size
        self.stride = int(self.meta.get("stride", 32))
        self.imgsz = self._input_size(inp.shape, imgsz)
        self.names = {int(k): str(v) for k, v in self.meta.get("names", {}).items()}
        self.end2end = self._check_detector(out.shape)
        if not self.names and not self.end2end and isinstance(out.shape[1], int):  # an export without metadata
            self.names = {i: str(i) for i in range(out.shape[1] - 4)}

    def _open_session(self, providers, threads):
        """Create the ORT session; a missing or unreadable file becomes an error that names it."""
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            return ort.InferenceSession(str(self.path), opts, providers=resolve_providers(providers))
        except Exception as e:  # ORT raises its own Fail/InvalidProtobuf/InvalidGraph types
            raise ValueError(f"{self.path} is not a loadable ONNX model (corrupt or truncated?): {e}") from e

    def _input_size(self, shape, imgsz) -> tuple[int, int]:
        """Static models dictate their input size; dynamic ones use imgsz, else the exported imgsz."""
        if not self.dynamic:
            if imgsz is not None and tuple(np.broadcast_to(imgsz, 2)) != tuple(shape[2:4]):
                raise ValueError(f"{self.path} has a static input {tuple(shape[2:4])}; imgsz={imgsz} is not possible")
            return int(shape[2]), int(shape[3])
        size = imgsz if imgsz is not None else self.meta.get("imgsz", 640)
        h, w = (int(v) for v in np.broadcast_to(size, 2))
        return -(-h // self.stride) * self.stride, -(-w // self.stride) * self.stride

    def _check_detector(self, shape) -> bool:
        """Return True for [B, max_det, 6] end-to-end outputs; raise unless the output is a detector's."""
        task = self.meta.get("task", "detect")
        if task != "detect" or len(shape) != 3 or len(self.session.get_outputs()) != 1:
            raise ValueError(f"{self.path} is not a detection model (task={task}, output shape {shape})")
        args = self.meta["args"] if isinstance(self.meta.get("args"), dict) else {}
        nc = len(self.names)
        e2e = bool(self.meta.get("end2end")) or args.get("nms") is True
        if e2e or (shape[2] == 6 and shape[1] != 4 + nc):  # Ultralytics' own rule: last dim 6 means end-to-end
            if shape[2] != 6:
                raise ValueError(f"{self.path}: end-to-end output must be [B, max_det, 6], got {shape}")
            return True
        if isinstance(shape[1], int) and (shape[1] <= 4 or (nc and shape[1] != 4 + nc)):
            raise ValueError(f"{self.path}: output {shape} is not [B, 4+nc, anchors] with nc={nc or '?'}")
        return False

    def _as_list(self, images) -> list[np.ndarray]:
        """Accept one HxWx3 image, a BxHxWx3 array or a list; reject anything that is not uint8 BGR."""
        if isinstance(images, np.ndarray):
            images = [images] if images.ndim == 3 else list(images) if images.ndim == 4 else [images]
        if not isinstance(images, (list, tuple)) or not images:
            raise ValueError(f"{self.path}: expected an HxWx3 uint8 image or a non-empty list of them")
        for i, im in enumerate(images):
            ok = isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
            if not ok or min(im.shape[:2]) < 1:
                desc = f"shape {im.shape} dtype {im.dtype}" if isinstance(im, np.ndarray) else type(im).__name__
                raise ValueError(f"{self.path}: image {i} must be an HxWx3 uint8 BGR array, got {desc}")
        return list(images)

    def preprocess(self, images) -> tuple[np.ndarray, list[LetterboxMeta]]:
        """Letterbox, BGR->RGB, HWC->CHW, /255 into one NCHW blob in the model's input dtype."""
        images = self._as_list(images)
        auto = self.dynamic and self.rect and len({im.shape for im in images}) == 1
        boxed = [letterbox(im, self.imgsz, auto=auto, stride=self.stride) for im in images]
        return to_blob([b[0] for b in boxed], np.float16 if self.fp16 else np.float32), [b[1] for b in boxed]

    def infer(self, blob: np.ndarray) -> np.ndarray:
        """Run the session; a static-batch model gets the blob in chunks of its batch, the last one zero-padded."""
        if not isinstance(blob, np.ndarray) or blob.ndim != 4 or blob.shape[1] != 3:
            got = getattr(blob, "shape", type(blob).__name__)
            raise ValueError(f"{self.path}: infer() needs an NCHW blob with 3 channels, got {got}")
        blob = blob.astype(np.float16 if self.fp16 else np.float32, copy=False)
        n, step = len(blob), self.batch or len(blob)
        outs = []
        for s in range(0, n, step):
            chunk = blob[s : s + step]
            if len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.session.run(None, {self.input_name: chunk})[0])
        return np.concatenate(outs)[:n]

    def postprocess(self, raw: np.ndarray, metas: list[LetterboxMeta]) -> list[Detections]:
        """Decode each image's rows (NMS unless end-to-end) and map boxes to original-image pixels."""
        if not isinstance(raw, np.ndarray) or raw.ndim != 3 or len(raw) < len(metas):
            raise ValueError(f"{self.path}: raw output {getattr(raw, 'shape', raw)} does not fit {len(metas)} images")
        if self.end2end and raw.shape[2] != 6:
            raise ValueError(f"{self.path}: end-to-end output must be [B, max_det, 6], got {raw.shape}")
        results = []
        for pred, meta in zip(raw, metas):
            if self.end2end:
                box, score, cls = decode_end2end(pred, self.conf, self.max_det)
            else:
                box, score, cls = decode_raw(pred, self.conf, self.iou, self.max_det, self.agnostic)
            results.append(Detections(scale_boxes(box, meta), score.astype(np.float32), cls))
        return results

    def __call__(self, images) -> list[Detections]:
        """Detect objects in one BGR image or a list of them."""
        blob, metas = self.preprocess(images)
        return self.postprocess(self.infer(blob), metas)
