"""Writers, readers and plots for frame-rate results, and the machine they were measured on.

A number without its machine means little: every report carries CPU model, cores, threads, GPU and library
versions. JSON keeps everything (per-frame timings included) and reads back into an ``FpsReport``; CSV keeps one
flat row per model and mode and reads back into ``ModelResult`` objects without the per-frame part.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import typing
from importlib import metadata
from pathlib import Path

from yolo_gism.cpuinfo import cpu_model
from yolo_gism.fps import STAGES, FpsReport, ModelResult, Stats

STAT_KEYS = ("mean", "p50", "p90", "p99", "min", "max")
_LIBRARIES = ("yolo_gism", "ultralytics", "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino",
              "tensorrt", "opencv-python", "opencv-python-headless", "numpy", "matplotlib")


def _gpu() -> str | None:
    """GPU names, asked of torch only when torch is already loaded (the harness never imports it for this)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def environment() -> dict:
    """CPU, cores, threads, GPU and library versions, recorded with every result."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        versions["cv2"] = cv2.__version__
    torch = sys.modules.get("torch")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu_model(), "machine": platform.machine(), "platform": platform.platform(),
        "logical_cores": os.cpu_count(), "usable_cores": affinity,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "gpu": _gpu(), "versions": versions,
    }


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _notes(r: ModelResult) -> str:
    notes = []
    if r.dropped:
        notes.append(f"dropped {r.dropped}")
    if r.stalled:
        notes.append("STALLED")
    if r.ended_early:
        notes.append("ENDED EARLY")
    if r.error:
        notes.append(r.error)
    return "; ".join(notes)


TABLE_COLUMNS = ("model", "backend", "prec", "imgsz", "mode", "batch", "frames", "FPS", "speedup", "p50 ms", "p90 ms",
                 "p99 ms", "first ms", "decode", "pre", "infer", "post", "bottleneck", "mAP50-95", "notes")


def table_rows(report: FpsReport) -> list[list[str]]:
    """One row of strings per result, in TABLE_COLUMNS order (the console and Markdown tables share it)."""
    rows = []
    for r in report.results:
        lat = r.latency or Stats(*([None] * 6))
        stage = [_fmt(getattr(r, k).mean if getattr(r, k) else None, 2) for k in STAGES]
        rows.append([
            r.model, r.backend, r.precision, str(r.imgsz), r.mode, str(r.batch), str(r.frames), _fmt(r.fps),
            _fmt(r.speedup, 2) + ("x" if r.speedup else ""), _fmt(lat.p50), _fmt(lat.p90), _fmt(lat.p99),
            _fmt(r.first_frame_ms), *stage, r.bottleneck, _fmt(r.map50_95, 3), _notes(r),
        ])
    return rows


def format_table(report: FpsReport) -> str:
    """A fixed-width console table; stage columns are mean milliseconds per frame."""
    rows = [list(TABLE_COLUMNS), *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    env = report.environment
    lines.append(f"\n{env.get('cpu')} | {env.get('usable_cores')} cores | GPU {env.get('gpu') or 'none'} | "
                 f"sources: {', '.join(s['name'] for s in report.sources)}")
    return "\n".join(lines)


def write_json(report: FpsReport, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=1, default=str))
    return path


def read_json(path: str | Path) -> FpsReport:
    return FpsReport.from_dict(json.loads(Path(path).read_text()))


def _scalar_fields() -> list[str]:
    skip = {"latency", *STAGES, "stream_status", "per_frame"}
    return [f for f in ModelResult.__dataclass_fields__ if f not in skip]


def csv_columns() -> list[str]:
    stats = [f"{s}_{k}_ms" for s in ("latency", *STAGES) for k in STAT_KEYS]
    return _scalar_fields() + stats


def write_csv(report: FpsReport, path: str | Path) -> Path:
    """One row per model and mode; floats written in full so that reading them back gives the same numbers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns())
        writer.writeheader()
        for r in report.results:
            row = {k: getattr(r, k) for k in _scalar_fields()}
            for stage in ("latency", *STAGES):
                stats = getattr(r, stage)
                row.update({f"{stage}_{k}_ms": getattr(stats, k) if stats else None for k in STAT_KEYS})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def _parse(text: str, hint):
    """A CSV cell back to its field's type; an empty cell is None where the field allows None."""
    args = typing.get_args(hint) or (hint,)
    if text == "" and type(None) in args:
        return None
    base = next(a for a in args if a is not type(None))
    if base is bool:
        return text == "True"
    return base(text)


def read_csv(path: str | Path) -> list[ModelResult]:
    """Results from a CSV written by write_csv (per-frame timings and per-stream status are not in a CSV)."""
    hints = typing.get_type_hints(ModelResult)
    results = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            values = {k: _parse(row[k], hints[k]) for k in _scalar_fields()}
            for stage in ("latency", *STAGES):
                cells = [row[f"{stage}_{k}_ms"] for k in STAT_KEYS]
                values[stage] = None if "" in cells else Stats(*map(float, cells))
            results.append(ModelResult(**values))
    return results


