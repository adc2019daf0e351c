"""The gain benchmark's report plumbing: the README section is written from the report and nothing else."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _report(vanilla_curve, complete=False):
    summary = {
        "vanilla": {"map50_95_mean": 0.1, "map50_95_std": 0.004, "seeds": [0, 1], "epochs": 50, "gap_closed": 0.0},
        "gism": {"map50_95_mean": 0.13, "map50_95_std": 0.0, "seeds": [0], "epochs": 50, "gap_closed": 0.6},
    }
    ablation = {"map50_95_mean": 0.105, "map50_95_std": 0.0, "seeds": [0], "epochs": 50}
    return {"command": "python bench/distill_gain.py steps=report", "summary": summary,
            "all_methods": {**summary, "ablation_feat_only": ablation, "builtin_dis2": ablation},
            "protocol": {"report": "distill_gain", "ablations": {"feat_only": {"kd_cls": False, "selection": "none"}}},
            "runs": {"vanilla": [{"seed": 1, "map50_95": 0.2}, {"seed": 0, "map50_95": 0.1}]},
            "vanilla_curves": {0: vanilla_curve}, "complete": complete, "goals": {}}


def test_readme_block_is_replaced_from_the_report_and_rerunning_changes_nothing(gain, tmp_path):
    readme = tmp_path / "README.md"
    from readme_block import markers  # bench/ is on sys.path once the gain module is loaded

    start, end = markers("distill_gain")
    readme.write_text(f"intro\n{start}\nold numbers\n{end}\noutro\n")
    report = _report([0.01 * i for i in range(1, 21)])
    gain.update_readme(report, readme)
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| vanilla | 0.1000 ± 0.0040 | 0,1 | 50 | 0.00 |" in text
    assert "| gism | 0.1300 (one seed) | 0 | 50 | 0.60 |" in text
    assert "(vanilla_time_matched, builtin not run at all)" in text
    assert "| feat_only | kd_cls=False, selection=none | 0.1050 | +0.50 |" in text  # against vanilla's seed 0
    assert "| builtin_dis2 | built-in, dis=2 | 0.1050 | +0.50 |" in text
    gain.update_readme(report, readme)
    assert readme.read_text() == text


def test_each_protocol_reports_to_its_own_files_and_readme_block(gain):
    load = lambda name: gain.load_protocol(str(ROOT / "cfg" / name))  # noqa: E731
    assert gain.report_name(load("distill_gain_cpu.yaml")) == "distill_gain"  # the file the gain issue asks for
    assert gain.report_name(load("distill_gain_cpu_nbs64.yaml")) == "distill_gain_cpu_nbs64"
    assert gain.report_name(load("distill_gain_gpu.yaml")) == "distill_gain_gpu_v8"  # from its name


def test_readme_without_markers_is_left_alone(gain, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    gain.update_readme(_report([0.1] * 20), readme)
    assert readme.read_text() == "no block here\n"


def test_convergence_verdict_uses_the_last_tenth_of_the_curve(gain):
    # 20 epochs: the last tenth is 2 epochs, so the windows are 2 epochs wide: mean(epochs 19, 20) - mean(17, 18)
    flat = [0.05] * 16 + [0.100, 0.1000, 0.1004, 0.1006]  # (0.1004 + 0.1006)/2 - 0.100 = +0.05 points
    rising = [0.05] * 16 + [0.100, 0.102, 0.110, 0.112]  # 0.111 - 0.101 = +1.0 point
    assert "+0.05 points" in gain.convergence_line(_report(flat)) and "stopped improving" in gain.convergence_line(
        _report(flat))
    assert "+1.00 points" in gain.convergence_line(_report(rising)) and "still rising" in gain.convergence_line(
        _report(rising))
    assert "Training longer" not in gain.convergence_line(_report(flat))  # no time-matched run yet
    report = _report(flat)
    report["summary"]["vanilla_time_matched"] = {"map50_95_mean": 0.125, "seeds": [0], "epochs": 83}
    assert ("Training longer instead: 83 epochs scored +2.50 points over 50 (seeds 0 against 0,1)"
            in gain.convergence_line(report))


def test_last_tenth_gain_compares_five_epoch_means(gain):
    # 100 epochs: the tenth is 10 epochs; mean(epochs 96-100) - mean(epochs 86-90), not epoch 100 - epoch 90
    curve = [0.0] * 85 + [0.10, 0.10, 0.10, 0.10, 0.20] + [0.0] * 5 + [0.30, 0.30, 0.30, 0.30, 0.10]
    assert gain.gain_last_tenth(curve) == pytest.approx(0.26 - 0.12)
    assert curve[-1] - curve[-11] == pytest.approx(-0.10)  # what the single-epoch reading would have said
    assert gain.gain_last_tenth([0.1]) is None  # one epoch: nothing before it to compare with
    assert gain.gain_last_tenth([0.1, 0.2]) == pytest.approx(0.1)  # 2 epochs: windows of one


def test_goals_follow_the_issue_and_say_when_unmeasured(gain):
    def method(mean, std, gap=None, seeds=(0, 1, 2)):
        return {"map50_95_mean": mean, "map50_95_std": std, "gap_closed": gap, "seeds": list(seeds)}

    summary = {"vanilla": method(0.100, 0.002), "builtin": method(0.112, 0.002), "gism": method(0.125, 0.003, 0.55)}
    g = gain.goals(summary)
    assert g["gism_vs_vanilla_at_least_2_points"] is True  # +2.5 points
    assert g["gism_vs_builtin_at_least_1_point"] is True  # +1.3 points
    assert g["gism_mean_minus_std_above_builtin_mean_plus_std"] is True  # 0.122 > 0.114
    assert g["gism_above_time_matched_vanilla"] is None  # not run
    assert g["gism_closes_half_the_gap"] is True
    summary["gism"] = method(0.118, 0.005, 0.4)
    g = gain.goals(summary)
    assert g["gism_vs_vanilla_at_least_2_points"] is False  # +1.8 points
    assert g["gism_vs_builtin_at_least_1_point"] is False  # +0.6 points
    assert g["gism_mean_minus_std_above_builtin_mean_plus_std"] is False  # 0.113 is not above 0.114
    assert g["gism_closes_half_the_gap"] is False
    summary["builtin"] = method(0.100, 0.0, seeds=[0])  # one seed: no spread to compare, whatever the means
    assert gain.goals(summary)["gism_mean_minus_std_above_builtin_mean_plus_std"] is None


def test_the_goals_show_the_figures_behind_each_verdict(gain):
    def method(mean, std, gap=None):
        return {"map50_95_mean": mean, "map50_95_std": std, "gap_closed": gap, "seeds": [0, 1, 2], "epochs": 50}

    summary = {"vanilla": method(0.1546, 0.0039, 0.0), "builtin": method(0.1808, 0.0010),
               "gism": method(0.1969, 0.0056, (0.1969 - 0.1546) / (0.2402 - 0.1546)), "teacher": method(0.2402, 0.0)}
    report = {**_report([0.1] * 20), "summary": summary, "goals": gain.goals(summary)}
    lines = gain.goal_lines(report)
    assert "- gism vs vanilla at least 2 points: met (+4.23 points)" in lines  # (0.1969 - 0.1546) x 100
    assert "- gism vs builtin at least 1 point: met (+1.61 points)" in lines
    assert "- gism mean minus std above builtin mean plus std: met (0.1913 against 0.1818)" in lines
    assert "- gism above time matched vanilla: not measured yet" in lines  # no figures without the run
    half = (0.1546 + 0.2402) / 2  # 0.1974: the score that closes exactly half of the teacher-student gap
    assert f"- gism closes half the gap: **not met** (49.42 % of the gap; half is {half:.4f})" in lines
    summary["vanilla_time_matched"] = method(0.1630, 0.0020)
    report["goals"] = gain.goals(summary)
    assert ("- gism above time matched vanilla: met (0.1969 against 0.1630, +3.39 points)"
            in gain.goal_lines(report))
    block = "\n".join(gain.goal_lines(report))
    report["protocol"]["name"] = "cpu"
    assert block in gain.readme_section(report) and block in gain.markdown({**report, "all_methods": {}})


def test_changed_gism_default_makes_the_old_record_stale(gain, monkeypatch, tmp_path):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    spec = gain.specs(protocol)["gism"]
    record = {"epochs": spec["epochs"], "settings": gain.settings(spec)}
    assert gain.is_current(record, spec)
    assert record["settings"]["gism"]["selection"] == "conf" and "teacher" not in record["settings"]["gism"]
    assert gain.is_current({"epochs": spec["epochs"]}, spec)  # records from before settings were kept
    older = json.loads(json.dumps(record))
    del older["settings"]["gism"]["cls_gain"]
    assert gain.is_current(older, spec)  # a key added since, read as it ran (1.0), which is still its default
    del older["settings"]["gism"]["feat_gain"]
    assert not gain.is_current(older, spec)  # feat_gain ran at 1.0 before it existed; its default is 72 now
    assert not gain.is_current({**record, "epochs": spec["epochs"] + 1}, spec)
    assert not gain.is_current(record, {**spec, "selection": "gi"})  # a protocol override
    defaults = tmp_path / "gism.yaml"
    defaults.write_text((ROOT / "cfg" / "gism.yaml").read_text().replace("temperature: 2.0", "temperature: 3.0"))
    monkeypatch.setattr("yolo_gism.config.default_yaml_path", lambda: defaults)
    assert not gain.is_current(record, spec)  # a changed default in cfg/gism.yaml


def test_a_record_from_before_a_key_reads_as_it_ran_not_as_the_current_default(gain):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    spec = gain.specs(protocol)["gism"]
    record = {"epochs": spec["epochs"], "settings": gain.settings(spec)}
    older = json.loads(json.dumps(record))
    del older["settings"]["gism"]["feature_layers"]  # trained before feature_layers existed: on the neck maps
    assert gain.recorded_settings(older)["gism"]["feature_layers"] == "neck"
    assert gain.settings(spec)["gism"]["feature_layers"] == "stride4+backbone+neck"  # the default since 2026-12-07
    assert gain.is_current(record, spec)
    assert not gain.is_current(older, spec)  # so the old run is not taken for one of the new default


def test_every_key_added_since_the_first_records_has_its_old_value(gain):
    from yolo_gism.config import GISMConfig

    # the keys GISM had when benchmark records first stored their settings (2026-12-02); any later one needs an entry
    first = {"temperature", "alpha", "kd_gain", "kd_warmup", "kd_ramp", "kd_stop", "kd_feat", "kd_cls", "kd_box",
             "level_weighting", "feat_norm", "adapter", "selection", "assign", "gi_topk", "gi_iou", "student_layers",
             "teacher_layers", "class_map", "teacher_dtype", "teacher"}
    assert set(GISMConfig.keys()) - first == set(gain.VALUE_BEFORE_KEY_EXISTED)


def test_interrupted_gism_run_resumes_only_with_its_own_settings(gain, tmp_path):
    import torch

    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    spec = gain.specs(protocol)["ablation_feat_only"]
    (tmp_path / "weights").mkdir()
    assert gain._resumable(tmp_path, gain.settings(spec))  # nothing saved yet
    saved = {**gain.settings(spec)["gism"], "teacher": "t.pt"}
    del saved["feature_layers"]  # a state written before this key existed resumes as it ran: on the neck maps
    torch.save({"config": saved}, tmp_path / "weights" / "gism_last.pt")
    assert gain._resumable(tmp_path, gain.settings(spec))
    assert not gain._resumable(tmp_path, gain.settings({**spec, "kd_cls": True}))


def test_stop_file_and_only_choose_what_runs(gain, monkeypatch, tmp_path):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    with pytest.raises(ValueError, match="only=ablation_nope: not in the protocol"):
        gain.main(["steps=ablations,main", "only=ablation_nope,gism"])
    started = []
    monkeypatch.setattr(gain.subprocess, "run", lambda *a, **k: started.append(a) or gain.subprocess.CompletedProcess(a, 1))
    monkeypatch.setattr(gain, "teacher_ready", lambda *a: True)
    gain.stop_file(protocol).parent.mkdir(parents=True)
    gain.stop_file(protocol).touch()
    gain.step_ablations(protocol, ["ablation_feat_only"])
    assert started == []  # STOP: no new run
    gain.stop_file(protocol).unlink()
    gain.step_ablations(protocol, ["ablation_feat_only"])
    assert len(started) == 1 and "ablation_feat_only" in started[0][0][-1]  # only the chosen one
    started.clear()
    gain.step_main(protocol, [1, 2], ["gism"])  # main methods too: gism's seeds, not vanilla's or the built-in's
    assert [json.loads(a[0][-1])["method"] for a in started] == ["gism", "gism"]


def test_protocol_processes_started_together_generate_the_data_once_and_never_read_it_half_written(
        gain, monkeypatch, tmp_path):
    # Two protocol processes (one per core) once both generated the data: one rewrote the validation images
    # while the other had scanned 23 of its 150. Now one generates while the other waits for data.yaml.
    import threading

    import yolo_gism.data

    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    generated = []

    def fake_make_dataset(out, **kwargs):
        generated.append(out)
        (out / "data.yaml").write_text("path: x\n")

    monkeypatch.setattr(yolo_gism.data, "make_dataset", fake_make_dataset)
    out = gain.RUNS / gain.home(protocol) / "data_{train}_{val}_{imgsz}_{seed}".format(**protocol["data"])
    out.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])  # a live process holding the data's lock
    (out.parent / f".{out.name}.lock").write_text(str(other.pid))
    got = []
    waiter = threading.Thread(target=lambda: got.append(gain.dataset(protocol)), daemon=True)
    try:
        waiter.start()
        waiter.join(timeout=2.5)
        assert waiter.is_alive() and generated == []  # waits, generates nothing while the other holds the lock
    finally:
        other.kill()
        other.wait()
    waiter.join(timeout=10)
    assert generated == [out] and got == [out / "data.yaml"]  # the holder died before finishing: this one generates
    assert not (out.parent / f".{out.name}.lock").exists()
    assert gain.dataset(protocol) == out / "data.yaml" and generated == [out]  # once there, never again


def test_a_run_with_the_same_settings_and_seed_is_reused_not_retrained(gain, monkeypatch, tmp_path):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain.subprocess, "run", lambda *a, **k: pytest.fail("nothing should be trained"))
    spec = gain.specs(protocol)["gism"]
    twin = gain.record_dir(protocol, "ablation_feat_cls", 0)
    twin.mkdir(parents=True)
    (twin / "metrics.json").write_text(json.dumps({"map50_95": 0.12, "seed": 0, "epochs": spec["epochs"],
                                                   "method": "ablation_feat_cls", "settings": gain.settings(spec)}))
    (twin / "results.csv").write_text("epoch\n1\n")
    got = gain.ensure(protocol, "gism", 0, spec)
    assert got["map50_95"] == 0.12 and got["method"] == "gism" and got["reused_from"].endswith("ablation_feat_cls/seed0")
    assert (gain.record_dir(protocol, "gism", 0) / "results.csv").read_text() == "epoch\n1\n"
    assert gain.identical_record(protocol, spec, 1) is None  # another seed is another run
    assert gain.identical_record(protocol, {**spec, "kd_cls": False}, 0) is None


def test_training_time_adds_the_segments_of_a_resumed_run(gain):
    # results.csv's time column restarts at zero when a run is resumed (here after epoch 3)
    times = [80.0, 165.0, 250.0, 98.0, 180.0]
    assert gain.training_seconds(times) == pytest.approx(250.0 + 180.0)
    assert gain.training_seconds([80.0, 165.0, 250.0]) == pytest.approx(250.0)


def test_time_matched_epochs_come_from_the_cost_measurement(gain, tmp_path, monkeypatch):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    monkeypatch.setattr(gain, "RESULTS", tmp_path)
    cost = gain.cost_file(protocol)
    cost.parent.mkdir(parents=True)
    cost.write_text(json.dumps({"gism_vs_vanilla": 1.3}))
    protocol["gism"] = {"assign": "student", "kd_warmup": 3}  # 3 epochs GISM trains without the teacher
    epochs = protocol["student"]["epochs"]
    assert gain.time_matched_epochs(protocol) == round(3 + (epochs - 3) * 1.3)
    protocol["gism"] = {"assign": "teacher", "kd_warmup": 3}  # the teacher assigns labels from the first batch
    assert gain.time_matched_epochs(protocol) == round(epochs * 1.3)


def test_tune_sweep_is_recorded_per_pair_and_reused_until_its_settings_change(gain, monkeypatch, tmp_path):
    import yolo_gism.tune

    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    protocol["tune"] = {"epochs": 2, "temperatures": [1, 3], "alphas": [0.5]}
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain, "teacher_ready", lambda *a: True)
    monkeypatch.setattr(gain, "dataset", lambda p: tmp_path / "data.yaml")
    trained, grids = [], []

    def fake_tune(model, teacher, data, temperatures, alphas, out, **train_args):
        grids.append((temperatures, alphas))
        for t in temperatures:
            for a in alphas:
                done = Path(out) / f"T{t:g}_a{a:g}" / "tune_result.json"
                if not done.exists():
                    trained.append((t, a, train_args["epochs"]))
                    done.parent.mkdir(parents=True, exist_ok=True)
                    done.write_text(json.dumps({"temperature": t, "alpha": a, "map50_95": 0.1 * t}))
                    (done.parent / "results.csv").write_text("epoch\n1\n2\n")
        (Path(out) / "tune.json").write_text(json.dumps({"grid": [temperatures, alphas]}))
        (Path(out) / "tune.md").write_text("# sweep\n")
        return {}

    monkeypatch.setattr(yolo_gism.tune, "tune", fake_tune)
    gain.step_tune(protocol, "python bench/distill_gain.py steps=tune")
    assert trained == [(1.0, 0.5, 2), (3.0, 0.5, 2)]  # one pair per call, on the sweep's short schedule
    assert grids[-1] == ([1, 3], [0.5])  # then the whole grid, all cached, for tune.json / tune.md
    record = gain.RESULTS / "distill_gain_runs" / "cpu_long" / "tune" / "T3_a0.5"
    assert json.loads((record / "tune_result.json").read_text())["settings"]["gism"]["temperature"] == 3.0
    assert (record / "results.csv").exists()
    assert "steps=tune" in (gain.RESULTS / "distill_gain_cpu_long_tune.md").read_text()

    import shutil

    shutil.rmtree(gain.RUNS)  # a later session: only the committed records are left
    trained.clear()
    gain.step_tune(protocol, "again")
    assert trained == []
    older = record / "tune_result.json"  # a record from before a GISM key existed: the key's default is assumed
    stored = json.loads(older.read_text())
    del stored["settings"]["gism"]["kd_every"]
    older.write_text(json.dumps(stored))
    shutil.rmtree(gain.RUNS)
    gain.step_tune(protocol, "again")
    assert trained == []
    protocol["gism"] = {"kd_gain": 2.0}  # another GISM default: the old sweep no longer describes it
    gain.step_tune(protocol, "again")
    assert trained == [(1.0, 0.5, 2), (3.0, 0.5, 2)]


def test_a_protocol_with_a_base_shares_its_teacher_data_and_cost_but_keeps_its_own_runs(gain, tmp_path):
    base = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    longer = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_converged.yaml"))
    assert longer["teacher"] == base["teacher"] and longer["data"] == base["data"]
    assert longer["student"]["epochs"] != base["student"]["epochs"]
    assert gain.teacher_path(longer) == gain.teacher_path(base)  # the very same weights, not a retrained teacher
    assert gain.cost_file(longer) == gain.cost_file(base)
    assert gain.record_dir(longer, "teacher", 0) == gain.record_dir(base, "teacher", 0)
    assert gain.record_dir(longer, "gism", 0) != gain.record_dir(base, "gism", 0)
    assert gain.run_dir(longer, "gism", 0).parent.parent.name == "cpu_converged"
    assert gain.stop_file(longer) != gain.stop_file(base)

    clashing = tmp_path / "clash.yaml"
    clashing.write_text("name: other\nbase: cfg/distill_gain_cpu_long.yaml\nimgsz: 320\n"
                        "student: {model: yolov8n.yaml, epochs: 5}\nseeds: [0]\n")
    with pytest.raises(ValueError, match="imgsz must be left to its base cfg/distill_gain_cpu_long.yaml"):
        gain.load_protocol(str(clashing))


def test_a_protocol_with_a_base_reports_the_base_teacher(gain, monkeypatch, tmp_path):
    monkeypatch.setattr(gain, "RESULTS", tmp_path)
    longer = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_converged.yaml"))
    spec = gain.specs(longer)
    for method, value in (("teacher", 0.27), ("vanilla", 0.24)):
        folder = gain.record_dir(longer, method, 0)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"map50_95": value, "seed": 0, "epochs": spec[method]["epochs"],
                                                         "method": method}))
    found = gain.collect(longer)
    assert [r["map50_95"] for r in found["teacher"]] == [0.27] and [r["map50_95"] for r in found["vanilla"]] == [0.24]
    assert "cpu_long" in str(gain.record_dir(longer, "teacher", 0))


def test_a_protocol_with_a_base_and_its_own_teacher_reuses_only_teacher_free_runs(gain, monkeypatch, tmp_path):
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(gain.subprocess, "run", lambda *a, **k: pytest.fail("nothing should be trained"))
    base = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_converged.yaml"))
    strong = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_strong_teacher.yaml"))
    assert strong["data"] == base["data"] and strong["teacher"] != base["teacher"]
    assert gain.home(strong) == gain.home(base) == "cpu_long"  # one copy of the data
    assert gain.run_dir(strong, "teacher", 0) != gain.run_dir(base, "teacher", 0)  # its own, longer-trained teacher
    assert gain.teacher_path(strong) != gain.teacher_path(base)
    assert gain.cost_file(strong) == gain.cost_file(base)  # same architectures and GISM settings: same cost

    spec = gain.specs(strong)
    for method in ("vanilla", "gism"):  # the base's finished runs with this protocol's settings and seed
        twin = gain.record_dir(base, method, 0)
        twin.mkdir(parents=True)
        (twin / "metrics.json").write_text(json.dumps({"map50_95": 0.24, "seed": 0, "epochs": 150, "method": method,
                                                       "settings": gain.settings(spec[method])}))
    got = gain.ensure(strong, "vanilla", 0, spec["vanilla"])
    assert got["map50_95"] == 0.24 and got["reused_from"] == "distill_gain_runs/cpu_converged/vanilla/seed0"
    assert (gain.record_dir(strong, "vanilla", 0) / "metrics.json").exists()
    # GISM's settings leave the teacher's path out, so a twin in a protocol with another teacher is not the same run
    assert gain.identical_record(strong, spec["gism"], 0) is None
    assert gain.identical_record(base, spec["gism"], 0) is not None

    other = tmp_path / "other.yaml"
    other.write_text("name: other\nbase: cfg/distill_gain_cpu_converged.yaml\nteacher: {model: yolov8m.yaml, "
                     "epochs: 5}\nstudent: {model: yolov8n.yaml, epochs: 5}\nseeds: [0]\n")
    assert gain.home(gain.load_protocol(str(other)), "cost") == "other"  # another teacher architecture: own cost


def test_a_protocol_may_distil_from_another_protocols_teacher_trained_on_more_data(gain, monkeypatch, tmp_path):
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    more = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_teacher_more_data.yaml"))
    small = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_small_data.yaml"))
    strong = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_strong_teacher.yaml"))
    assert more["data"] == small["data"] and more["data"]["train"] < strong["data"]["train"]  # students: 100 images
    assert more["teacher"] == strong["teacher"]  # the teacher's recipe, trained on its own protocol's 500 images
    assert more["_teacher_data"] == strong["data"]  # what its report will say the teacher was trained on
    assert gain.teacher_path(more) == gain.teacher_path(strong)  # the very same weights
    assert gain.record_dir(more, "teacher", 0) == gain.record_dir(strong, "teacher", 0)
    assert gain.home(more) == "cpu_small_data" and gain.cost_file(more) == gain.cost_file(small)
    assert more["_bases"] == ["cpu_small_data"]  # vanilla runs come from the small-data protocol, not the teacher's

    monkeypatch.setattr(gain.subprocess, "run", lambda *a, **k: pytest.fail("no teacher may train on these images"))
    with pytest.raises(RuntimeError, match="run steps=teacher with protocol=cfg/distill_gain_cpu_strong_teacher.yaml"):
        gain.step_teacher(more)  # its teacher is not finished here (RESULTS is empty)

    both = tmp_path / "both.yaml"
    both.write_text("name: both\nbase: cfg/distill_gain_cpu_small_data.yaml\nteacher_from: "
                    "cfg/distill_gain_cpu_strong_teacher.yaml\nteacher: {model: yolov8m.yaml, epochs: 5}\n"
                    "student: {model: yolov8n.yaml, epochs: 5}\nseeds: [0]\n")
    with pytest.raises(ValueError, match="either teacher .* or teacher_from"):
        gain.load_protocol(str(both))


def test_the_nano_teacher_protocol_measures_its_own_cost_and_reuses_the_small_data_students(gain, monkeypatch,
                                                                                             tmp_path):
    """The eighth protocol: a YOLOv8n teacher trained on the 500 images, for 100-image YOLOv8n students. Its
    teacher's forward costs what a student's does, not a YOLOv8s's, so the small-data protocol's cost measurement
    must not be borrowed; its teacher-free students are still the small-data protocol's."""
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    nano = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_nano_teacher_more_data.yaml"))
    small = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_small_data.yaml"))
    teacher = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_nano_teacher.yaml"))
    assert nano["teacher"]["model"] == nano["student"]["model"] == "yolov8n.yaml"
    assert nano["data"] == small["data"] and nano["_teacher_data"]["train"] == 500 > nano["data"]["train"]
    assert gain.teacher_path(nano) == gain.teacher_path(teacher)
    assert gain.cost_file(nano) != gain.cost_file(small) and gain.home(nano, "cost") == "cpu_nano_teacher_more_data"
    assert nano["_bases"] == ["cpu_small_data"]
    # the teacher's recipe is the fourth protocol's vanilla student's (same data, epochs, seed and arguments)
    converged = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_converged.yaml"))
    assert teacher["data"] == converged["data"] and teacher["train_args"] == converged["train_args"]
    assert gain.specs(teacher)["teacher"]["epochs"] == gain.specs(converged)["vanilla"]["epochs"]


