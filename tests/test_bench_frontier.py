"""The budget comparison: distilled runs against vanilla runs trained longer, on one axis of vanilla epochs."""

import json
import shutil
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_frontier_is_interpolated_between_vanilla_runs_and_never_extrapolated(frontier):
    points = [(100, 0.20), (150, 0.25), (50, 0.10)]
    assert frontier.interpolate(points, 125) == pytest.approx(0.225)
    assert frontier.interpolate(points, 50) == pytest.approx(0.10)
    assert frontier.interpolate(points, 75) == pytest.approx(0.15)
    assert frontier.interpolate(points, 151) is None and frontier.interpolate(points, 49) is None


def test_a_run_is_worth_the_first_vanilla_epochs_that_reach_its_map(frontier):
    points = [(50, 0.10), (100, 0.20), (150, 0.19), (200, 0.30)]  # the frontier dips: the first crossing counts
    assert frontier.reach(points, 0.15) == pytest.approx(75)
    assert frontier.reach(points, 0.195) == pytest.approx(50 + 50 * 0.095 / 0.10)  # not 125 or 100 + 5, later
    assert frontier.reach(points, 0.25) == pytest.approx(150 + 50 * 0.06 / 0.11)
    assert frontier.reach(points, 0.10) == 50
    assert frontier.reach(points, 0.05) is None and frontier.reach(points, 0.31) is None


def _record(results, protocol, method, epochs, value, seed=0):
    folder = results / "distill_gain_runs" / protocol / method / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"map50_95": value, "seed": seed, "epochs": epochs,
                                                     "method": method}))


def test_distilled_runs_are_placed_at_their_measured_cost_and_the_teacher_gives_the_headroom(frontier, monkeypatch,
                                                                                            tmp_path):
    monkeypatch.setattr(frontier.distill_gain, "RESULTS", tmp_path)
    _record(tmp_path, "cpu_long", "teacher", 100, 0.27)
    _record(tmp_path, "cpu_long", "vanilla", 100, 0.20)
    _record(tmp_path, "cpu_long", "vanilla_time_matched", 150, 0.23)
    _record(tmp_path, "cpu_long", "gism", 100, 0.22)
    _record(tmp_path, "cpu_long", "ablation_kd_every4", 100, 0.21)
    _record(tmp_path, "cpu_long", "ablation_assign_only", 100, 0.205)
    _record(tmp_path, "cpu_long", "vanilla", 100, 0.90, seed=1)  # another seed: not on this seed-0 axis
    _record(tmp_path, "cpu_converged", "vanilla", 150, 0.25)  # two runs at 150 epochs: their mean, 0.24
    _record(tmp_path, "cpu_converged", "vanilla_time_matched", 200, 0.26)
    reused = tmp_path / "distill_gain_runs" / "cpu_converged" / "vanilla_time_matched_x" / "seed0" / "metrics.json"
    reused.parent.mkdir(parents=True)  # a copy of cpu_long's 150-epoch run, as `base:` reuse writes it
    reused.write_text(json.dumps({"map50_95": 0.23, "seed": 0, "epochs": 150, "method": "vanilla_time_matched_x",
                                  "reused_from": "distill_gain_runs/cpu_long/vanilla_time_matched/seed0"}))
    _record(tmp_path, "cpu_converged", "gism", 150, 0.255)
    (tmp_path / "distill_gain_runs" / "cpu_long" / "cost.json").write_text(json.dumps(
        {"gism_vs_vanilla": 1.4, "methods": {"ablation_kd_every4": {"vs_vanilla": 1.1}}}))

    protocols = frontier.load(["cfg/distill_gain_cpu_long.yaml", "cfg/distill_gain_cpu_converged.yaml"])
    got = frontier.frontier(protocols)
    assert [(v["epochs"], round(v["map50_95"], 4)) for v in got["vanilla"]] == [(100, 0.2), (150, 0.24), (200, 0.26)]
    assert len(got["vanilla"][1]["runs"]) == 2  # the reused copy is the same run, counted once
    runs = {f"{r['protocol']}/{r['method']}": r for r in got["distilled"]}
    # 100 epochs at 1.1x = 110 vanilla epochs, where the frontier is 0.20 + 0.04 * 10/50 = 0.208
    assert runs["cpu_long/ablation_kd_every4"]["ahead_points"] == pytest.approx(100 * (0.21 - 0.208))
    # 100 x 1.4 = 140: 0.20 + 0.04 * 40/50 = 0.232
    assert runs["cpu_long/gism"]["ahead_points"] == pytest.approx(100 * (0.22 - 0.232))
    # 150 x 1.4 = 210 lies beyond the longest vanilla run: no verdict rather than an extrapolated one
    assert runs["cpu_converged/gism"]["ahead_points"] is None
    assert [r["method"] for r in got["cost_not_measured"]] == ["ablation_assign_only"]
    headroom = {t["student_epochs"]: t["headroom_points"] for t in got["teachers"]}
    assert headroom[100] == pytest.approx(100 * (0.27 - 0.232)) and headroom[150] is None

    report = {"command": "c", "name": "distill_gain_frontier", "protocols": ["a"], **got}
    assert got["cost_files"] == ["bench/results/distill_gain_runs/cpu_long/cost.json"]
    text = frontier.markdown_block(report)
    # +2.00 over the 100-epoch vanilla run, whose 40 % more time buys it +3.20 instead: 1.20 behind
    # worth: 0.22 is reached at 100 + 50 * 0.02 / 0.04 = 125 vanilla epochs, less than the 140 it cost
    assert runs["cpu_long/gism"]["worth_epochs"] == pytest.approx(125)
    assert runs["cpu_converged/gism"]["worth_epochs"] == pytest.approx(150 + 50 * 0.015 / 0.02)
    assert "| cpu_long/gism | 100 | 100 | 1.40 | 140 | 0.2200 | 0.2320 | +2.00 | +3.20 | -1.20 | 125 |" in text
    assert "into [`bench/results/distill_gain_frontier.json`](bench/results/distill_gain_frontier.json)" in text
    assert ("| cpu_converged/gism | 100 | 150 | 1.40 | 210 | 0.2550 | outside the vanilla runs | +1.50 | – | – | 188 |"
            in text)
    assert "Runs above the frontier: 1 of 3 (cpu_long/ablation_kd_every4)." in text


