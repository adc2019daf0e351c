"""bench/video_fps.py's summary: goals judged on the right numbers, the per-model table, the README block."""

import math
from pathlib import Path

import pytest


def _agg(video_fps_bench, videos):
    """Teacher at 10 FPS everywhere; student and distilled at 40 (harness ORT), 30 (harness PyTorch), 20
    (Ultralytics' stream on the .pt) and 25 (Ultralytics' stream on the .onnx)."""
    agg = {}
    for v in videos:
        for role in video_fps_bench.ROLES:
            fast = role != "teacher"
            for kind in video_fps_bench.KINDS:
                by_kind = {"harness-ort": 40.0, "harness-pytorch": 30.0, "ultralytics-stream": 20.0}
                fps = (25.0 if kind == "ultralytics-stream-onnx" else by_kind.get(kind.rsplit("-", 1)[0], 20.0)) \
                    if fast else 10.0
                agg[(v, role, kind)] = {"fps": fps, "decode_fps": 1000.0, "compute_fps": fps / 0.95,
                                        "inference_ms": 1000 / fps}
            agg[(v, role, "bare-ort")]["inference_ms"] = agg[(v, role, "harness-ort-sequential")]["inference_ms"] / 1.02
    return agg


def test_goals_are_judged_on_the_stream_ratio_against_the_pt_and_the_student(video_fps_bench):
    videos = ["a.mp4", "b.mp4"]
    summary = video_fps_bench.summarise(_agg(video_fps_bench, videos), videos)
    goals = video_fps_bench.goals(summary)
    # over teacher (10/10), student and distilled (40/20 against the .pt, 40/25 against the .onnx)
    assert goals["ort_pipelined_vs_ultralytics_stream"]["value"] == pytest.approx((1 * 2 * 2) ** (1 / 3))
    assert summary["ort_pipelined_vs_ultralytics_stream"]["same_onnx"]["geomean"] == pytest.approx(1.6 ** (2 / 3))
    assert goals["student_vs_teacher_fps"]["value"] == pytest.approx(math.exp((math.log(3) * 2 + math.log(4) * 2) / 4))
    assert goals["student_vs_teacher_fps"]["met"] is False  # 3.46 < 4
    assert goals["pipelined_vs_two_stage_limit"]["value"] == pytest.approx(0.95)
    assert goals["pipelined_vs_two_stage_limit"]["met"] is True
    assert goals["harness_vs_bare_inference"]["value"] == pytest.approx(1.02)
    assert goals["harness_vs_bare_inference"]["target"] == "0.95 to 1.05" and goals["harness_vs_bare_inference"]["met"]


def test_per_model_table_gives_speed_up_against_the_teacher_and_map(video_fps_bench):
    videos = ["a.mp4", "b.mp4"]
    maps = {"teacher": {"map50_95": 0.2}, "student": {"map50_95": 0.1}}
    models = video_fps_bench.per_model(_agg(video_fps_bench, videos), videos, maps)
    assert models["student"]["speedup_vs_teacher"]["harness-ort-pipelined"] == pytest.approx(4.0)
    assert models["teacher"]["fps"]["ultralytics-stream-pt"] == pytest.approx(10.0)
    rows = video_fps_bench.model_table(models)
    assert "| student | 0.1000 | 40.0 | 30.0 | 20.0 | 4.00× |" in rows
    assert "| distilled | - | 40.0 | 30.0 | 20.0 | 4.00× |" in rows  # no mAP given: a dash, not a zero


def test_readme_block_is_written_from_the_payload(video_fps_bench, tmp_path):
    videos = ["a.mp4"]
    summary = video_fps_bench.summarise(_agg(video_fps_bench, videos), videos)
    summary["goals"], summary["models"] = video_fps_bench.goals(summary), video_fps_bench.per_model(_agg(video_fps_bench, videos), videos, {})
    payload = {"summary": summary, "created": "2026-12-02T00:00:00+00:00", "command": "python bench/video_fps.py x",
               "settings": {"threads": 2, "imgsz": 640, "frames": 100, "repeats": 1, "data": None},
               "environment": {"cpu": "Test CPU"}}
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- video_fps results: start -->\nold\n<!-- video_fps results: end -->\nend\n")
    video_fps_bench.replace_block(readme, "video_fps", video_fps_bench.readme_section(payload))
    text = readme.read_text()
    assert "old" not in text and text.startswith("top\n") and text.endswith("end\n")
    assert "python bench/video_fps.py x" in text and "CC BY 4.0" in text
    assert "- student_vs_teacher_fps: 3.464 (goal >= 4.0): **not met**" in text  # sqrt(3 x 4): all harness kinds