def test_a_report_says_when_its_teacher_was_trained_on_more_data_than_the_students(gain):
    report = _report([0.1] * 20)
    report["protocol"]["name"] = "small"
    assert "Teacher:" not in gain.readme_section(report) and "Teacher:" not in gain.markdown(
        {**report, "all_methods": {}})  # the table's columns are another test's business
    report["teacher_from"] = {"protocol": "cfg/distill_gain_cpu_strong_teacher.yaml",
                              "data": {"source": "builtin", "train": 500}, "students_data": {"source": "builtin",
                                                                                              "train": 100}}
    line = ("Teacher: the finished teacher of `cfg/distill_gain_cpu_strong_teacher.yaml`, trained on that protocol's "
            "data (500 training images), not on the students' (100 training images)")
    assert line in gain.readme_section(report) and line in gain.markdown({**report, "all_methods": {}})


def test_match_time_may_only_name_runs_that_steps_ablations_trains(gain, tmp_path):
    protocol = tmp_path / "p.yaml"
    head = "name: p\nstudent: {model: yolov8n.yaml, epochs: 5}\nseeds: [0]\nablations: {kd_every4: {kd_every: 4}}\n"
    protocol.write_text(head + "match_time: [ablation_kd_every4]\n")
    assert gain.load_protocol(str(protocol))["match_time"] == ["ablation_kd_every4"]
    for wrong in ("gism", "ablation_kd_every8"):
        protocol.write_text(head + f"match_time: [{wrong}]\n")
        with pytest.raises(ValueError, match=rf"match_time names \['{wrong}'\], which steps=ablations never runs; "
                                             r"it may name \['ablation_kd_every4'\]"):
            gain.load_protocol(str(protocol))


