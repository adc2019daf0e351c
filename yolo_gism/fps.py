"""Frame rate and latency of detectors on recorded video, the way a deployment sees them.

Ultralytics' ``predict(stream=True)`` decodes, infers and runs NMS one after the other and reports one number.
This harness times every stage of every frame (decode, preprocess, inference, postprocess, end to end), can decode
in a separate thread (pipelined) or pace a file like a live camera (realtime, dropping what it cannot keep up
with), and puts several models side by side::

    report = measure("clip.mp4", ["teacher.pt", "student.pt", "distilled.onnx"], imgsz=640, mode="pipelined")
    print(format_table(report))

or ``yolo-gism fps source=clip.mp4 models=teacher.pt,student.pt,distilled.onnx imgsz=640 json=fps.json``.
Torch and Ultralytics are imported only when a ``.pt`` (or other AutoBackend) model is measured.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from yolo_gism.fps_backends import ONNX_BACKENDS, count_detections, load_backend
from yolo_gism.video import MODES, FrameReader, FrameSource, mask_url, open_source

STAGES = ("decode", "preprocess", "inference", "postprocess")


@dataclass
class FpsSettings:
    """Everything that shapes a measurement; recorded with the result so a number can be reproduced."""

    imgsz: int = 640  # letterbox size for .pt and dynamic-shape models (a static graph keeps its exported size)
    rect: bool = True  # pad frames only to the next stride multiple, as Ultralytics' predict (False: square imgsz)
    mode: str = "pipelined"  # sequential | pipelined | realtime; a comma list measures each in turn
    batch: int | None = None  # frames per inference call; default: one per stream
    streams: int = 1  # decode N copies of a single source concurrently (several sources: one stream each)
    frames: int | None = None  # stop each stream after this many frames (None: to the end)
    warmup: int = 5  # the first frames, excluded from the statistics (the first one is reported apart)
    warmup_s: float = 0.0  # ... and also every frame finished within this many seconds of the start
    device: str = "cpu"  # PyTorch device for .pt models: cpu, 0, cuda:0
    half: bool = False  # fp16 PyTorch inference (CUDA only)
    threads: int | None = None  # intra-op threads for PyTorch and ONNX Runtime (None: library default)
    providers: list | None = None  # ONNX Runtime execution providers, in order of preference
    conf: float = 0.25  # NMS confidence threshold
    iou: float = 0.7  # NMS IoU threshold
    max_det: int = 300  # most detections kept per frame
    data: str | None = None  # a data.yaml: mAP through Ultralytics' validator beside each model's FPS
    queue_size: int = 4  # pipelined mode: decoded frames buffered per stream (their wait counts as latency)
    stall_timeout: float = 10.0  # seconds without a new frame before a stream counts as stalled
    url_timeout: float = 5.0  # seconds to open (and read from) a network stream
    source_fps: float | None = None  # realtime mode: pace at this rate instead of the file's own
    onnx_backend: str = "gism"  # .onnx through yolo_gism.runtime (gism) or Ultralytics' AutoBackend (ultralytics)
    per_frame: bool = True  # keep every frame's timings in the result

    def __post_init__(self):
        _ = self.modes  # raises on an unknown mode
        if self.onnx_backend not in ONNX_BACKENDS:
            raise ValueError(f"onnx_backend='{self.onnx_backend}' is not one of {', '.join(ONNX_BACKENDS)}")
        for name in ("imgsz", "streams", "max_det", "queue_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("batch", "frames"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1 (or None)")
        self.device, self.rect = str(self.device), bool(self.rect)
        self.data = None if self.data is None else str(self.data)
        if int(self.warmup) < 0 or float(self.warmup_s) < 0:
            raise ValueError("warmup and warmup_s cannot be negative")
        if isinstance(self.providers, str):
            self.providers = [p.strip() for p in self.providers.split(",") if p.strip()]

    @property
    def modes(self) -> list[str]:
        modes = _as_list(self.mode)
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise ValueError(f"mode='{self.mode}': each mode must be one of {', '.join(MODES)}")
        return modes

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict) -> FpsSettings:
        """Build from keyword arguments; an unknown key is an error that lists the valid ones."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown fps argument(s) {', '.join(unknown)}; valid: {', '.join(cls.keys())}")
        return cls(**values)


@dataclass
class Stats:
    """Summary of per-frame times in milliseconds."""

    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @classmethod
    def of(cls, values) -> Stats | None:
        values = np.asarray(list(values), dtype=float)
        if values.size == 0:
            return None
        p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
        return cls(float(values.mean()), p50, p90, p99, float(values.min()), float(values.max()))


