"""``yolo-gism tune``: grid search of temperature T and alpha on a short schedule.

Each (T, alpha) pair is one GISM run in its own folder (finished runs are reused), scored by validation
mAP50-95 of its best.pt. Writes tune.json and tune.md in the output folder and returns the best pair.
alpha weighs the box term against the feature term, so it is swept only with the box term on (kd_box=true);
with it off (the defaults) alpha would only scale the feature term, and the sweep covers T alone.

    yolo-gism tune model=yolov8n.yaml teacher=teacher.pt data=data.yaml epochs=10 imgsz=256 \
        temperatures=1,2,3,4,5 kd_box=true alphas=0.25,0.5,0.75 out=runs/tune
"""

from __future__ import annotations

import json
from pathlib import Path


def _floats(value) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        value = value.split(",")
    return [float(v) for v in value]


BOX_ALPHAS = (0.25, 0.5, 0.75)  # swept when the box term is on and no alphas are given


def tune(model: str, teacher: str, data: str, temperatures=(1, 2, 3, 4, 5), alphas=None,
         out: str = "runs/tune", **train_args) -> dict:
    """Run the grid and return {"best": {...}, "runs": [...]}; extra kwargs go to every run unchanged.
    alphas=None sweeps BOX_ALPHAS with the box term on, and keeps the configured alpha with it off."""
    from ultralytics import YOLO

    from .config import GISMConfig, split_gism_args
    from .trainer import GISMTrainer

    chosen = split_gism_args(train_args)[0]
    base = GISMConfig.from_dict(chosen)  # the settings every pair starts from
    temperatures = _floats(temperatures)
    alphas = _floats(alphas if alphas is not None else BOX_ALPHAS if base.kd_box else base.alpha)
    if not base.kd_box and alphas != [base.alpha]:
        raise ValueError(f"alphas={alphas}: alpha weighs the box term against the feature term, and the box term is "
                         "off (kd_box=false), so alpha would only scale the feature term; pass kd_box=true to sweep "
                         "it, or leave alphas unset to sweep the temperature alone")
    train_args = {k: v for k, v in train_args.items() if k not in ("temperature", "alpha")}  # the grid sets them
    for t, a in ((t, a) for t in temperatures for a in alphas):
        GISMConfig.from_dict({**chosen, "temperature": t, "alpha": a})  # fail on a bad grid before training anything
    root = Path(out).resolve()  # a relative project would land under Ultralytics runs_dir setting
    runs = []
    for t in temperatures:
        for a in alphas:
            name = f"T{t:g}_a{a:g}"
            done = root / name / "tune_result.json"
            if not done.exists():
                YOLO(model).train(trainer=GISMTrainer, teacher=teacher, data=data, temperature=t, alpha=a,
                                  project=str(root), name=name, exist_ok=True, **train_args)
                metrics = YOLO(str(root / name / "weights" / "best.pt")).val(
                    data=data, imgsz=train_args.get("imgsz", 640), plots=False, verbose=False,
                    device=train_args.get("device"))
                done.write_text(json.dumps({"temperature": t, "alpha": a, "map50_95": float(metrics.box.map),
                                            "map50": float(metrics.box.map50)}))
            runs.append(json.loads(done.read_text()))
    best = max(runs, key=lambda r: r["map50_95"])
    result = {"best": best, "runs": runs, "model": model, "teacher": teacher, "data": data, "train_args": train_args}
    (root / "tune.json").write_text(json.dumps(result, indent=2, default=str))
    (root / "tune.md").write_text(_markdown(result, temperatures, alphas))
    return result


def _markdown(result: dict, temperatures: list[float], alphas: list[float]) -> str:
    score = {(r["temperature"], r["alpha"]): r["map50_95"] for r in result["runs"]}
    lines = ["# GISM temperature / alpha sweep (val mAP50-95)", "",
             "| T \\ alpha | " + " | ".join(f"{a:g}" for a in alphas) + " |", "|---|" + "---|" * len(alphas)]
    lines += [f"| {t:g} | " + " | ".join(f"{score[(t, a)]:.4f}" for a in alphas) + " |" for t in temperatures]
    best = result["best"]
    lines += ["", f"Best: T={best['temperature']:g}, alpha={best['alpha']:g} (mAP50-95 {best['map50_95']:.4f})"]
    return "\n".join(lines) + "\n"


def tune_cli(words: list[str], kwargs: dict) -> None:
    if words:
        raise ValueError(f"unexpected words {words}; arguments are key=value")
    for key in ("teacher", "data"):
        if key not in kwargs:
            raise ValueError(f"{key}= is required")
    result = tune(kwargs.pop("model", "yolov8n.yaml"), kwargs.pop("teacher"), kwargs.pop("data"), **kwargs)
    print(_markdown(result, sorted({r["temperature"] for r in result["runs"]}),
                    sorted({r["alpha"] for r in result["runs"]})))