def test_a_frontier_that_falls_between_schedules_is_flagged_as_seed_noise(frontier, monkeypatch, tmp_path):
    monkeypatch.setattr(frontier.distill_gain, "RESULTS", tmp_path)
    _record(tmp_path, "cpu_long", "vanilla", 100, 0.20)
    _record(tmp_path, "cpu_long", "vanilla_time_matched", 150, 0.19)  # longer, yet lower: one seed per schedule
    _record(tmp_path, "cpu_long", "vanilla_time_matched_x", 200, 0.23)
    got = frontier.frontier(frontier.load(["cfg/distill_gain_cpu_long.yaml"]))
    assert got["frontier_falls"] == [{"from_epochs": 100, "to_epochs": 150, "points": pytest.approx(-1.0)}]
    text = frontier.markdown_block({"command": "c", "name": "n", "protocols": ["a"], **got})
    assert "The frontier falls from 100 to 150 epochs (-1.00 points)" in text
    shutil.rmtree(tmp_path / "distill_gain_runs" / "cpu_long" / "vanilla_time_matched")
    _record(tmp_path, "cpu_long", "vanilla_time_matched", 150, 0.215)  # rising all the way: nothing said
    got = frontier.frontier(frontier.load(["cfg/distill_gain_cpu_long.yaml"]))
    assert got["frontier_falls"] == []
    assert "falls" not in frontier.markdown_block({"command": "c", "name": "n", "protocols": ["a"], **got})


def test_protocols_with_another_recipe_do_not_share_the_axis(frontier):
    with pytest.raises(ValueError, match="train_args differ from cfg/distill_gain_cpu_long.yaml"):
        frontier.load(["cfg/distill_gain_cpu_long.yaml", "cfg/distill_gain_cpu_nbs64.yaml"])