def _timing_sandbox(gain, monkeypatch, tmp_path) -> None:
    """Runs and results under tmp_path, the teacher taken as ready, no environment probe: for steps=cost."""
    monkeypatch.setattr(gain, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(gain, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(gain, "teacher_ready", lambda *a: True)
    monkeypatch.setattr(gain, "environment", lambda: {})


def _short_runs(gain, protocol, per_epoch: dict, distilled: str, folders: list):
    """Stands in for subprocess.run of one short cost run: writes the next epoch time of `vanilla` (a plain run)
    or of `distilled`, and notes the run's folder in `folders`."""
    def fake_run(args, **kwargs):
        job = json.loads(args[-1])
        name = "vanilla" if job["spec"]["kind"] == "plain" else distilled
        folders.append(job["method"])
        folder = gain.run_dir(protocol, job["method"], 0)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"epoch_seconds": per_epoch[name].pop(0)}))

    return fake_run


def test_cost_is_timed_in_turn_with_vanilla_and_only_missing_methods_are_added(gain, monkeypatch, tmp_path):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    protocol["cost_methods"] = ["ablation_kd_every4"]
    _timing_sandbox(gain, monkeypatch, tmp_path)
    per_epoch = {"vanilla": [20.0, 24.0, 22.0, 26.0], "gism": [33.0, 37.0], "ablation_kd_every4": [27.0, 29.0]}
    trained = []

    def fake_run(args, **kwargs):  # one short run: its epoch time, in the order the runs are started
        job = json.loads(args[-1])
        name = "vanilla" if job["spec"]["kind"] == "plain" else "gism" if job["spec"] == {
            **gain.specs(protocol)["gism"], "epochs": 2, "kd_warmup": 0, "kd_stop": 0} else "ablation_kd_every4"
        trained.append((job["method"], name, job["spec"].get("kd_warmup")))
        folder = gain.run_dir(protocol, job["method"], 0)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"epoch_seconds": per_epoch[name].pop(0)}))

    monkeypatch.setattr(gain.subprocess, "run", fake_run)
    cost = gain.step_cost(protocol, "cmd")
    assert [name for _, name, _ in trained] == ["vanilla", "gism", "gism", "vanilla",
                                                "vanilla", "ablation_kd_every4", "ablation_kd_every4", "vanilla"]
    assert all(warmup == 0 for _, name, warmup in trained if name != "vanilla")  # distilling from the first epoch
    assert cost["gism_vs_vanilla"] == pytest.approx((33 + 37) / 2 / ((20 + 24) / 2))
    measured = cost["methods"]["ablation_kd_every4"]
    assert measured["vs_vanilla"] == pytest.approx((27 + 29) / 2 / ((22 + 26) / 2))
    assert measured["settings"]["gism"]["kd_every"] == 4
    assert json.loads(gain.cost_file(protocol).read_text()) == cost

    trained.clear()
    assert gain.step_cost(protocol, "cmd") == cost and trained == []  # nothing missing: nothing timed again


