"""Inference backends the frame-rate harness times stage by stage: preprocess, infer, postprocess.

Every backend has the interface of ``yolo_gism.runtime.OnnxDetector`` plus ``sync()``, so the timing loop does
not care what runs underneath:

    preprocess(images) -> (blob, metas);  infer(blob) -> raw;  postprocess(raw, metas) -> list of detections
    names, imgsz, label, backend, device, precision;  sync() waits for queued GPU work before a clock is read

``.pt`` (and any other format Ultralytics' AutoBackend loads: TensorRT ``.engine``, OpenVINO folders, TorchScript)
goes through PyTorch, imported lazily here and nowhere else in the harness; ``.onnx`` goes through the project's own
torch-free ONNX Runtime detector unless ``onnx_backend='ultralytics'`` asks for AutoBackend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ONNX_BACKENDS = ("gism", "ultralytics")


def count_detections(dets) -> int:
    """Number of boxes in one image's detections, whatever container a backend returns."""
    for attr in ("boxes", "xyxy"):
        inner = getattr(dets, attr, None)
        if inner is not None and hasattr(inner, "__len__"):
            return len(inner)
    return len(dets) if hasattr(dets, "__len__") else 0


class TorchBackend:
    """A model behind Ultralytics' AutoBackend, with letterbox, NMS and box scaling done by Ultralytics' own ops."""

    backend = "pytorch"

    def __init__(self, weights: str | Path, imgsz: int = 640, device: str = "cpu", half: bool = False,
                 threads: int | None = None, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 rect: bool = True):
        import torch
        from ultralytics.data.augment import LetterBox
        from ultralytics.nn.autobackend import AutoBackend
        from ultralytics.utils.torch_utils import select_device

        if threads:
            torch.set_num_threads(int(threads))
        self.device = select_device(str(device), verbose=False)
        if half and self.device.type != "cuda":
            raise ValueError(f"half=True needs a CUDA device, got device='{device}' "
                             "(fp16 PyTorch on CPU is not offered)")
        self.model = AutoBackend(str(weights), device=self.device, fp16=half, fuse=True, verbose=False)
        self.model.eval()
        self.fp16 = bool(self.model.fp16)
        self.precision = "fp16" if self.fp16 else "fp32"
        self.names = dict(self.model.names)
        stride = self.model.stride
        self.stride = int(stride.max()) if hasattr(stride, "max") else int(stride)
        self.input_hw = self._input_hw(int(imgsz))
        self.imgsz = max(self.input_hw)
        self.letterbox = LetterBox(self.input_hw, auto=False, stride=self.stride)
        # what Ultralytics' predict does by default: pad only to the next stride multiple, where the graph allows
        self.rect = bool(rect) and (self.model.format == "pt" or bool(getattr(self.model, "dynamic", False)))
        self.rect_letterbox = LetterBox(self.input_hw, auto=True, stride=self.stride)
        self.end2end = bool(getattr(self.model, "end2end", False))
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.label = Path(weights).name
        if self.model.format != "pt":
            self.backend = f"ultralytics-{self.model.format}"
        self._torch = torch

    def _input_hw(self, imgsz: int) -> tuple[int, int]:
        """A static export (ONNX, engine, OpenVINO) runs at the size it was exported at; a .pt at the asked size."""
        exported = (getattr(self.model, "metadata", None) or {}).get("imgsz")
        if self.model.format == "pt" or getattr(self.model, "dynamic", False) or not exported:
            return imgsz, imgsz
        h, w = (exported, exported) if np.isscalar(exported) else exported
        return int(h), int(w)

    def sync(self) -> None:
        """Wait for the GPU so that a clock read afterwards measures finished work."""
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def preprocess(self, images: list[np.ndarray]):
        """Letterbox (rectangular when allowed and the frames share a shape, else square imgsz), stack, to device,
        BGR->RGB, 0-1. Each meta is (input hw, original hw), which postprocess needs to map boxes back."""
        rect = self.rect and len({im.shape for im in images}) == 1
        boxer = self.rect_letterbox if rect else self.letterbox
        batch = np.stack([boxer(image=im) for im in images])
        with self._torch.inference_mode():
            blob = self._torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).flip(1).contiguous()
            blob = (blob.half() if self.fp16 else blob.float()).div_(255)
        return blob, [(batch.shape[1:3], im.shape[:2]) for im in images]

    def infer(self, blob):
        with self._torch.inference_mode():
            return self.model(blob)

    def postprocess(self, raw, metas) -> list[np.ndarray]:
        """NMS, boxes back to each original frame, and results on the host as (N, 6) xyxy-conf-cls arrays."""
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        preds = non_max_suppression(raw, self.conf, self.iou, max_det=self.max_det, end2end=self.end2end)
        out = []
        for pred, (input_hw, shape) in zip(preds, metas):
            pred[:, :4] = ops.scale_boxes(input_hw, pred[:, :4], shape)
            out.append(pred[:, :6].float().cpu().numpy())
        return out


