"""``yolo-gism demo`` / ``make demo``: the whole job on the built-in synthetic traffic data.

Stages: data + clip -> demo-scale teacher -> vanilla and GISM students (same schedule and seed) ->
frame rate on the clip and the real videos -> ONNX export of the distilled student with its parity
check -> one summary table and runs/demo/report.md with a plot. Every stage keeps its output in a folder
named after a hash of its configuration and is reused on a re-run unless force=1. The schedule is short:
it demonstrates the pipeline; what distillation gains at a real schedule is in bench/results/.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ultralytics.utils import LOGGER, colorstr

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    train: int = 160  # synthetic training images (sized so that a 2-core CPU finishes within 20 minutes:
    val: int = 40  # Ultralytics trains on min(8, cores - 1) = 1 thread there)
    imgsz: int = 224
    seed: int = 0
    batch: int = 16
    teacher_model: str = "yolov8s.yaml"
    teacher: str | None = None  # a trained teacher checkpoint to use instead of training the demo-scale one
    teacher_epochs: int = 12
    student_model: str = "yolov8n.yaml"
    epochs: int = 10
    clip_frames: int = 120
    fps_frames: int = 90  # frames measured per model and video
    videos: str = str(SHARED_VIDEOS)  # folder of real videos, measured when present
    force: bool = False

    def __post_init__(self):
        for name in ("train", "val", "imgsz", "batch", "teacher_epochs", "epochs", "clip_frames", "fps_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be a whole number >= 0")


class Stage:
    """A folder keyed by the configuration that produced it; `done` marks a finished stage."""

    def __init__(self, root: Path, name: str, key: dict, force: bool):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
        self.dir = root / f"{name}-{digest}"
        self.name = name
        self.marker = self.dir / "done.json"
        if force and self.dir.exists():
            shutil.rmtree(self.dir)

    @property
    def done(self) -> bool:
        return self.marker.exists()

    def finish(self, info: dict) -> dict:
        self.marker.write_text(json.dumps(info, indent=2, default=str))
        return info

    def info(self) -> dict:
        LOGGER.info(f"{colorstr('demo:')} reusing {self.name} from {self.dir}")
        return json.loads(self.marker.read_text())


def _train_args(cfg: DemoConfig, stage: Stage, epochs: int) -> dict:
    return dict(epochs=epochs, imgsz=cfg.imgsz, batch=cfg.batch, seed=cfg.seed, device="cpu", workers=0,
                plots=False, amp=False, project=str(stage.dir), name="train", exist_ok=True, deterministic=False)


def stage_data(cfg: DemoConfig, root: Path) -> dict:
    from yolo_gism.data import make_clip, make_dataset

    st = Stage(root, "data", {k: getattr(cfg, k) for k in ("train", "val", "imgsz", "seed", "clip_frames")}, cfg.force)
    if st.done:
        return st.info()
    data_yaml = make_dataset(st.dir / "traffic", train=cfg.train, val=cfg.val, imgsz=cfg.imgsz, seed=cfg.seed,
                             exist_ok=True)
    clip = make_clip(st.dir / "clip.mp4", frames=cfg.clip_frames, fps=30, imgsz=cfg.imgsz * 2, seed=cfg.seed,
                     exist_ok=True)
    return st.finish({"data": str(data_yaml), "clip": str(clip)})


def train_key(cfg: DemoConfig, model: str, epochs: int, data: str, teacher: str | None) -> dict:
    """What a training stage's result depends on; for a GISM student that includes GISM's defaults, so a run made
    under other defaults (an older yolo_gism) is retrained rather than reused."""
    key = {"model": model, "epochs": epochs, "data": data, "teacher": teacher, "seed": cfg.seed, "imgsz": cfg.imgsz}
    if teacher:
        from yolo_gism.config import GISMConfig

        key["gism"] = {k: v for k, v in GISMConfig.from_dict({}).to_dict().items() if k != "teacher"}
    return key


def stage_train(cfg: DemoConfig, root: Path, name: str, model: str, epochs: int, data: str, teacher: str | None = None):
    from ultralytics import YOLO

    st = Stage(root, name, train_key(cfg, model, epochs, data, teacher), cfg.force)
    if st.done:
        return st.info()
    args = _train_args(cfg, st, epochs)
    if teacher:
        from yolo_gism import GISMTrainer

        args.update(trainer=GISMTrainer, teacher=teacher)
    metrics = YOLO(model).train(data=data, **args)  # Ultralytics' final validation of best.pt
    weights = st.dir / "train" / "weights" / "best.pt"
    return st.finish({"weights": str(weights), "map50_95": float(metrics.box.map), "map50": float(metrics.box.map50)})


def reuse_teacher(cfg: DemoConfig, data: str) -> dict:
    """A teacher trained elsewhere (e.g. by bench/distill_gain.py), validated on the demo's data."""
    from ultralytics import YOLO

    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(f"teacher={cfg.teacher}: file not found")
    metrics = YOLO(cfg.teacher).val(data=data, imgsz=cfg.imgsz, batch=cfg.batch, device="cpu", plots=False,
                                    verbose=False)
    return {"weights": str(Path(cfg.teacher).resolve()), "map50_95": float(metrics.box.map),
            "map50": float(metrics.box.map50)}