def test_a_method_timed_with_other_settings_is_timed_again_and_its_old_timing_kept(gain, monkeypatch, tmp_path):
    """A cost entry counts only for the settings it timed (epochs aside: protocols of other lengths share one):
    were an ablation's settings changed, its old epoch cost would otherwise price the new run."""
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    protocol["cost_methods"] = ["ablation_kd_every4"]
    _timing_sandbox(gain, monkeypatch, tmp_path)
    gism = gain.settings(gain.specs(protocol)["gism"])
    every4 = gain.settings(gain.specs(protocol)["ablation_kd_every4"])
    old = {"vs_vanilla": 1.08, "settings": {**every4, "epochs": 10}}  # timed for a shorter protocol: still counts
    cost = {"gism_vs_vanilla": 1.4, "gism_settings": gism, "methods": {"ablation_kd_every4": old}}
    gain.cost_file(protocol).parent.mkdir(parents=True)
    gain.cost_file(protocol).write_text(json.dumps(cost))
    assert gain.cost_ratio(protocol, "ablation_kd_every4") == 1.08
    assert gain.step_cost(protocol, "cmd") == cost  # nothing to time

    protocol["ablations"]["kd_every4"] = {**protocol["ablations"]["kd_every4"], "kd_every": 2}
    assert gain.cost_ratio(protocol, "ablation_kd_every4") is None
    per_epoch = {"vanilla": [20.0, 22.0], "ablation_kd_every4": [26.0, 28.0]}
    folders = []

    monkeypatch.setattr(gain.subprocess, "run", _short_runs(gain, protocol, per_epoch, "ablation_kd_every4", folders))
    timed = gain.step_cost(protocol, "cmd")
    assert len(folders) == 4 and all(f.startswith("cost/ablation_kd_every4_") for f in folders)
    assert timed["methods"]["ablation_kd_every4"]["vs_vanilla"] == pytest.approx(27 / 21)
    assert timed["methods"]["ablation_kd_every4"]["settings"]["gism"]["kd_every"] == 2
    assert timed["superseded_methods"] == {"ablation_kd_every4": [old]}
    assert gain.cost_ratio(protocol, "ablation_kd_every4") == pytest.approx(27 / 21)
    assert timed["gism_vs_vanilla"] == 1.4  # GISM's own timing untouched