def test_gism_cost_timed_beside_the_other_methods_comes_first(frontier, monkeypatch, tmp_path):
    gain = frontier.distill_gain
    monkeypatch.setattr(gain, "RESULTS", tmp_path)
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    cost = {"gism_vs_vanilla": 1.5, "methods": {"builtin": {"vs_vanilla": 1.7}}}
    gain.cost_file(protocol).parent.mkdir(parents=True)
    gain.cost_file(protocol).write_text(json.dumps(cost))
    assert gain.cost_ratio(protocol, "gism") == 1.5 and gain.cost_ratio(protocol, "builtin") == 1.7
    cost["methods"]["gism"] = {"vs_vanilla": 1.4}
    gain.cost_file(protocol).write_text(json.dumps(cost))
    assert gain.cost_ratio(protocol, "gism") == 1.4 and gain.cost_ratio(protocol, "ablation_x") is None
    protocol["cost_as"] = {"ablation_x": "builtin"}  # declared to compute exactly what the built-in does
    assert gain.cost_ratio(protocol, "ablation_x") == 1.7


def _publishing_into(tmp_path, monkeypatch, frontier, readme_text: str) -> Path:
    """Results and README under tmp_path; the README holds readme_text."""
    monkeypatch.setattr(frontier.distill_gain, "RESULTS", tmp_path)
    monkeypatch.setattr(frontier, "ROOT", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(readme_text)
    return readme


def test_publish_writes_the_json_markdown_plot_and_only_its_own_readme_block(frontier, monkeypatch, tmp_path):
    readme = _publishing_into(tmp_path, monkeypatch, frontier,
                              "intro\n<!-- x results: start -->\nold\n<!-- x results: end -->\n"
                              "<!-- y results: start -->\nkept\n<!-- y results: end -->\n")
    plotted = []
    draw = types.SimpleNamespace(markdown_block=lambda report: f"{report['rows']} rows",
                                 plot=lambda report, path: plotted.append(path))

    read = []
    monkeypatch.setattr(frontier, "load", lambda paths: read.append(paths) or ["loaded"])
    analyse = lambda protocols: {"rows": 3, "analysed": protocols}  # noqa: E731

    report = frontier.publish("s.py", ["protocols=p.yaml,q.yaml"], analyse, "x", "Title", draw)

    assert read == [["p.yaml", "q.yaml"]] and report["analysed"] == ["loaded"]
    assert report["command"] == "python bench/s.py protocols=p.yaml,q.yaml"
    assert report["protocols"] == ["p.yaml", "q.yaml"] and report["name"] == "x"
    assert json.loads((tmp_path / "x.json").read_text())["rows"] == 3
    assert (tmp_path / "x.md").read_text() == "# Title\n\n3 rows\n"
    assert plotted == [tmp_path / "x.png"]
    assert readme.read_text() == ("intro\n<!-- x results: start -->\n3 rows\n<!-- x results: end -->\n"
                                  "<!-- y results: start -->\nkept\n<!-- y results: end -->\n")


def test_a_suffix_writes_beside_the_default_reading_instead_of_over_it(frontier, monkeypatch, tmp_path):
    readme = _publishing_into(tmp_path, monkeypatch, frontier,
                              "<!-- x results: start -->\nold\n<!-- x results: end -->\n"
                              "<!-- x_small results: start -->\nold\n<!-- x_small results: end -->\n")
    monkeypatch.setattr(frontier, "load", lambda paths: paths)
    draw = types.SimpleNamespace(markdown_block=lambda report: "new", plot=lambda report, path: None)

    frontier.publish("s.py", ["protocols=p.yaml", "suffix=small"], lambda protocols: {}, "x", "Title", draw)

    assert sorted(p.name for p in tmp_path.glob("x*")) == ["x_small.json", "x_small.md"]
    assert readme.read_text() == ("<!-- x results: start -->\nold\n<!-- x results: end -->\n"
                                  "<!-- x_small results: start -->\nnew\n<!-- x_small results: end -->\n")
