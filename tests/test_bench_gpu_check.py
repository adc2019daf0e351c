"""bench/gpu_check.py's plumbing, which runs only where a GPU is lent: arguments, and a summary that shows failures."""

import pytest


def test_unknown_or_malformed_arguments_stop_the_check_before_it_uses_the_gpu(gpu_check):
    args = gpu_check.parse_args(["epochs=5", "device=1"])
    assert (args["epochs"], args["device"], args["frames"]) == (5, "1", 300)
    with pytest.raises(SystemExit, match=r"bad argument\(s\) \['epoch'\]"):
        gpu_check.parse_args(["epoch=5"])
    with pytest.raises(SystemExit, match=r"bad argument\(s\) \['fast'\]"):
        gpu_check.parse_args(["fast"])


def test_summary_reports_each_part_and_names_the_ones_that_failed(gpu_check):
    trained = {"amp_on_every_epoch": True, "teacher_dtype": "torch.float16", "all_losses_finite": True,
               "epoch_seconds": 4.5, "map50_95": 0.1124, "checkpoint_model_class": "DetectionModel",
               "checkpoint_teacher_or_adapter_tensors": 0}
    report = {"machine": {"gpu": "NVIDIA H200"}, "date": "2026-12-04", "command": "python bench/gpu_check.py",
              "amp": {"vanilla": {"error": "exit 1", "tail": "CUDA error"}, "gism": trained},
              "overhead": {"error": "exit -9"},
              "fps": {"a.mp4": {"report": {"results": [{"model": "s.pt", "precision": "fp16", "fps": 97.61,
                                                        "bottleneck": "inference"}]}},
                      "b.mp4": {"error": "exit 2"}},
              "note": "shared with a training run"}
    text = gpu_check.markdown(report)
    assert "| vanilla | failed: exit 1 |" in text
    assert "| gism | True | torch.float16 | True | 4.50 | 0.1124 | DetectionModel, 0 teacher/adapter tensors |" in text
    assert "GISM epoch time / vanilla" not in text  # no ratio without both runs
    assert "Training overhead failed: exit -9" in text
    assert "| a.mp4 | s.pt | fp16 | 97.6 | inference |" in text and "| b.mp4 | failed: exit 2 |" in text
    assert text.rstrip().endswith("Conditions: shared with a training run")
    no_videos = gpu_check.markdown({**report, "fps": {"error": "no videos in /x"}})
    assert "| all | failed: no videos in /x |" in no_videos