def test_a_new_gism_default_waits_for_its_own_cost_and_keeps_the_old_timing(gain, monkeypatch, tmp_path):
    """GISM's time fixes the time-matched run's epochs. A cost measured with other GISM settings (e.g. the defaults
    before a change) must not set them: the time-matched records go out of the report, steps=cost times the new
    settings in four fresh runs, and the old timing is kept under superseded_gism."""
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml"))
    _timing_sandbox(gain, monkeypatch, tmp_path)
    old_settings = gain.settings(gain.specs(protocol)["ablation_gism_v1"])
    cost = gain.cost_file(protocol)
    cost.parent.mkdir(parents=True)
    cost.write_text(json.dumps({"gism_vs_vanilla": 1.5, "gism_settings": old_settings, "cost_epochs": 2}))
    assert gain.gism_cost(protocol) is None and gain.time_matched_epochs(protocol) is None
    for seed, epochs in ((0, 75), (1, 60)):
        folder = gain.record_dir(protocol, "vanilla_time_matched", seed)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"seed": seed, "epochs": epochs, "map50_95": 0.2}))
    assert gain.matched_to_gism(protocol, gain.collect(protocol)["vanilla_time_matched"]) == []

    per_epoch = {"vanilla": [20.0, 24.0], "gism": [30.0, 34.0]}
    folders = []

    monkeypatch.setattr(gain.subprocess, "run", _short_runs(gain, protocol, per_epoch, "gism", folders))
    timed = gain.step_cost(protocol, "cmd")
    assert timed["gism_vs_vanilla"] == pytest.approx(32 / 22)
    assert timed["gism_settings"] == gain.settings(gain.specs(protocol)["gism"]) != old_settings
    assert timed["superseded_gism"] == [{"gism_vs_vanilla": 1.5, "gism_settings": old_settings}]
    assert len({f.rsplit("/", 1)[0] for f in folders}) == 1 and folders[0].startswith("cost/gism_")
    assert gain.time_matched_epochs(protocol) == round(50 * 32 / 22) == 73
    folder = gain.record_dir(protocol, "vanilla_time_matched", 1)
    (folder / "metrics.json").write_text(json.dumps({"seed": 1, "epochs": 73, "map50_95": 0.2}))
    matched = gain.matched_to_gism(protocol, gain.collect(protocol)["vanilla_time_matched"])
    assert [r["seed"] for r in matched] == [1]  # seed 0's 75 epochs match the old GISM's time, not this one's