@dataclass
class FrameRecord:
    """One frame's timings in milliseconds. Stage times of a batch are shared equally by its frames."""

    stream: int
    index: int  # frame position in its source
    batch: int  # which inference call it was part of
    warmup: bool
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    latency_ms: float  # from the start of its decoding to its detections being ready
    detections: int


@dataclass
class ModelResult:
    """One model measured in one mode on the source(s)."""

    model: str  # file name
    path: str
    backend: str  # pytorch | onnxruntime | ultralytics-<format> | the class name of a custom backend
    device: str
    precision: str
    imgsz: int
    mode: str
    batch: int
    streams: int
    threads: int | None
    frames: int  # frames in the statistics (warm-up excluded)
    warmup_frames: int
    wall_s: float  # seconds of the measured window
    fps: float  # frames / wall_s, end to end, all streams together
    first_frame_ms: float | None  # latency of the very first frame (model and caches cold)
    load_s: float  # seconds to load the model
    latency: Stats | None
    decode: Stats | None
    preprocess: Stats | None
    inference: Stats | None
    postprocess: Stats | None
    bottleneck: str  # the stage with the largest mean time per frame
    decode_fps: float | None  # what decoding alone could sustain
    compute_fps: float | None  # what preprocess + inference + postprocess alone could sustain
    dropped: int = 0  # realtime mode: frames the model could not keep up with
    stalled: bool = False
    ended_early: bool = False
    error: str | None = None
    speedup: float | None = None  # fps / fps of the first model listed, same mode
    map50_95: float | None = None
    map50: float | None = None
    stream_status: list = field(default_factory=list)
    per_frame: list = field(default_factory=list)

    @property
    def two_stage_limit_fps(self) -> float | None:
        """The most a decode thread + a compute thread could deliver: the slower of the two."""
        known = [v for v in (self.decode_fps, self.compute_fps) if v]
        return min(known) if known else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelResult:
        d = dict(d)
        for stage in ("latency", *STAGES):
            d[stage] = Stats(**d[stage]) if d.get(stage) else None
        d["per_frame"] = [FrameRecord(**r) for r in d.get("per_frame") or []]
        return cls(**d)


@dataclass
class FpsReport:
    """All results of one run, with the settings, sources and machine they were measured on."""

    results: list[ModelResult]
    settings: dict
    sources: list[dict]
    environment: dict
    command: str | None = None
    created: str = ""

    def get(self, model: str, mode: str | None = None) -> ModelResult:
        """The result of a model (file name or path), in a mode if several were measured."""
        for r in self.results:
            if model in (r.model, r.path) and (mode is None or r.mode == mode):
                return r
        raise KeyError(f"no result for model={model!r} mode={mode!r}")

    def to_dict(self) -> dict:
        return {"created": self.created, "command": self.command, "settings": self.settings, "sources": self.sources,
                "environment": self.environment, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: dict) -> FpsReport:
        return cls([ModelResult.from_dict(r) for r in d["results"]], d["settings"], d["sources"], d["environment"],
                   d.get("command"), d.get("created", ""))


def _as_list(value) -> list:
    """A comma-separated string or a list, as a list of non-empty items."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None and str(v).strip() != ""]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def _time_batch(backend, images: list[np.ndarray]) -> tuple[tuple[float, float, float, float], list]:
    """Run the three model stages on a batch, synchronising before every clock read."""
    t0 = time.perf_counter()
    blob, metas = backend.preprocess(images)
    backend.sync()
    t1 = time.perf_counter()
    raw = backend.infer(blob)
    backend.sync()
    t2 = time.perf_counter()
    dets = backend.postprocess(raw, metas)
    backend.sync()
    return (t0, t1, t2, time.perf_counter()), dets


def _frame_records(batch, number: int, warm: bool, clocks, dets) -> list[FrameRecord]:
    t0, t1, t2, t3 = clocks
    n = len(batch)
    pre, inf, post = ((b - a) * 1000 / n for a, b in ((t0, t1), (t1, t2), (t2, t3)))
    return [
        FrameRecord(f.stream, f.index, number, warm, f.decode_s * 1000, pre, inf, post, (t3 - f.t_start) * 1000,
                    count_detections(d))
        for f, d in zip(batch, dets)
    ]


def _run(backend, reader: FrameReader, s: FpsSettings) -> tuple[list[FrameRecord], float, float]:
    """Feed every batch the reader yields through the backend. Returns records and the measured window's clocks."""
    records: list[FrameRecord] = []
    window_start = window_end = None
    with reader:
        for number, batch in enumerate(reader):
            clocks, dets = _time_batch(backend, [f.image for f in batch])
            warm = len(records) < s.warmup or clocks[3] - reader.t_start < s.warmup_s
            records += _frame_records(batch, number, warm, clocks, dets)
            if warm:
                window_start = clocks[3]
            else:
                window_end = clocks[3]
    if window_start is None:
        window_start = reader.t_start
    return records, window_start, window_end or window_start