def markdown_table(report: FpsReport) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in table_rows(report)]
    return "\n".join(lines)


def markdown(report: FpsReport, title: str = "Frame rate", extra: str | None = None) -> str:
    """A self-contained Markdown page: command, results, sources, settings and machine."""
    env, s = report.environment, report.settings
    out = [f"# {title}", "", f"Measured {report.created}."]
    if report.command:
        out += ["", "```", report.command, "```"]
    out += ["", markdown_table(report), "",
            "FPS is end to end over all streams after warm-up; p50/p90/p99 are per-frame latencies from the start of "
            "decoding to detections ready; decode/pre/infer/post are mean ms per frame; speed-up is relative to the "
            "first model listed, in the same mode. In pipelined mode a frame's latency includes its wait in the "
            "decode queue (a file decodes faster than the model, so the queue stays full); realtime mode paces the "
            "file like a live camera and keeps only the newest frame, which is the latency a live feed sees.",
            "", "## Sources", ""]
    out += [f"- `{src['name']}` ({src['kind']}, {src.get('frame_count') or '?'} frames at {src.get('fps') or '?'} fps)"
            for src in report.sources]
    out += ["", "## Settings", "", ", ".join(f"{k}={v}" for k, v in s.items()), "", "## Machine", "",
            f"- CPU: {env.get('cpu')} ({env.get('usable_cores')} usable of {env.get('logical_cores')} logical cores)",
            f"- torch threads: {env.get('torch_threads')}; GPU: {env.get('gpu') or 'none'}",
            f"- platform: {env.get('platform')}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())]
    if extra:
        out += ["", extra]
    return "\n".join(out) + "\n"


def write_markdown(report: FpsReport, path: str | Path, title: str = "Frame rate", extra: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report, title, extra))
    return path


def _labels(report: FpsReport) -> list[str]:
    modes = {r.mode for r in report.results}
    return [r.model if len(modes) == 1 else f"{r.model}\n{r.mode}" for r in report.results]


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_fps(report: FpsReport, path: Path, plt) -> Path:
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(report.results) + 1.5))
    labels = _labels(report)
    ax.barh(labels, [r.fps for r in report.results], color="tab:blue")
    for y, r in enumerate(report.results):
        ax.text(r.fps, y, f" {r.fps:.1f}" + (f" ({r.speedup:.2f}x)" if r.speedup else ""), va="center")
    ax.invert_yaxis()
    ax.set_xlabel("frames per second, end to end")
    ax.set_title("FPS per model")
    return _save(fig, path, plt)


def _horizontal() -> dict:
    """Matplotlib 3.10 renamed boxplot's vert=False to orientation='horizontal'."""
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _plot_latency(report: FpsReport, path: Path, plt) -> Path:
    """Per-frame latency distributions where per-frame records exist, else the p50/p90/p99 points."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(report.results) + 1.5))
    labels = _labels(report)
    for y, r in enumerate(report.results):
        values = [f.latency_ms for f in r.per_frame if not f.warmup]
        if values:
            ax.boxplot([values], positions=[y], widths=0.6, **_horizontal())
        elif r.latency:
            ax.plot([r.latency.p50, r.latency.p90, r.latency.p99], [y] * 3, "o-")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("latency per frame, ms (decode start to detections)")
    ax.set_title("Latency distribution")
    return _save(fig, path, plt)


def _plot_fps_map(report: FpsReport, path: Path, plt) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r, label in zip(report.results, _labels(report)):
        if r.map50_95 is not None:
            ax.scatter(r.fps, r.map50_95)
            ax.annotate(label.replace("\n", " "), (r.fps, r.map50_95), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("frames per second, end to end")
    ax.set_ylabel("mAP50-95")
    ax.set_title("Speed vs accuracy")
    ax.grid(alpha=0.3)
    return _save(fig, path, plt)


def plot_report(report: FpsReport, folder: str | Path) -> list[Path]:
    """fps.png, latency.png, and fps_map.png when mAP was measured."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [_plot_fps(report, folder / "fps.png", plt), _plot_latency(report, folder / "latency.png", plt)]
    if any(r.map50_95 is not None for r in report.results):
        paths.append(_plot_fps_map(report, folder / "fps_map.png", plt))
    return paths


def save_report(report: FpsReport, json: str | None = None, csv: str | None = None, md: str | None = None,
                plots: str | None = None, out: str | None = None) -> list[Path]:
    """Write what was asked for; out= is a folder that gets fps.json, fps.csv, fps.md and the plots."""
    if out:
        out = Path(out)
        json, csv, md, plots = json or out / "fps.json", csv or out / "fps.csv", md or out / "fps.md", plots or out
    written = []
    if json:
        written.append(write_json(report, json))
    if csv:
        written.append(write_csv(report, csv))
    if md:
        written.append(write_markdown(report, md))
    if plots:
        written += plot_report(report, plots)
    return written