def test_a_protocol_may_keep_the_gism_settings_it_ran_with_by_naming_a_file(gain, tmp_path):
    """`gism: cfg/gism_v1.yaml` keeps a protocol's GISM (and its ablations, written on top of it) as they ran
    after cfg/gism.yaml moved on; a variation is `{settings: <file>, key: value}`, as for ablations."""
    import yaml

    old = yaml.safe_load((ROOT / "cfg" / "gism_v1.yaml").read_text())
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    specs = gain.specs(protocol)
    assert gain.settings(specs["gism"])["gism"] == {**old}
    assert gain.settings(specs["ablation_kd_every4"])["gism"] == {**old, "kd_every": 4}
    assert gain.settings(gain.specs(gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu.yaml")))["gism"])["gism"][
        "feature_layers"] == "stride4+backbone+neck"  # a protocol with `gism: {}` runs today's defaults
    varied = tmp_path / "v.yaml"
    varied.write_text("name: v\ngism: {settings: cfg/gism_v1.yaml, assign: student}\n")
    assert gain.load_protocol(str(varied))["gism"] == {**old, "assign": "student"}


def test_cost_records_say_whether_the_cpu_computes_bf16_natively(gain, monkeypatch):
    """An auto teacher runs in bf16 only on such a CPU (fp32 elsewhere), which changes the teacher's share of an
    epoch: the records must say which case a cost ratio was measured in."""
    import yolo_gism.teacher as teacher

    monkeypatch.setattr(teacher, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert gain.environment()["cpu_native_bf16"] is True
    monkeypatch.setattr(teacher, "cpu_flags", lambda: {"avx2"})
    assert gain.environment()["cpu_native_bf16"] is False
    assert gain.environment()["versions"]["ultralytics"]  # the shared record's fields are all still there


def test_a_method_is_compared_seed_by_seed_with_the_vanilla_run_given_its_time(gain, monkeypatch, tmp_path):
    monkeypatch.setattr(gain, "RESULTS", tmp_path)
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))
    cost = gain.cost_file(protocol)
    cost.parent.mkdir(parents=True)
    cost.write_text(json.dumps({"gism_vs_vanilla": 1.5, "methods": {"ablation_kd_every4": {"vs_vanilla": 1.077}}}))
    spec = gain.specs(protocol)
    assert spec["vanilla_time_matched_kd_every4"] == {**spec["vanilla"], "epochs": 108}  # round(100 x 1.077)

    report = _report([0.1] * 20)
    report["protocol"]["match_time"] = ["ablation_kd_every4"]
    report["runs"].update({
        "ablation_kd_every4": [{"seed": 0, "map50_95": 0.223}, {"seed": 1, "map50_95": 0.220}],
        "vanilla_time_matched_kd_every4": [{"seed": 0, "map50_95": 0.219, "epochs": 108},
                                           {"seed": 1, "map50_95": 0.221, "epochs": 108},
                                           {"seed": 2, "map50_95": 0.3, "epochs": 108}]})  # seed 2: no twin yet
    report["all_methods"]["ablation_kd_every4"] = {"map50_95_mean": 0.2215, "map50_95_std": 0.002, "seeds": [0, 1]}
    text = gain.readme_section(report)
    assert ("kd_every4 against a vanilla student given its time (108 epochs): seed 0 0.2230 vs 0.2190, "
            "seed 1 0.2200 vs 0.2210; difference +0.15 ± 0.35 points over 2 seed(s).") in text
    assert "| kd_every4 | – | 0.2230 | +12.30 |" in text  # the ablation table stays seed 0 (vanilla seed 0: 0.1)