def _stats(measured: list[FrameRecord]) -> dict:
    stats = {"latency": Stats.of(r.latency_ms for r in measured)}
    for stage in STAGES:
        stats[stage] = Stats.of(getattr(r, f"{stage}_ms") for r in measured)
    return stats


def _rate(ms: float | None) -> float | None:
    return 1000.0 / ms if ms else None


def _summarise(backend, records, window, reader: FrameReader, s: FpsSettings, mode: str, load_s: float) -> ModelResult:
    """Turn per-frame records into a ModelResult: rates, percentiles, bottleneck, and how the streams went."""
    measured = [r for r in records if not r.warmup]
    stats = _stats(measured)
    wall = window[1] - window[0]
    means = {k: stats[k].mean for k in STAGES if stats[k] is not None}
    compute = sum(means.get(k, 0.0) for k in STAGES[1:]) or None
    status = reader.status
    error = "; ".join(f"stream {st.stream}: {st.error}" for st in status if st.error) or None
    if records and not measured:
        error = (error + "; " if error else "") + f"all {len(records)} frames went to warm-up; lower warmup="
    return ModelResult(
        model=getattr(backend, "label", type(backend).__name__), path=str(getattr(backend, "path", "")),
        backend=getattr(backend, "backend", type(backend).__name__), device=str(getattr(backend, "device", "?")),
        precision=str(getattr(backend, "precision", "?")), imgsz=int(getattr(backend, "imgsz", s.imgsz)),
        mode=mode, batch=reader.batch, streams=len(reader.feeds), threads=s.threads,
        frames=len(measured), warmup_frames=len(records) - len(measured), wall_s=wall,
        fps=len(measured) / wall if measured and wall > 0 else 0.0,
        first_frame_ms=records[0].latency_ms if records else None, load_s=load_s,
        bottleneck=max(means, key=means.get) if means else "", decode_fps=_rate(means.get("decode")),
        compute_fps=_rate(compute), dropped=sum(st.dropped for st in status),
        stalled=any(st.stalled for st in status), ended_early=any(st.ended_early for st in status), error=error,
        stream_status=[st.to_dict() for st in status], per_frame=records if s.per_frame else [], **stats,
    )


def _source_specs(source, streams: int) -> list:
    """The list of sources to open together: several given, or N copies of one."""
    specs = [source] if isinstance(source, (FrameSource, int, Path)) else _as_list(source)
    if not specs:
        raise ValueError("source= is required: a video file, a folder of images, a URL or a camera index")
    if len(specs) == 1:
        return specs * int(streams)
    if int(streams) not in (1, len(specs)):
        raise ValueError(f"streams={streams} but {len(specs)} sources were given; give one source, or drop streams=")
    return specs


def _probe(specs: list, s: FpsSettings) -> list[dict]:
    """Open every distinct source once before any model loads, so a bad source fails fast with its name."""
    described, seen = [], {}
    for spec in specs:
        if isinstance(spec, FrameSource):
            described.append(spec.describe())
            continue
        key = str(spec)
        if key not in seen:
            source = open_source(spec, s.url_timeout, s.source_fps)
            seen[key] = source.describe()
            source.close()
        described.append(seen[key])
    return described


def _measure_model(model, specs: list, s: FpsSettings) -> list[ModelResult]:
    """Load one model and measure it in every requested mode on fresh readers of the same sources."""
    t0 = time.perf_counter()
    backend = load_backend(model, imgsz=s.imgsz, device=s.device, half=s.half, threads=s.threads,
                           providers=s.providers, conf=s.conf, iou=s.iou, max_det=s.max_det,
                           onnx_backend=s.onnx_backend, rect=s.rect)
    load_s = time.perf_counter() - t0
    results = []
    for mode in s.modes:
        reader = FrameReader(specs, mode=mode, batch=s.batch, max_frames=s.frames, queue_size=s.queue_size,
                             stall_timeout=s.stall_timeout, url_timeout=s.url_timeout, source_fps=s.source_fps)
        records, start, end = _run(backend, reader, s)
        result = _summarise(backend, records, (start, end), reader, s, mode, load_s)
        if isinstance(model, (str, Path)):
            result.path = str(model)
        results.append(result)
    return results


