"""Where does distillation's lead go? Each distilled run against its vanilla twin, epoch by epoch, next to how far
the vanilla runs spread among themselves at the same epoch.

    python bench/gain_over_epochs.py        # the CPU protocols 2-5 (one data set and recipe), every seed
    python bench/gain_over_epochs.py protocols=cfg/distill_gain_cpu_long.yaml,cfg/distill_gain_cpu_converged.yaml
    python bench/gain_over_epochs.py protocols=cfg/distill_gain_cpu_small_data.yaml suffix=small_data  # other data

The twin is the protocol's vanilla run of the same seed: same data, epochs and learning-rate schedule, no teacher.
Validation mAP is measured after every epoch and jumps from one epoch to the next, so every value here is the mean
over a window of five epochs centred on the checkpoint (cut at the curve's ends). The vanilla spread at an epoch is
the range of all vanilla runs that reached it, whatever their seed and schedule length: how much the student moves
without any teacher. A lead inside that range is not told apart from a vanilla run that was given another seed or
a longer schedule. Beside it, for each schedule length a distilled run has, the range of the vanilla runs of
exactly that length: the seeds' own spread, without a longer schedule's higher learning rate at the same epoch.

Writes bench/results/distill_gain_over_epochs.json, .md, .png and the README's `distill_gain_over_epochs` block.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import distill_gain  # noqa: E402
import gain_frontier  # noqa: E402

CHECKPOINTS = (10, 25, 50, 75, 100, 125, 150, 200, 250, 300)  # those up to the longest distilled run are read
HALF_WINDOW = 2  # epochs each side: a five-epoch mean


def windowed(curve: list[float], epoch: int, half: int = HALF_WINDOW) -> float | None:
    """Mean of the curve over epochs epoch - half .. epoch + half (1-based, cut at its ends); None past its end."""
    if epoch < 1 or epoch > len(curve):
        return None
    return statistics.mean(curve[max(1, epoch - half) - 1:min(len(curve), epoch + half)])


def _method_order(method: str) -> tuple:
    """Main methods before ablations, so that a run recorded under both names keeps its main name."""
    return (method not in distill_gain.MAIN_METHODS, method)


def curves(protocols: list[dict]) -> tuple[list[dict], list[dict]]:
    """The vanilla runs and the distilled runs (with their twin's curve), each run once: a run reused under another
    name or by another protocol has the very same curve."""
    vanilla, distilled, seen = [], [], set()
    for protocol in protocols:
        found = distill_gain.collect(protocol)
        twins = {r["seed"]: r["curve_map50_95"] for r in found.get("vanilla", [])}
        for method in sorted(found, key=_method_order):
            if method in gain_frontier.NOT_RUNS:
                continue
            for record in found[method]:
                curve = record.get("curve_map50_95")
                if not curve or tuple(curve) in seen:
                    continue
                seen.add(tuple(curve))
                run = {"protocol": protocol["name"], "method": method, "seed": record["seed"],
                       "epochs": record["epochs"], "curve": curve}
                if method.startswith(gain_frontier.VANILLA):
                    vanilla.append(run)
                elif record["seed"] in twins:
                    distilled.append({**run, "twin": twins[record["seed"]]})
    return vanilla, distilled


def lead(run: dict, epoch: int) -> float | None:
    """The run's windowed mAP minus its twin's at that epoch, in points."""
    mine, twin = windowed(run["curve"], epoch), windowed(run["twin"], epoch)
    return None if mine is None or twin is None else 100 * (mine - twin)


def vanilla_spread(vanilla: list[dict], epoch: int) -> dict:
    """Range (points) of the windowed vanilla runs that reached the epoch, and how many there were."""
    values = [v for v in (windowed(run["curve"], epoch) for run in vanilla) if v is not None]
    return {"epoch": epoch, "runs": len(values),
            "range_points": 100 * (max(values) - min(values)) if len(values) > 1 else None}


def seed_spreads(vanilla: list[dict], distilled: list[dict], checkpoints: list[int]) -> list[dict]:
    """For each schedule length among the distilled runs, the vanilla runs of that length and their range at each
    checkpoint up to it."""
    rows = []
    for epochs in sorted({run["epochs"] for run in distilled}):
        same = [run for run in vanilla if run["epochs"] == epochs]
        rows.append({"epochs": epochs, "spread": [vanilla_spread(same, e) for e in checkpoints if e <= epochs]})
    return rows


def analyse(protocols: list[dict]) -> dict:
    """Leads at the checkpoints and at the end, averaged over the seeds of each protocol's method."""
    vanilla, distilled = curves(protocols)
    groups: dict[tuple, list[dict]] = {}
    for run in distilled:
        groups.setdefault((run["protocol"], run["method"], run["epochs"]), []).append(run)
    checkpoints = [e for e in CHECKPOINTS if e <= max((run["epochs"] for run in distilled), default=0)]
    rows = []
    for (protocol, method, epochs), runs in groups.items():
        def mean_lead(epoch):
            leads = [lead(run, epoch) for run in runs]
            return statistics.mean(leads) if all(x is not None for x in leads) else None

        rows.append({"protocol": protocol, "method": method, "epochs": epochs,
                     "seeds": sorted(run["seed"] for run in runs),
                     "lead_points": {str(e): mean_lead(e) for e in checkpoints if e <= epochs},
                     "lead_at_end_points": mean_lead(epochs),
                     "lead_curve_points": [mean_lead(e) for e in range(1, epochs + 1)]})
    return {"half_window": HALF_WINDOW, "checkpoints": checkpoints, "distilled": rows,
            "vanilla_runs": [{k: run[k] for k in ("protocol", "method", "seed", "epochs")} for run in vanilla],
            "vanilla_spread": [vanilla_spread(vanilla, e) for e in checkpoints],
            "vanilla_seed_spread": seed_spreads(vanilla, distilled, checkpoints)}


def markdown_block(report: dict) -> str:
    cell = lambda value: f"{value:+.2f}" if value is not None else "–"  # noqa: E731
    header = " | ".join(f"epoch {e}" for e in report["checkpoints"])
    lines = [f"Written by `{report['command']}` into "
             f"[`bench/results/{report['name']}.json`](bench/results/{report['name']}.json) from the committed"
             f" run records of {', '.join(report['protocols'])}. Points of mAP50-95, five-epoch means.", "",
             f"| run | seeds | {header} | at its end |", "|---|---|" + "---|" * (len(report["checkpoints"]) + 1)]
    for row in report["distilled"]:
        leads = " | ".join(cell(row["lead_points"].get(str(e))) for e in report["checkpoints"])
        lines.append(f"| {row['protocol']}/{row['method']} ({row['epochs']} epochs) | "
                     f"{','.join(map(str, row['seeds']))} | {leads} | {cell(row['lead_at_end_points'])} |")
    spread = lambda spreads: " | ".join(  # noqa: E731
        f"{s['range_points']:.2f} ({s['runs']})" if s["range_points"] is not None else "–" for s in spreads)
    lines.append(f"| vanilla runs' range (how many) | – | {spread(report['vanilla_spread'])} | – |")
    for row in report["vanilla_seed_spread"]:
        if all(s["range_points"] is None for s in row["spread"]):
            continue  # one vanilla run of that length: no range to show
        padded = row["spread"] + [{"range_points": None}] * (len(report["checkpoints"]) - len(row["spread"]))
        lines.append(f"| vanilla seeds' range, {row['epochs']}-epoch schedule (how many) | – | {spread(padded)} | – |")
    lines += ["", "Each distilled row is its lead over the vanilla run with the same seed and schedule; the vanilla "
              "runs' range is how far apart the vanilla runs of every schedule and seed stand at the same epoch, the "
              "seeds' range that of the vanilla runs of one schedule length only."]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in report["distilled"]:
        epochs = range(1, len(row["lead_curve_points"]) + 1)
        ax.plot(epochs, row["lead_curve_points"], lw=1, label=f"{row['protocol']}/{row['method']}")
    spread = [s for s in report["vanilla_spread"] if s["range_points"] is not None]
    ax.plot([s["epoch"] for s in spread], [s["range_points"] for s in spread], "k--o", label="vanilla runs' range")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("lead over the vanilla twin (mAP50-95 points, 5-epoch mean)")
    ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> dict:
    return gain_frontier.publish("gain_over_epochs.py", argv, analyse, "distill_gain_over_epochs",
                                 "Distillation's lead over the vanilla student, epoch by epoch", sys.modules[__name__])


if __name__ == "__main__":
    main(sys.argv[1:])