def test_an_ablation_row_names_its_settings_file_and_the_keys_it_changes(gain):
    report = _report([0.1] * 20)
    report["protocol"]["ablations_as_written"] = {"feat_only": {"settings": "cfg/gism_v1.yaml", "kd_cls": False}}
    report["all_methods"]["ablation_v1"] = report["all_methods"]["ablation_feat_only"]
    report["protocol"]["ablations_as_written"]["v1"] = "cfg/gism_v1.yaml"
    text = "\n".join(gain.ablation_lines(report))
    assert "| feat_only | cfg/gism_v1.yaml, kd_cls=False | 0.1050 | +0.50 |" in text
    assert "| v1 | cfg/gism_v1.yaml | 0.1050 | +0.50 |" in text
    del report["protocol"]["ablations_as_written"]  # a report from before: the settings as loaded
    assert "| feat_only | kd_cls=False, selection=none | 0.1050 | +0.50 |" in "\n".join(gain.ablation_lines(report))


def test_a_run_that_stops_distilling_early_costs_a_vanilla_epoch_for_each_epoch_without_the_teacher(
        gain, monkeypatch, tmp_path):
    monkeypatch.setattr(gain, "RESULTS", tmp_path)
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_long.yaml"))  # 100 student epochs
    protocol["ablations"] = {"early": {"kd_stop": 60}, "every4": {"kd_every": 4}}
    protocol["cost_as"], protocol["match_time"] = {"ablation_early": "gism"}, ["ablation_early", "ablation_every4"]
    gain.cost_file(protocol).parent.mkdir(parents=True)
    gain.cost_file(protocol).write_text(json.dumps({"gism_vs_vanilla": 1.5,
                                                    "methods": {"ablation_every4": {"vs_vanilla": 1.1}}}))
    assert gain.cost_ratio(protocol, "ablation_early") == pytest.approx((40 * 1.5 + 60 * 1.0) / 100)
    assert gain.cost_ratio(protocol, "gism") == 1.5 and gain.cost_ratio(protocol, "ablation_every4") == 1.1
    spec = gain.specs(protocol)
    assert spec["vanilla_time_matched_early"]["epochs"] == 120 and spec["vanilla_time_matched_every4"]["epochs"] == 110


