"""The frame-rate harness: stage timing, every frame once, real-time drops, round trips, bad input, the CLI.

Fast checks use a fake backend that reads each frame's index from its pixels (so frame identity is checked,
not only counts) and can be made deliberately slow. Checks whose postprocessing must mean something use the
session's trained detector (`trained_model` from conftest) at 128 px. No test asserts a frame rate.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_gism.cli import main
from yolo_gism.fps import FpsSettings, fps_cli, measure
from yolo_gism.fps_backends import load_backend
from yolo_gism.fps_report import read_csv, read_json, write_csv, write_json
from yolo_gism.video import FrameSource, SourceError

from coded_clips import grey_of, index_of, write_clip


class FakeBackend:
    """Stands in for a model: notes which frame it was given (from its pixels) and sleeps `delay_s` per batch."""

    backend, device, precision, imgsz, names = "fake", "cpu", "fp32", 32, {0: "thing"}

    def __init__(self, delay_s: float = 0.0, label: str = "fake.pt"):
        self.delay_s, self.label, self.seen = delay_s, label, []

    def sync(self):
        pass

    def preprocess(self, images):
        self.seen += [index_of(im) for im in images]
        blob = np.stack([cv2.resize(im, (32, 32)) for im in images]).astype(np.float32) / 255
        return blob, [im.shape[:2] for im in images]

    def infer(self, blob):
        time.sleep(self.delay_s)
        return blob.mean(axis=(1, 2, 3))

    def postprocess(self, raw, metas):
        return [np.zeros((1, 6), np.float32) for _ in metas]


class StallingSource(FrameSource):
    """Five coded frames, then silence: a camera that froze."""

    kind = "scripted"

    def __init__(self):
        super().__init__("frozen-camera", 25.0, None)
        self.i, self.closed = 0, False

    def read(self):
        if self.i < 5:
            self.i += 1
            return np.full((32, 32, 3), grey_of(self.i - 1), np.uint8)
        for _ in range(100):
            if self.closed:
                return None
            time.sleep(0.05)
        return None

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "coded.avi", n=24)


@pytest.fixture(scope="module")
def val_images(trained_model, tiny_data) -> Path:
    """The tiny dataset's validation images: frames on which the trained detector finds things."""
    return tiny_data.parent / "images" / "val"


@pytest.fixture(scope="module")
def model_pair(trained_model, tmp_path_factory) -> tuple[Path, Path]:
    """The trained detector as .pt and as a 128 px ONNX export (made in a folder of its own)."""
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("fps_models")
    pt = Path(shutil.copy(trained_model, folder / "detector.pt"))
    onnx = Path(YOLO(str(pt)).export(format="onnx", imgsz=128, simplify=False))
    return pt, onnx


# ---------------------------------------------------------------- timing


def test_stage_times_add_up_in_sequential_mode(clip, trained_model):
    report = measure(clip, [trained_model], imgsz=128, mode="sequential", warmup=2, frames=14)
    r = report.results[0]
    measured = [f for f in r.per_frame if not f.warmup]
    assert r.frames == len(measured) == 12 and r.warmup_frames == 2
    stage_sum = sum(f.decode_ms + f.preprocess_ms + f.inference_ms + f.postprocess_ms for f in measured) / 1000
    assert abs(r.wall_s - stage_sum) <= 0.1 * r.wall_s + 0.005  # nothing but bookkeeping lies outside the stages
    for f in measured:  # batch 1: a frame's latency is its own stages plus the reader's hand-over
        gap = f.latency_ms - (f.decode_ms + f.preprocess_ms + f.inference_ms + f.postprocess_ms)
        assert -0.01 <= gap <= 0.1 * f.latency_ms + 2.0
    assert r.fps == pytest.approx(12 / r.wall_s)
    assert r.latency.p50 <= r.latency.p90 <= r.latency.p99 <= r.latency.max
    assert r.bottleneck in {"decode", "preprocess", "inference", "postprocess"}
    assert r.first_frame_ms == r.per_frame[0].latency_ms


def test_warmup_by_frames_and_by_seconds_is_a_prefix(clip):
    r = measure(clip, [FakeBackend(0.0)], warmup=3).results[0]
    assert [f.warmup for f in r.per_frame] == [True] * 3 + [False] * 21
    r = measure(clip, [FakeBackend(0.02)], warmup=0, warmup_s=0.15).results[0]
    flags = [f.warmup for f in r.per_frame]
    assert 1 <= r.warmup_frames < 24 and flags == sorted(flags, reverse=True)