def _unique_labels(models: list) -> list[str | None]:
    """File names, lengthened by parent folders where two models share one (runs/a/best.pt vs runs/b/best.pt)."""
    parts = [Path(str(m)).parts if isinstance(m, (str, Path)) else None for m in models]
    deepest = max((len(p) for p in parts if p), default=1)
    for depth in range(1, deepest + 1):
        labels = ["/".join(p[-depth:]) if p else None for p in parts]
        named = [label for label in labels if label]
        if len(set(named)) == len(named):
            break
    return labels


def _add_speedups(results: list[ModelResult]) -> None:
    """Speed-up of every model relative to the first model listed (the teacher), mode by mode."""
    reference: dict[str, float] = {}
    for r in results:
        reference.setdefault(r.mode, r.fps)
        ref = reference[r.mode]
        r.speedup = r.fps / ref if ref else None


def model_map(model, data, imgsz: int, device: str = "cpu", split: str = "val") -> tuple[float, float]:
    """(mAP50-95, mAP50) of a model on one split through Ultralytics' own validator, run in a throw-away folder."""
    import tempfile

    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        metrics = YOLO(str(model), task="detect").val(data=str(data), split=split, imgsz=imgsz, device=device,
                                                      plots=False, verbose=False, project=tmp, name="val")
    return float(metrics.box.map), float(metrics.box.map50)


def _add_map(results: list[ModelResult], s: FpsSettings) -> None:
    done: dict[str, tuple[float, float]] = {}
    for r in results:
        if not r.path:
            continue
        if r.path not in done:
            done[r.path] = model_map(r.path, s.data, r.imgsz, s.device)
        r.map50_95, r.map50 = done[r.path]


def measure(source, models, command: str | None = None, **settings) -> FpsReport:
    """Measure each model on the source(s) and return the results as data (nothing is printed).

    ``source``: a video file, image folder, URL, camera index, FrameSource, or a list of them (one stream each).
    ``models``: paths (.pt, .onnx, anything AutoBackend loads) or ready backend objects, teacher first.
    ``settings``: the fields of ``FpsSettings``; an unknown key raises ValueError listing the valid ones.
    """
    from yolo_gism.fps_report import environment

    s = FpsSettings.from_dict(settings)
    specs = _source_specs(source, s.streams)
    models = [models] if isinstance(models, Path) or hasattr(models, "infer") else _as_list(models)
    if not models:
        raise ValueError("models= is required: one or more model files, the teacher first")
    if any(isinstance(x, FrameSource) for x in specs) and len(models) * len(s.modes) > 1:
        raise ValueError("a FrameSource object can be read once: measure one model in one mode with it")
    sources = _probe(specs, s)
    results = []
    for model, label in zip(models, _unique_labels(models)):
        for r in _measure_model(model, specs, s):
            r.model = label or r.model
            results.append(r)
    _add_speedups(results)
    if s.data:
        _add_map(results, s)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return FpsReport(results, asdict(s), sources, environment(), command, created)


CLI_KEYS = ("source", "models", "json", "csv", "md", "plots", "out")


def _cli_command(words: list[str], kwargs: dict) -> str:
    """The command as typed, rebuilt from its arguments with any URL credentials masked."""
    parts = ["yolo-gism", "fps", *words]
    parts += [f"{k}={mask_url(','.join(map(str, v)) if isinstance(v, list) else v)}" for k, v in kwargs.items()]
    return " ".join(shlex.quote(p) for p in parts)


def fps_cli(words: list[str], kwargs: dict) -> FpsReport:
    """``yolo-gism fps source=... models=a.pt,b.onnx [key=value ...]``: measure, print a table, write files."""
    from yolo_gism.fps_report import format_table, save_report

    valid = sorted(set(CLI_KEYS) | set(FpsSettings.keys()))
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if words:
        raise ValueError(f"unexpected word(s) {' '.join(words)}; arguments are key=value, "
                         f"valid keys: {', '.join(valid)}")
    settings = dict(kwargs)
    source, models = settings.pop("source", None), settings.pop("models", None)
    outputs = {k: settings.pop(k) for k in ("json", "csv", "md", "plots", "out") if k in settings}
    report = measure(source, models, command=_cli_command(words, kwargs), **settings)
    print(format_table(report))
    for path in save_report(report, **outputs):
        print(f"wrote {path}", file=sys.stderr)
    return report