def _identity_onnx(path: Path, hw) -> Path:
    """A one-node ONNX graph with an NCHW input of the given (h, w), ints or names (dynamic)."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *hw])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, *hw])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_given_onnx_must_have_dynamic_shapes(video_fps_bench, tmp_path):
    """Every run letterboxes to the same rectangle, which a static square graph cannot take: refused by name."""
    video_fps_bench._require_dynamic(_identity_onnx(tmp_path / "dyn.onnx", ["height", "width"]))
    with pytest.raises(SystemExit, match=r"static.onnx: static input \[1, 3, 64, 64\]; export with dynamic=True"):
        video_fps_bench._require_dynamic(_identity_onnx(tmp_path / "static.onnx", [64, 64]))


def test_report_only_needs_no_model_arguments(video_fps_bench):
    assert video_fps_bench.parse_args(["--report"]).report
    with pytest.raises(SystemExit):
        video_fps_bench.parse_args(["--teacher", "t.pt"])  # a measurement needs every model and the synthetic clip


def test_engine_ratio_and_inference_share_say_what_bounds_the_stream_ratio(video_fps_bench):
    videos = ["a.mp4", "b.mp4"]
    agg = _agg(video_fps_bench, videos)
    for v in videos:
        run = agg[(v, "student", "harness-ort-pipelined")]  # 25 ms inference; 1 + 2 + 2 ms around it
        run.update(decode_ms=1.0, preprocess_ms=2.0, postprocess_ms=2.0)
        agg[(v, "student", "ultralytics-stream-pt")]["inference_ms"] = 40.0
    summary = video_fps_bench.summarise(agg, videos)
    assert summary["ort_vs_pytorch_inference"]["student"]["geomean"] == pytest.approx(40.0 / 25.0)
    assert summary["ort_vs_pytorch_inference"]["teacher"]["geomean"] == pytest.approx(1.0)
    assert summary["ort_inference_share"]["student"]["geomean"] == pytest.approx(25.0 / 30.0)
    text = "\n".join(video_fps_bench.engine_lines(summary))
    assert "student 1.60×" in text and "student 83 %" in text


def test_report_recomputes_the_summary_from_the_stored_medians(video_fps_bench, tmp_path):
    videos = ["a.mp4"]
    agg = _agg(video_fps_bench, videos)
    stored = video_fps_bench.summarise(agg, videos)
    stored.pop("ort_inference_share")  # a result written before this key existed
    stored["models"] = video_fps_bench.per_model(agg, videos, {})
    payload = {"summary": stored, "aggregated": [{"video": v, "model": m, "kind": k, **r} for (v, m, k), r in agg.items()],
               "created": "2026-12-02T00:00:00+00:00", "command": "python bench/video_fps.py x", "seed": 0,
               "settings": {"threads": 1, "imgsz": 640, "frames": 10, "repeats": 1, "data": None},
               "environment": {"cpu": "Test CPU", "usable_cores": 2, "gpu": None, "versions": {}}}
    out, readme = tmp_path / "video_fps.json", tmp_path / "README.md"
    out.write_text(__import__("json").dumps(payload))
    readme.write_text("<!-- video_fps results: start -->\n<!-- video_fps results: end -->\n")
    again = video_fps_bench.main(["--report", "--out", str(out), "--readme", str(readme)])
    assert "ort_inference_share" in again["summary"] and again["summary"]["models"] == stored["models"]
    assert again["summary"]["goals"]["student_vs_teacher_fps"]["value"] == pytest.approx(math.sqrt(12))