def test_a_protocol_moved_to_a_gpu_keeps_its_runs_settings_and_turns_amp_on(gain):
    protocol = gain.load_protocol(str(ROOT / "cfg" / "distill_gain_cpu_strong_teacher.yaml"))
    gpu = gain.on_device(protocol, "0")
    assert (gpu["device"], gpu["train_args"]["amp"], gpu["train_args"]["workers"]) == ("0", True, 8)
    assert gpu["train_args"]["nbs"] == protocol["train_args"]["nbs"] == 16  # the recipe itself is unchanged
    assert protocol["device"] == "cpu" and protocol["train_args"]["amp"] is False  # the loaded protocol is untouched
    teacher = gain.specs(gpu)["teacher"]
    assert gain.settings(teacher) == gain.settings(gain.specs(protocol)["teacher"]) == \
        {"kind": "plain", "model": "yolov8s.yaml", "epochs": 250}  # so a GPU-trained teacher is the protocol's
    back = gain.on_device(gpu, "cpu")
    assert (back["train_args"]["amp"], back["train_args"]["workers"]) == (False, 0)


def test_only_the_teacher_may_be_trained_on_another_device(gain):
    protocol = "protocol=" + str(ROOT / "cfg" / "distill_gain_cpu_strong_teacher.yaml")
    for steps in ("steps=main", "steps=teacher,main"):
        with pytest.raises(ValueError, match="device=0 goes with steps=teacher alone: .* own device \\(cpu\\)"):
            gain.main([protocol, steps, "device=0"])
    with pytest.raises(ValueError, match="goes with steps=teacher alone"):
        gain.main([protocol, "device=0"])  # no steps: the whole protocol


def test_an_ablation_named_by_settings_file_runs_that_file(gain, tmp_path):
    """The protocols measure cfg/gism_builtin_features.yaml by naming it, so the recipe users get and the runs that
    measured it are one copy; a missing file is an error naming the protocol and the file."""
    import yaml

    recipe = yaml.safe_load((ROOT / "cfg" / "gism_builtin_features.yaml").read_text())
    for name in ("distill_gain_cpu_nano_teacher_more_data.yaml", "distill_gain_cpu.yaml",
                 "distill_gain_cpu_teacher_more_data.yaml"):
        protocol = gain.load_protocol(str(ROOT / "cfg" / name))
        assert protocol["ablations"]["builtin_features"] == recipe, name
        assert gain.as_written(protocol)["ablations"]["builtin_features"] == recipe  # the report's echo, read in
        assert {**gain.specs(protocol)["gism"], **recipe} == gain.specs(protocol)["ablation_builtin_features"]
    varied = tmp_path / "v.yaml"
    varied.write_text("name: v\nablations: {mine: {settings: cfg/gism_builtin_features.yaml, kd_gain: 4.0}}\n")
    assert gain.load_protocol(str(varied))["ablations"]["mine"] == {**recipe, "kd_gain": 4.0}  # the recipe, one key changed
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\nablations: {mine: cfg/no_such_recipe.yaml}\n")
    with pytest.raises(FileNotFoundError, match=r"p\.yaml: ablation settings file cfg/no_such_recipe\.yaml not found"):
        gain.load_protocol(str(bad))


def test_stopping_a_protocol_process_stops_its_training_run(tmp_path):
    """A SIGTERM to the protocol process must not leave its training subprocess running on, orphaned."""
    child_pid = tmp_path / "child.pid"
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import subprocess, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "import distill_gain\n"
        "distill_gain.stop_runs_on_sigterm()\n"
        "child = 'import os, sys, time; open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(120)'\n"
        f"subprocess.run([sys.executable, '-c', child, {str(child_pid)!r}])\n")
    process = subprocess.Popen([sys.executable, str(parent)])
    deadline = time.monotonic() + 60
    while not (child_pid.exists() and child_pid.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(child_pid.read_text())
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # ProcessLookupError once the child is gone
            time.sleep(0.1)
        pytest.fail("the training subprocess outlived its protocol process")
    except ProcessLookupError:
        return
    finally:
        subprocess.run(["kill", "-9", str(pid)], capture_output=True)  # a failed run leaves no sleeper behind