@pytest.mark.parametrize("streams, batch", [(1, 1), (1, 4), (2, 2), (3, 2)])
def test_pipelined_mode_processes_every_frame_exactly_once(clip, streams, batch):
    backend = FakeBackend()
    r = measure(clip, [backend], mode="pipelined", streams=streams, batch=batch, warmup=2, queue_size=2).results[0]
    pairs = [(f.stream, f.index) for f in r.per_frame]
    assert sorted(pairs) == [(s, i) for s in range(streams) for i in range(24)]  # all, and none twice
    assert [f.index for f in r.per_frame] == backend.seen  # each record belongs to the pixels that were processed
    assert r.frames + r.warmup_frames == 24 * streams and r.batch == batch and r.streams == streams
    assert not (r.dropped or r.stalled or r.ended_early)


def test_realtime_mode_drops_frames_when_the_model_is_slower_than_the_source(tmp_path):
    fast = write_clip(tmp_path / "fast.avi", n=40, fps=200.0)
    r = measure(fast, [FakeBackend(0.03)], mode="realtime", warmup=1).results[0]
    assert r.dropped > 0
    assert len(r.per_frame) + r.dropped == 40
    indices = [f.index for f in r.per_frame]
    assert indices == sorted(set(indices))


def test_modes_are_measured_side_by_side_with_speedups(clip):
    report = measure(clip, [FakeBackend(0.004, "teacher.pt"), FakeBackend(0.0, "student.pt")],
                     mode="sequential,pipelined", warmup=2)
    assert [(r.model, r.mode) for r in report.results] == [
        ("teacher.pt", "sequential"), ("teacher.pt", "pipelined"), ("student.pt", "sequential"),
        ("student.pt", "pipelined")]
    for r in report.results:
        reference = report.get("teacher.pt", r.mode)
        assert r.speedup == pytest.approx(r.fps / reference.fps)


# ---------------------------------------------------------------- streams that end or stall


def test_stalled_stream_is_reported_and_measured_frames_kept():
    r = measure(StallingSource(), [FakeBackend()], warmup=1, stall_timeout=0.3).results[0]
    assert r.stalled and r.frames + r.warmup_frames == 5
    assert [f.index for f in r.per_frame] == list(range(5))


def test_truncated_video_is_reported_as_ended_early(tmp_path):
    data = write_clip(tmp_path / "full.avi", n=24).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 3 // 4])
    r = measure(cut, [FakeBackend()], warmup=1).results[0]
    assert r.ended_early and 0 < r.frames < 24


def test_a_source_object_cannot_serve_two_runs():
    with pytest.raises(ValueError, match="read once"):
        measure(StallingSource(), [FakeBackend(), FakeBackend()])


# ---------------------------------------------------------------- output round trips


def test_json_and_csv_round_trip(clip, tmp_path):
    report = measure(clip, [FakeBackend(0.002, "teacher.pt"), FakeBackend(0.0, "student.pt")],
                     mode="sequential,pipelined", warmup=2, command="yolo-gism fps ...")
    back = read_json(write_json(report, tmp_path / "r.json"))
    assert back.to_dict() == report.to_dict()
    assert back.results[0].per_frame == report.results[0].per_frame
    rows = read_csv(write_csv(report, tmp_path / "r.csv"))
    assert rows == [dataclasses.replace(r, per_frame=[], stream_status=[]) for r in report.results]


# ---------------------------------------------------------------- bad input


def test_missing_source_fails_before_any_model_loads(tmp_path):
    missing = tmp_path / "no_such_clip.mp4"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        measure(missing, [tmp_path / "no_such_model.pt"])


def test_unreadable_source_and_unreachable_url_name_the_source(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match=re.escape(str(junk))):
        measure(junk, [FakeBackend()])
    with pytest.raises(SourceError) as e:
        measure("rtsp://admin:hunter2@127.0.0.1:1/live", [FakeBackend()], url_timeout=1.0)
    assert "admin:***@127.0.0.1:1/live" in str(e.value) and "hunter2" not in str(e.value)


