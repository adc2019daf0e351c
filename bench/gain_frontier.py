"""Does distillation beat training longer? Every finished seed-0 run of the gain protocols that share one dataset
and recipe, on one budget axis.

    python bench/gain_frontier.py        # the CPU protocols 2-5 (cfg/distill_gain_cpu*.yaml on the built-in data)
    python bench/gain_frontier.py protocols=cfg/distill_gain_cpu_long.yaml,cfg/distill_gain_cpu_converged.yaml
    python bench/gain_frontier.py protocols=cfg/distill_gain_cpu_small_data.yaml suffix=small_data  # other data

The vanilla students trained for different numbers of epochs (each a complete run with its own learning-rate
schedule) are what a user gets from a budget without any teacher: that is the frontier. A distilled run costs
its epochs times its method's epoch cost relative to a vanilla epoch (measured by `distill_gain.py steps=cost`,
ABBA-timed in one process); it beats training longer only if it lies above the frontier at that budget. The
frontier is interpolated linearly between measured vanilla runs, never extrapolated. Read the other way, a distilled
run is worth the vanilla epochs at which the frontier first reaches its mAP: fewer than its budget, and the time
would have been better spent training longer. The teacher gives the
headroom: if even a student distilled all the way to the teacher's mAP would sit below the frontier at GISM's
budget, no distillation from that teacher can win at that schedule.

Writes bench/results/distill_gain_frontier.json, .md, .png and the README's `distill_gain_frontier` block.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import distill_gain  # noqa: E402
from readme_block import replace_block  # noqa: E402

DEFAULT_PROTOCOLS = ["cfg/distill_gain_cpu.yaml", "cfg/distill_gain_cpu_long.yaml",
                     "cfg/distill_gain_cpu_converged.yaml", "cfg/distill_gain_cpu_strong_teacher.yaml"]
SHARED = (*distill_gain.BASE_KEYS, "student_model")
VANILLA = "vanilla"  # vanilla, vanilla_time_matched, vanilla_time_matched_<method>: students without a teacher
NOT_RUNS = ("teacher", "builtin_tuned")  # the teacher is the headroom, builtin_tuned repeats a builtin_dis* run
SEED = 0


def load(paths: list[str]) -> list[dict]:
    """The protocols, which must share data, image size, batch, device, training arguments and student model:
    runs of different recipes do not belong on one budget axis."""
    protocols = [distill_gain.load_protocol(str(ROOT / p)) for p in paths]
    first = _recipe(protocols[0])
    for path, protocol in zip(paths, protocols):
        differ = [k for k in SHARED if _recipe(protocol)[k] != first[k]]
        if differ:
            raise ValueError(f"{path}: {', '.join(differ)} differ from {paths[0]}; only protocols with one data "
                             f"set and recipe share a budget axis")
    return protocols


def _recipe(protocol: dict) -> dict:
    return {**{k: protocol.get(k) for k in distill_gain.BASE_KEYS}, "student_model": protocol["student"]["model"]}


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """Piecewise-linear value at x between the (x, y) points; None outside their range."""
    points = sorted(points)
    if not points or x < points[0][0] or x > points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def reach(points: list[tuple[float, float]], y: float) -> float | None:
    """The first x at which the piecewise-linear curve through the points reaches y; None if it starts above y or
    never gets there (no extrapolation either way)."""
    points = sorted(points)
    if not points or points[0][1] > y:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y0 <= y <= y1:
            return x0 if y1 == y0 else x0 + (x1 - x0) * (y - y0) / (y1 - y0)
    return points[0][0] if points[0][1] == y else None


def frontier(protocols: list[dict]) -> dict:
    """Vanilla runs by epochs, distilled runs with their budget and distance to the frontier, teacher headroom."""
    vanilla, distilled, unmeasured, teachers, cost_files = {}, [], [], [], []
    for protocol in protocols:
        found = distill_gain.collect(protocol)
        cost_file = distill_gain.cost_file(protocol)
        shown = f"bench/results/{cost_file.relative_to(distill_gain.RESULTS)}"
        if cost_file.exists() and shown not in cost_files:
            cost_files.append(shown)
        for method in [m for m in found if m.startswith(VANILLA)]:
            for record in found[method]:
                if record["seed"] == SEED:  # a run reused by another protocol is the same run: counted once
                    source = record.get("reused_from") or f"distill_gain_runs/{protocol['name']}/{method}/seed{SEED}"
                    vanilla.setdefault(record["epochs"], {})[source] = record["map50_95"]
        for record in found.get("teacher", []):
            teachers.append({"protocol": protocol["name"], "model": protocol["teacher"]["model"],
                             "epochs": record["epochs"], "map50_95": record["map50_95"],
                             "gism_cost": distill_gain.cost_ratio(protocol, "gism"),
                             "student_epochs": protocol["student"]["epochs"]})
        for method, records in found.items():
            for record in records:
                if method.startswith(VANILLA) or method in NOT_RUNS or record["seed"] != SEED:
                    continue
                ratio = distill_gain.cost_ratio(protocol, method)
                entry = {"protocol": protocol["name"], "method": method, "epochs": record["epochs"],
                         "map50_95": record["map50_95"], "teacher_epochs": protocol["teacher"]["epochs"]}
                (distilled if ratio else unmeasured).append({**entry, "cost": ratio})
    vanilla = {epochs: {"map50_95": statistics.mean(runs.values()), "runs": sorted(runs)}
               for epochs, runs in sorted(vanilla.items())}
    points = [(epochs, value["map50_95"]) for epochs, value in vanilla.items()]
    falls = [{"from_epochs": x0, "to_epochs": x1, "points": 100 * (y1 - y0)}
             for (x0, y0), (x1, y1) in zip(points, points[1:]) if y1 < y0]
    for run in distilled:
        place(run, points)
    for teacher in teachers:
        budget = teacher["student_epochs"] * teacher["gism_cost"] if teacher["gism_cost"] else None
        at = interpolate(points, budget) if budget else None
        teacher["headroom_points"] = None if at is None else 100 * (teacher["map50_95"] - at)
        teacher["gism_budget_epochs"] = budget
    return {
        "seed": SEED,
        "vanilla": [{"epochs": epochs, **value} for epochs, value in vanilla.items()],
        "frontier_falls": falls,
        "distilled": sorted(distilled, key=lambda r: r["budget_epochs"]),
        "cost_not_measured": unmeasured,
        "cost_files": cost_files,
        "teachers": teachers,
    }


def place(run: dict, points: list[tuple[float, float]]) -> None:
    """A distilled run's budget, its distance to the frontier there, and the two halves of that verdict: what the
    teacher gave at equal epochs, and what the same extra time gives a vanilla student without one (points)."""
    def points_between(high, low):
        return None if high is None or low is None else 100 * (high - low)

    run["budget_epochs"] = run["epochs"] * run["cost"]
    run["worth_epochs"] = reach(points, run["map50_95"])  # what the run's mAP takes a vanilla student
    run["vanilla_at_budget"] = interpolate(points, run["budget_epochs"])
    run["vanilla_at_epochs"] = interpolate(points, run["epochs"])
    run["ahead_points"] = points_between(run["map50_95"], run["vanilla_at_budget"])
    run["gain_at_equal_epochs_points"] = points_between(run["map50_95"], run["vanilla_at_epochs"])
    run["extra_time_buys_points"] = points_between(run["vanilla_at_budget"], run["vanilla_at_epochs"])


def markdown_block(report: dict) -> str:
    lines = [f"Written by `{report['command']}` into "
             f"[`bench/results/{report['name']}.json`](bench/results/{report['name']}.json) from the "
             f"committed run records and cost measurements of {', '.join(report['protocols'])} (seed {report['seed']}).",
             "", "Training longer, no teacher (the frontier): " + ", ".join(
                 f"{v['epochs']} epochs {v['map50_95']:.4f}" for v in report["vanilla"]) + ".", "",
             "| run | teacher epochs | epochs | epoch cost (× vanilla) | budget (vanilla epochs) | mAP50-95 | "
             "vanilla at that budget | gain over vanilla at equal epochs | what the extra time buys vanilla | "
             "ahead of training longer (points) | worth (vanilla epochs to the same mAP) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    points = lambda value: f"{value:+.2f}" if value is not None else "–"  # noqa: E731
    worth = lambda r: f"{r['worth_epochs']:.0f}" if r["worth_epochs"] is not None else "–"  # noqa: E731
    for r in report["distilled"]:
        at = f"{r['vanilla_at_budget']:.4f}" if r["vanilla_at_budget"] is not None else "outside the vanilla runs"
        lines.append(f"| {r['protocol']}/{r['method']} | {r['teacher_epochs']} | {r['epochs']} | {r['cost']:.2f} | "
                     f"{r['budget_epochs']:.0f} | {r['map50_95']:.4f} | {at} | "
                     f"{points(r['gain_at_equal_epochs_points'])} | {points(r['extra_time_buys_points'])} | "
                     f"{points(r['ahead_points'])} | {worth(r)} |")
    for fall in report.get("frontier_falls", []):
        lines += ["", f"The frontier falls from {fall['from_epochs']} to {fall['to_epochs']} epochs "
                  f"({fall['points']:+.2f} points): each schedule is one seed, and schedules differ by seed noise, so a "
                  f"verdict at a budget in between, or within that many points of the frontier, is noise."]
    lines += ["", "Epoch costs from " + ", ".join(f"[`{f}`]({f})" for f in report["cost_files"]) + "."]
    beaten = [r for r in report["distilled"] if (r["ahead_points"] or 0) > 0]
    lines += [f"Runs above the frontier: {len(beaten)} of {len(report['distilled'])}"
              + (f" ({', '.join(r['protocol'] + '/' + r['method'] for r in beaten)})" if beaten else "") + "."]
    for t in report["teachers"]:
        if t["headroom_points"] is not None:
            lines.append(f"Headroom of the {t['model'].removesuffix('.yaml')} teacher trained {t['epochs']} epochs "
                         f"({t['map50_95']:.4f}), for {t['student_epochs']}-epoch students: its mAP minus the "
                         f"vanilla frontier at GISM's budget ({t['gism_budget_epochs']:.0f} epochs): "
                         f"{t['headroom_points']:+.2f} points.")
    if report["cost_not_measured"]:
        lines.append("Not placed (epoch cost not measured): " + ", ".join(
            f"{r['protocol']}/{r['method']}" for r in report["cost_not_measured"]) + ".")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([v["epochs"] for v in report["vanilla"]], [v["map50_95"] for v in report["vanilla"]], "k-o",
            label="vanilla, trained longer")
    for r in report["distilled"]:
        ax.scatter(r["budget_epochs"], r["map50_95"], zorder=3)
        ax.annotate(f"{r['protocol']}/{r['method']}", (r["budget_epochs"], r["map50_95"]), fontsize=7,
                    xytext=(4, -3), textcoords="offset points")
    for t in report["teachers"]:
        ax.axhline(t["map50_95"], ls=":", lw=0.8, color="grey")
        ax.annotate(f"teacher {t['epochs']} ep", (ax.get_xlim()[0], t["map50_95"]), fontsize=7, color="grey")
    ax.set_xlabel("training budget (vanilla-epoch equivalents)")
    ax.set_ylabel("val mAP50-95")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def publish(script: str, argv: list[str], analyse, name: str, title: str, draw) -> dict:
    """Read the protocols named by `protocols=` (default: DEFAULT_PROTOCOLS) with `analyse`, and write the reading as
    bench/results/<name>.json/.md/.png and the README block <name>; `draw` is the reading's own module (its
    markdown_block and plot). `suffix=S` names the outputs <name>_S, so a reading of other protocols (another data
    set) sits beside the default one instead of overwriting it."""
    args = dict(a.split("=", 1) for a in argv)
    paths = args["protocols"].split(",") if "protocols" in args else DEFAULT_PROTOCOLS
    if "suffix" in args:
        name = f"{name}_{args['suffix']}"
    report = {"command": " ".join([f"python bench/{script}", *argv]), "name": name, "protocols": paths,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "environment": distill_gain.environment(), **analyse(load(paths))}
    stem = distill_gain.RESULTS / name
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    block = draw.markdown_block(report)
    stem.with_suffix(".md").write_text(f"# {title}\n\n{block}\n")
    draw.plot(report, stem.with_suffix(".png"))
    replace_block(ROOT / "README.md", name, block)
    print(block)
    return report


def main(argv: list[str]) -> dict:
    return publish("gain_frontier.py", argv, frontier, "distill_gain_frontier", "Distillation against training longer",
                   sys.modules[__name__])


if __name__ == "__main__":
    main(sys.argv[1:])