class OnnxBackend:
    """The project's torch-free ``OnnxDetector`` in the harness (nothing to synchronise: outputs are on the host)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers=None, threads: int | None = None, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300, imgsz: int | None = None, rect: bool = True):
        try:
            from yolo_gism.runtime import OnnxDetector
        except ImportError as e:
            raise ImportError(f"ONNX models need yolo_gism.runtime.OnnxDetector, which cannot be imported ({e})") from e

        kwargs = dict(providers=providers, threads=threads, conf=conf, iou=iou, max_det=max_det, rect=rect)
        try:  # a dynamic-shape graph runs at the asked size; a static one keeps the size it was exported at
            self.detector = OnnxDetector(str(path), imgsz=imgsz, **kwargs)
        except (TypeError, ValueError):
            self.detector = OnnxDetector(str(path), **kwargs)
        self.names, self.label = self.detector.names, Path(path).name
        imgsz = self.detector.imgsz
        self.imgsz = int(imgsz if np.isscalar(imgsz) else max(imgsz))
        session = getattr(self.detector, "session", None)
        used = session.get_providers() if session is not None else list(providers or ["CPUExecutionProvider"])
        self.device = used[0] if used else "CPUExecutionProvider"
        self.precision = getattr(self.detector, "precision", None) or _onnx_precision(session)

    def sync(self) -> None:
        """ONNX Runtime returns host arrays, so work is finished when infer() returns."""

    def preprocess(self, images):
        return self.detector.preprocess(images)

    def infer(self, blob):
        return self.detector.infer(blob)

    def postprocess(self, raw, metas):
        return self.detector.postprocess(raw, metas)


def _onnx_precision(session) -> str:
    """fp16 when the graph takes half inputs, else fp32 (int8 graphs keep float inputs and say so in their name)."""
    if session is None:
        return "unknown"
    return "fp16" if "float16" in session.get_inputs()[0].type else "fp32"


def load_backend(model, imgsz: int = 640, device: str = "cpu", half: bool = False, threads: int | None = None,
                 providers=None, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 onnx_backend: str = "gism", rect: bool = True):
    """A ready backend for a model path; an object that already has preprocess/infer/postprocess is used as it is."""
    if all(hasattr(model, m) for m in ("preprocess", "infer", "postprocess")):
        return model
    path = Path(str(model))
    if not path.exists():
        raise FileNotFoundError(f"model '{model}' does not exist")
    if onnx_backend not in ONNX_BACKENDS:
        raise ValueError(f"onnx_backend='{onnx_backend}' is not one of {', '.join(ONNX_BACKENDS)}")
    if path.suffix.lower() == ".onnx" and onnx_backend == "gism":
        if half:
            raise ValueError(f"half=True does not apply to '{path.name}': an ONNX graph's precision is fixed at export")
        return OnnxBackend(path, providers=providers, threads=threads, conf=conf, iou=iou, max_det=max_det,
                           imgsz=imgsz, rect=rect)
    return TorchBackend(path, imgsz=imgsz, device=device, half=half, threads=threads, conf=conf, iou=iou,
                        max_det=max_det, rect=rect)