def stage_export(cfg: DemoConfig, root: Path, weights: str, clip: str) -> dict:
    from yolo_gism.export import export

    st = Stage(root, "export", {"weights": weights, "imgsz": cfg.imgsz}, cfg.force)
    if st.done:
        return st.info()
    st.dir.mkdir(parents=True, exist_ok=True)
    result = export(weights, imgsz=cfg.imgsz, precision="fp32", calib=clip, out_dir=st.dir)
    parity = result.report["parity"]
    return st.finish({"onnx": str(result.path), "report": str(result.report_path),
                      "max_abs_diff": parity.get("max_abs_diff"), "agreement": parity.get("detection_agreement")})


def stage_fps(cfg: DemoConfig, root: Path, name: str, source: str, models: list[str]) -> dict:
    from yolo_gism.fps import measure
    from yolo_gism.fps_report import save_report

    st = Stage(root, f"fps-{name}", {"source": source, "models": models, "imgsz": cfg.imgsz,
                                      "frames": cfg.fps_frames}, cfg.force)
    if st.done:
        return st.info()
    report = measure(source, models, imgsz=cfg.imgsz, frames=cfg.fps_frames, mode="pipelined",
                     warmup=min(10, cfg.fps_frames // 4))
    st.dir.mkdir(parents=True, exist_ok=True)
    save_report(report, json=str(st.dir / "fps.json"), md=str(st.dir / "fps.md"))
    return st.finish({"source": source, "fps": {r.path: r.fps for r in report.results},
                      "speedup": {r.path: r.speedup for r in report.results}})


def run_demo(**overrides) -> dict:
    """Run every stage (reusing finished ones) and return the summary that the report shows."""
    unknown = sorted(set(overrides) - {f.name for f in fields(DemoConfig)})
    if unknown:
        raise ValueError(f"unknown demo argument(s) {unknown}; valid: {', '.join(f.name for f in fields(DemoConfig))}")
    cfg = DemoConfig(**overrides)
    root = Path(cfg.out).resolve()  # a relative project would land under Ultralytics runs_dir setting
    root.mkdir(parents=True, exist_ok=True)
    data = stage_data(cfg, root)
    teacher = (reuse_teacher(cfg, data["data"]) if cfg.teacher
               else stage_train(cfg, root, "teacher", cfg.teacher_model, cfg.teacher_epochs, data["data"]))
    vanilla = stage_train(cfg, root, "student", cfg.student_model, cfg.epochs, data["data"])
    gism = stage_train(cfg, root, "gism", cfg.student_model, cfg.epochs, data["data"], teacher=teacher["weights"])
    exported = stage_export(cfg, root, gism["weights"], data["clip"])
    models = [teacher["weights"], vanilla["weights"], gism["weights"], exported["onnx"]]
    sources = {"synthetic clip": data["clip"]}
    if Path(cfg.videos).is_dir():
        sources.update({p.name: str(p) for p in sorted(Path(cfg.videos).glob("*.mp4"))})
    speeds = {name: stage_fps(cfg, root, Path(src).stem, src, models) for name, src in sources.items()}
    summary = {"config": asdict(cfg), "teacher": teacher, "student": vanilla, "gism": gism, "export": exported,
               "fps": speeds}
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_report(summary, root)
    return summary


def summary_rows(summary: dict) -> list[list[str]]:
    clip = summary["fps"]["synthetic clip"]
    rows = []
    for label, key in (("teacher", "teacher"), ("student (vanilla)", "student"), ("student (GISM)", "gism")):
        weights = summary[key]["weights"]
        rows.append([label, f"{summary[key]['map50_95']:.3f}", f"{summary[key]['map50']:.3f}",
                     f"{clip['fps'][weights]:.1f}", f"{clip['speedup'][weights]:.2f}x", ""])
    onnx = summary["export"]["onnx"]
    agreement = summary["export"]["agreement"]
    parity = f"max abs diff {summary['export']['max_abs_diff']:.1e}, agreement " + (
        f"{agreement:.3f}" if agreement is not None else "n/a (no detections)")
    rows.append(["student (GISM) ONNX", "", "", f"{clip['fps'][onnx]:.1f}", f"{clip['speedup'][onnx]:.2f}x", parity])
    return rows


def write_report(summary: dict, root: Path) -> None:
    header = ["model", "mAP50-95", "mAP50", "FPS (clip)", "vs teacher", "ONNX parity"]
    rows = summary_rows(summary)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    table = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header, *rows])
    print("\n" + table + "\n")
    video_lines = [f"| {name} | " + " | ".join(f"{fps:.1f}" for fps in s["fps"].values()) + " |"
                   for name, s in summary["fps"].items()]
    plot_path = _plot(summary, root)
    md = [
        "# yolo_gism demo report", "",
        "Short demo schedule: this run shows the pipeline working end to end. It is far too short to measure what "
        "distillation gains; see `bench/results/distill_gain.md` for that, measured at a converged schedule. "
        "On a 2-core CPU (Ultralytics trains on one thread there) models trained from scratch for these few "
        "minutes barely start to detect the synthetic traffic data, so mAP may read 0 and the ONNX detection "
        "agreement may have nothing to compare; pass `teacher=path/to/best.pt` to reuse a trained teacher.", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows], "",
        f"Frame rate per source (frames/s end to end, decoding pipelined, imgsz {summary['config']['imgsz']}):", "",
        "| source | teacher | student | GISM student | GISM student ONNX |", "|---|---|---|---|---|", *video_lines, "",
        f"![accuracy vs speed]({plot_path.name})", "",
        "Real videos: see ../shared/data/videos/SOURCES.md for credits (intel_parking_432p.mp4: Intel IoT sample "
        "videos, CC BY 4.0).",
    ]
    (root / "report.md").write_text("\n".join(md) + "\n")
    LOGGER.info(f"{colorstr('demo:')} report written to {root / 'report.md'}")


def _plot(summary: dict, root: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clip = summary["fps"]["synthetic clip"]["fps"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, key in (("teacher", "teacher"), ("student", "student"), ("GISM student", "gism")):
        ax.scatter(clip[summary[key]["weights"]], summary[key]["map50_95"], s=60)
        ax.annotate(label, (clip[summary[key]["weights"]], summary[key]["map50_95"]))
    ax.set_xlabel("FPS on the synthetic clip (end to end)")
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_title("Accuracy vs speed (demo schedule)")
    path = root / "report.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def demo_cli(words: list[str], kwargs: dict) -> None:
    if words:
        raise ValueError(f"unexpected words {words}; arguments are key=value")
    run_demo(**kwargs)
