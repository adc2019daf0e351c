"""Distillation's lead over its vanilla twin, epoch by epoch, against the vanilla runs' own spread."""

import json

import pytest


def test_the_window_is_a_centred_mean_cut_at_the_curve_ends(over_epochs):
    curve = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert over_epochs.windowed(curve, 3) == pytest.approx((0.1 + 0.2 + 0.3 + 0.4 + 0.5) / 5)
    assert over_epochs.windowed(curve, 1) == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert over_epochs.windowed(curve, 6) == pytest.approx((0.4 + 0.5 + 0.6) / 3)
    assert over_epochs.windowed(curve, 7) is None


def _record(results, protocol, method, curve, seed=0, **extra):
    folder = results / "distill_gain_runs" / protocol / method / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"map50_95": curve[-1], "seed": seed, "epochs": len(curve),
                                                     "method": method, "curve_map50_95": curve, **extra}))


def test_leads_are_against_the_same_seed_twin_and_reused_runs_count_once(over_epochs, monkeypatch, tmp_path):
    monkeypatch.setattr(over_epochs.distill_gain, "RESULTS", tmp_path)
    flat = lambda value, n: [value] * n  # noqa: E731
    _record(tmp_path, "cpu_long", "vanilla", flat(0.20, 100))
    _record(tmp_path, "cpu_long", "vanilla", flat(0.30, 100), seed=1)
    _record(tmp_path, "cpu_long", "vanilla_time_matched", flat(0.18, 10) + flat(0.25, 140))
    _record(tmp_path, "cpu_long", "gism", flat(0.21, 100))
    _record(tmp_path, "cpu_long", "gism", flat(0.33, 100), seed=1)
    _record(tmp_path, "cpu_long", "ablation_same_as_gism", flat(0.21, 100))  # a copy of gism seed 0: skipped
    _record(tmp_path, "cpu_long", "teacher", flat(0.5, 100))  # the teacher is not a distilled run
    _record(tmp_path, "cpu_converged", "vanilla", flat(0.20, 10) + flat(0.24, 140))
    _record(tmp_path, "cpu_converged", "gism", flat(0.19, 10) + flat(0.26, 140))

    report = over_epochs.analyse(over_epochs.gain_frontier.load(
        ["cfg/distill_gain_cpu_long.yaml", "cfg/distill_gain_cpu_converged.yaml"]))
    rows = {f"{r['protocol']}/{r['method']}": r for r in report["distilled"]}
    assert sorted(rows) == ["cpu_converged/gism", "cpu_long/gism"]
    # seed 0: +1 point over its twin, seed 1: +3: the mean over seeds
    assert rows["cpu_long/gism"]["seeds"] == [0, 1]
    assert rows["cpu_long/gism"]["lead_points"]["50"] == pytest.approx(2.0)
    assert "150" not in rows["cpu_long/gism"]["lead_points"]
    # at epoch 10 the window spans epochs 8-12: three at 0.19 - 0.20, two at 0.26 - 0.24 over five epochs
    assert rows["cpu_converged/gism"]["lead_points"]["10"] == pytest.approx(100 * (3 * -0.01 + 2 * 0.02) / 5)
    assert rows["cpu_converged/gism"]["lead_at_end_points"] == pytest.approx(2.0)
    spread = {s["epoch"]: s for s in report["vanilla_spread"]}
    # epoch 50: four vanilla runs (0.20, 0.30, 0.25, 0.24); epoch 150: two left, no range from one run
    assert spread[50]["runs"] == 4 and spread[50]["range_points"] == pytest.approx(10.0)
    assert spread[150]["runs"] == 2 and spread[150]["range_points"] == pytest.approx(1.0)
    # the seeds' own range, per schedule length of the distilled runs: the two 100-epoch vanilla runs (0.20, 0.30)
    # without the longer schedules; at 150 epochs, the third protocol's time-matched run and the fourth's vanilla
    seeds = {row["epochs"]: row["spread"] for row in report["vanilla_seed_spread"]}
    assert sorted(seeds) == [100, 150]
    assert [s["epoch"] for s in seeds[100]] == [10, 25, 50, 75, 100]
    assert seeds[100][2]["runs"] == 2 and seeds[100][2]["range_points"] == pytest.approx(10.0)
    assert seeds[150][-1]["runs"] == 2 and seeds[150][-1]["range_points"] == pytest.approx(1.0)

    assert report["checkpoints"] == [10, 25, 50, 75, 100, 125, 150]  # up to the longest distilled run
    text = over_epochs.markdown_block({"command": "c", "name": "over_small", "protocols": ["a"], **report})
    assert "into [`bench/results/over_small.json`](bench/results/over_small.json)" in text
    assert "| cpu_long/gism (100 epochs) | 0,1 | +2.00 | +2.00 | +2.00 | +2.00 | +2.00 | – | – | +2.00 |" in text
    assert "| vanilla runs' range (how many) | – |" in text
    assert ("| vanilla seeds' range, 100-epoch schedule (how many) | – | 10.00 (2) | 10.00 (2) | 10.00 (2) | 10.00 (2)"
            " | 10.00 (2) | – | – | – |") in text
