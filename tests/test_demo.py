"""The demo's stages end to end on a tiny configuration, and its reuse of finished stages."""

import json

import pytest

from yolo_gism.demo import DemoConfig, run_demo, train_key

TINY = dict(train=24, val=8, imgsz=64, teacher_epochs=1, epochs=1, clip_frames=12, fps_frames=8, batch=8,
            videos="/nonexistent")


def test_demo_runs_every_stage_and_reuses_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run_demo(out="demo", **TINY)  # relative: must land here, not under Ultralytics' runs_dir
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "Short demo schedule" in report and "distill_gain" in report
    assert (tmp_path / "demo" / "report.png").stat().st_size > 0
    assert summary["export"]["max_abs_diff"] is not None and summary["export"]["max_abs_diff"] < 1e-3
    clip = summary["fps"]["synthetic clip"]
    assert set(clip["fps"]) == {summary[k]["weights"] for k in ("teacher", "student", "gism")} | {
        summary["export"]["onnx"]}
    assert all(v > 0 for v in clip["fps"].values())
    marker = next((tmp_path / "demo").glob("gism-*/done.json"))
    stamp = marker.stat().st_mtime_ns
    again = run_demo(out=str(tmp_path / "demo"), **TINY)  # every stage reused, nothing retrained
    assert marker.stat().st_mtime_ns == stamp and again["gism"] == summary["gism"]
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["config"]["epochs"] == 1


@pytest.mark.parametrize("kw, match", [({"train": 0}, "train=0"), ({"seed": -1}, "seed=-1"),
                                       ({"epochz": 3}, "unknown demo argument")])
def test_demo_bad_arguments(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        run_demo(out=str(tmp_path), **kw)


def test_demo_reuse_of_a_missing_teacher_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher=.*nope.pt: file not found"):
        run_demo(out=str(tmp_path), teacher=str(tmp_path / "nope.pt"), **TINY)


def test_a_gism_stage_is_keyed_by_gism_defaults_too(tmp_path, monkeypatch):
    """A GISM student trained under other defaults (an older yolo_gism) is not reused as one of today's."""
    cfg = DemoConfig()
    before = train_key(cfg, "yolov8n.yaml", 3, "d.yaml", "t.pt")
    assert train_key(cfg, "yolov8n.yaml", 3, "d.yaml", None) == {k: v for k, v in before.items() if k != "gism"} | {
        "teacher": None}
    other = tmp_path / "gism.yaml"
    other.write_text("temperature: 3.0\n")
    monkeypatch.setattr("yolo_gism.config.default_yaml_path", lambda: other)
    assert train_key(cfg, "yolov8n.yaml", 3, "d.yaml", "t.pt")["gism"]["temperature"] == 3.0 != before["gism"][
        "temperature"]