def test_cli_reports_a_missing_source_by_name(tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    assert main(["fps", f"source={missing}", "models=x.pt"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_unknown_key_lists_the_valid_ones(clip):
    with pytest.raises(ValueError, match=r"unknown argument\(s\) fsp; valid: .*warmup"):
        fps_cli([], {"source": str(clip), "models": "a.pt", "fsp": 30})
    with pytest.raises(ValueError, match=r"fsp.*valid: .*imgsz"):
        measure(clip, [FakeBackend()], fsp=30)
    with pytest.raises(ValueError, match="mode='fast'"):
        FpsSettings(mode="fast")


def test_missing_model_and_cpu_half_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_backend(tmp_path / "nothing.pt")
    fake_pt = tmp_path / "m.pt"
    fake_pt.write_bytes(b"")
    with pytest.raises(ValueError, match="half=True needs a CUDA device"):
        load_backend(fake_pt, device="cpu", half=True)


# ---------------------------------------------------------------- real models


def test_pytorch_and_onnx_backends_find_what_ultralytics_finds(model_pair, val_images):
    """Postprocessing is right: boxes in original pixels equal Ultralytics' predict on the same frame."""
    from ultralytics import YOLO

    pt, onnx = model_pair
    backends = [load_backend(pt, imgsz=128), load_backend(onnx, imgsz=128)]
    found = 0
    for path in sorted(val_images.glob("*.png"))[:6]:
        image = cv2.imread(str(path))
        ref = YOLO(str(pt)).predict(image, imgsz=128, rect=False, verbose=False)[0].boxes
        for backend in backends:
            blob, metas = backend.preprocess([image])
            dets = backend.postprocess(backend.infer(blob), metas)[0]
            boxes = dets[:, :4] if isinstance(dets, np.ndarray) else dets.boxes
            assert len(boxes) == len(ref), backend.backend
            np.testing.assert_allclose(np.sort(boxes, axis=0), np.sort(ref.xyxy.numpy(), axis=0), atol=1.0)
        found += len(ref)
    assert found > 0  # the comparison was not vacuous


def test_rect_letterbox_infers_on_wide_frames_as_ultralytics_predict_does(model_pair, val_images, tmp_path):
    """rect=True (the default) pads a 2:1 frame to 64x128, not 128x128, for a .pt and a dynamic ONNX, and finds
    the boxes Ultralytics' predict finds with its own default rectangular letterbox; rect=False keeps the square."""
    from ultralytics import YOLO

    pt, _ = model_pair
    dynamic = Path(YOLO(str(shutil.copy(pt, tmp_path / "dyn.pt"))).export(format="onnx", imgsz=128, dynamic=True))
    paths = sorted(val_images.glob("*.png"))
    wide = np.ascontiguousarray(np.hstack([cv2.imread(str(paths[0])), cv2.imread(str(paths[1]))]))  # 128 x 256
    ref = YOLO(str(pt)).predict(wide, imgsz=128, verbose=False)[0].boxes.xyxy.numpy()
    assert len(ref) > 0  # the comparison is not vacuous
    for model in (pt, dynamic):
        backend = load_backend(model, imgsz=128)
        blob, metas = backend.preprocess([wide])
        assert tuple(blob.shape[2:]) == (64, 128), model.suffix
        boxes = backend.postprocess(backend.infer(blob), metas)[0]
        boxes = boxes[:, :4] if isinstance(boxes, np.ndarray) else boxes.boxes
        assert len(boxes) == len(ref), model.suffix
        np.testing.assert_allclose(np.sort(boxes, axis=0), np.sort(ref, axis=0), atol=1.0)
        square, _ = load_backend(model, imgsz=128, rect=False).preprocess([wide])
        assert tuple(square.shape[2:]) == (128, 128)
        mixed, _ = backend.preprocess([wide, wide[:, :128].copy()])  # frames of two shapes share one square batch
        assert tuple(mixed.shape[2:]) == (128, 128)


def test_cli_end_to_end_with_map_plots_and_files(model_pair, val_images, tiny_data, tmp_path, capsys):
    pt, onnx = model_pair
    out = tmp_path / "out"
    args = ["fps", f"source={val_images}", f"models={pt},{onnx}", "imgsz=128", "warmup=2", "mode=sequential",
            f"data={tiny_data}", f"out={out}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "detector.pt" in printed and "detector.onnx" in printed
    report = read_json(out / "fps.json")
    teacher, student = report.results
    assert (teacher.backend, student.backend) == ("pytorch", "onnxruntime")
    assert teacher.speedup == 1.0 and student.speedup == pytest.approx(student.fps / teacher.fps)
    assert all(0 < r.map50_95 <= r.map50 <= 1 for r in report.results)
    assert sum(f.detections for f in teacher.per_frame) > 0
    assert report.command.startswith("yolo-gism fps source=")
    env = report.environment
    assert env["logical_cores"] >= 1 and env["cpu"] and {"ultralytics", "numpy", "onnxruntime"} <= set(env["versions"])
    assert len(read_csv(out / "fps.csv")) == 2
    assert "| detector.onnx |" in (out / "fps.md").read_text()
    assert {p.name for p in out.glob("*.png")} == {"fps.png", "latency.png", "fps_map.png"}
    assert json.loads((out / "fps.json").read_text())["settings"]["imgsz"] == 128


def test_models_sharing_a_file_name_get_distinct_labels(clip, tmp_path):
    from yolo_gism.fps import _unique_labels

    assert _unique_labels(["runs/a/weights/best.pt", "runs/b/weights/best.pt", "x.onnx"]) == [
        "a/weights/best.pt", "b/weights/best.pt", "x.onnx"]
