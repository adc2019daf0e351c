"""yolo-gism tune: runs the grid, reuses finished runs, reports the best pair, refuses a bad grid."""

import json

import pytest

from yolo_gism.tune import tune

FAST = dict(epochs=1, imgsz=64, batch=8, device="cpu", workers=0, plots=False, amp=False, kd_warmup=0,
            kd_ramp=0, verbose=False)


def test_grid_runs_and_reports_the_best(tiny_data, trained_teacher, tmp_path):
    result = tune("yolov8n.yaml", str(trained_teacher), str(tiny_data), temperatures="1,3", alphas=[0.5],
                  kd_box=True, out=str(tmp_path), **FAST)
    assert {(r["temperature"], r["alpha"]) for r in result["runs"]} == {(1.0, 0.5), (3.0, 0.5)}
    assert result["best"]["map50_95"] == max(r["map50_95"] for r in result["runs"])
    assert "Best: T=" in (tmp_path / "tune.md").read_text()
    state = (tmp_path / "T3_a0.5" / "weights" / "gism_last.pt")
    import torch

    assert torch.load(state, weights_only=True)["config"]["temperature"] == 3.0
    stamp = (tmp_path / "T1_a0.5" / "tune_result.json").stat().st_mtime_ns
    tune("yolov8n.yaml", str(trained_teacher), str(tiny_data), temperatures=[1], alphas=[0.5], out=str(tmp_path),
         kd_box=True, **FAST)
    assert (tmp_path / "T1_a0.5" / "tune_result.json").stat().st_mtime_ns == stamp  # reused, not retrained
    assert json.loads((tmp_path / "tune.json").read_text())["runs"][0]["temperature"] == 1.0


def test_bad_grid_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="temperature"):
        tune("yolov8n.yaml", "t.pt", "d.yaml", temperatures=[0, 2], out=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_alpha_is_swept_only_beside_the_box_term(tiny_data, trained_teacher, tmp_path):
    """alpha splits weight between the box and feature terms (criterion: alpha L_box + (1 - alpha) gamma L_feat); with
    kd_box off it would only rescale the feature term, so a sweep of it is refused and the default grid is T alone."""
    with pytest.raises(ValueError, match="kd_box=true to sweep"):
        tune("yolov8n.yaml", "t.pt", "d.yaml", temperatures=[2], alphas=[0.25, 0.5], kd_box=False, out=str(tmp_path))
    assert not list(tmp_path.iterdir())
    result = tune("yolov8n.yaml", str(trained_teacher), str(tiny_data), temperatures=[2], out=str(tmp_path),
                  kd_box=False, alpha=0.0, **FAST)
    assert [(r["temperature"], r["alpha"]) for r in result["runs"]] == [(2.0, 0.0)]
    import torch

    saved = torch.load(tmp_path / "T2_a0" / "weights" / "gism_last.pt", weights_only=True)["config"]
    assert (saved["kd_box"], saved["alpha"], saved["temperature"]) == (False, 0.0, 2.0)
