"""ONNX export at three precisions with parity reports, INT8 calibration sources, the CLI, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from yolo_gism import cli
from yolo_gism.export import export, export_cli, match_detections
from yolo_gism.quantize import DEFAULT_VIDEOS, head_tail_nodes, list_frames, load_frames
from yolo_gism.runtime import Detections, OnnxDetector

IMGSZ = 128
PARITY = dict(imgsz=IMGSZ, parity_frames=8)


@pytest.fixture(scope="module")
def workdir(trained_model, tmp_path_factory) -> Path:
    """A private copy of the trained checkpoint: exports land in this folder."""
    folder = tmp_path_factory.mktemp("export")
    shutil.copy(trained_model, folder / "best.pt")
    return folder


@pytest.fixture(scope="module")
def val_frames(tiny_data) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((tiny_data.parent / "images" / "val").glob("*.png"))]


@pytest.fixture(scope="module")
def fp32(workdir, tiny_data):
    return export(workdir / "best.pt", precision="fp32", data=tiny_data, **PARITY)


@pytest.fixture(scope="module")
def int8(workdir, tiny_data, fp32):
    with pytest.warns(UserWarning, match="fewer than 300"):  # the tiny dataset has 144 images
        return export(workdir / "best.pt", precision="int8", calib=tiny_data, data=tiny_data, **PARITY)


def test_fp32_parity(fp32, workdir):
    assert fp32.path == workdir / "best.onnx" and fp32.report_path == workdir / "best.parity.json"
    report = json.loads(fp32.report_path.read_text())
    p = report["parity"]
    assert p["max_abs_diff_scores"] <= 1e-4
    # boxes are in input pixels (0..imgsz): float32 rounding grows with the coordinate, so 1e-4 of the input size
    assert p["max_abs_diff_boxes_px"] <= 1e-4 * IMGSZ
    assert p["torch_detections"] > 0 and p["detection_agreement"] == 1.0
    m = report["map"]
    assert m["torch"]["map50_95"] > 0.05 and abs(m["map50_95_drop_points"]) < 2
    assert report["versions"]["onnxruntime"] and report["export"]["input"] == [IMGSZ, IMGSZ]


def test_fp16_gets_its_own_file(fp32, workdir, tiny_data):
    before = fp32.path.read_bytes()
    res = export(workdir / "best.pt", precision="fp16", calib=tiny_data, **PARITY)
    assert res.path.name == "best-fp16.onnx" and fp32.path.read_bytes() == before
    det = OnnxDetector(res.path)
    assert not det.fp16  # float16 inside, float32 inputs and outputs
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(res.path)).graph.initializer)
    p = res.report["parity"]
    assert p["torch_detections"] > 0 and p["detection_agreement"] >= 0.9 and p["max_abs_diff_scores"] < 0.01


def test_int8_keeps_most_fp32_detections(int8, fp32, val_frames):
    assert int8.path.name == "best-int8.onnx"
    q = int8.report["quantization"]
    assert q["quant_format"] == "QDQ" and q["calibration_frames"] == 144
    ref, ours = OnnxDetector(fp32.path), OnnxDetector(int8.path)
    agree = match_detections([ref(f)[0] for f in val_frames], [ours(f)[0] for f in val_frames], iou=0.7)
    assert agree["torch_detections"] >= 10
    assert agree["detection_agreement"] >= 0.8, agree
    assert int8.report["parity"]["detection_agreement"] >= 0.7
    assert int8.report["map"]["map50_95_drop_points"] < 10


def test_int8_head_tail_stays_float(int8, fp32):
    graph = onnx.load(str(int8.path)).graph
    ops = {n.name: n.op_type for n in graph.node}
    assert sum(op == "QuantizeLinear" for op in ops.values()) > 10
    tail = head_tail_nodes(onnx.load(str(fp32.path)))
    assert {"Sigmoid", "Softmax"} <= {ops[name] for name in tail if name in ops}
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name in tail and node.op_type in {"Sigmoid", "Softmax"}:  # the head's scores and DFL bins
            assert producer[node.input[0]].op_type != "DequantizeLinear", f"{node.name} reads int8 values"
    assert OnnxDetector(int8.path).names == {0: "car", 1: "bus", 2: "person"}  # metadata kept


def test_nms_export_compares_at_baked_conf(workdir, tiny_data):
    res = export(workdir / "best.pt", precision="fp32", nms=True, conf=0.3, calib=tiny_data, **PARITY)
    assert res.path.name == "best-nms.onnx" and OnnxDetector(res.path).end2end
    p = res.report["parity"]
    assert p["conf"] == 0.3 and p["max_abs_diff"] is None and "baked" in p["note"]
    assert p["torch_detections"] > 0 and p["detection_agreement"] >= 0.95


def test_dynamic_export(workdir, tiny_data, tmp_path):
    res = export(workdir / "best.pt", precision="fp32", dynamic=True, calib=tiny_data, out_dir=tmp_path, **PARITY)
    det = OnnxDetector(res.path)
    assert det.dynamic and det.batch is None and res.path.parent == tmp_path
    assert res.report["parity"]["detection_agreement"] == 1.0


# ------------------------------------------------------------------------------------- frame sources
def _write_video(path: Path, n: int = 20) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(n):
        w.write(np.full((48, 64, 3), i * 10, np.uint8))
    w.release()
    return path


def test_calibration_sources(tiny_data, tmp_path):
    assert len(list_frames(tiny_data)) == 144  # train + val of the data.yaml
    assert len(list_frames(tiny_data, splits=("val",))) == 16
    folder = tiny_data.parent / "images" / "val"
    frames = load_frames(folder, 5)
    assert len(frames) == 5 and frames[0].shape == (128, 128, 3)
    video = _write_video(tmp_path / "clip.mp4")
    frames = load_frames(video, 7)  # spread over the clip, not its first 7 frames
    assert len(frames) == 7 and frames[-1].mean() > frames[0].mean() + 100


@pytest.mark.skipif(not DEFAULT_VIDEOS.is_dir(), reason=f"default calibration videos absent ({DEFAULT_VIDEOS})")
def test_default_videos_offer_300_frames():
    assert len(list_frames(DEFAULT_VIDEOS)) >= 300


def test_empty_or_missing_calibration_source(workdir, tmp_path):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_folder"):
        list_frames(empty)
    with pytest.raises(FileNotFoundError, match="no_such_video"):
        list_frames(tmp_path / "no_such_video.mp4")


def test_failed_export_keeps_existing_one(int8, workdir, tmp_path):
    before = int8.path.read_bytes(), int8.report_path.read_bytes()
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(ValueError, match="nothing_here"):
        export(workdir / "best.pt", precision="int8", calib=empty, **PARITY)
    assert (int8.path.read_bytes(), int8.report_path.read_bytes()) == before
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


# -------------------------------------------------------------------------------------------- bad input
def test_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="ghost.pt"):
        export(tmp_path / "ghost.pt", **PARITY)


def test_corrupt_model(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(ValueError, match="broken.pt"):
        export(bad, **PARITY)
    assert not (tmp_path / "broken.onnx").exists()


def test_not_a_detector(tmp_path):
    from ultralytics import YOLO

    YOLO("yolov8n-cls.yaml").save(tmp_path / "classifier.pt")
    with pytest.raises(ValueError, match="classifier.pt.*not a detector"):
        export(tmp_path / "classifier.pt", **PARITY)


def test_bad_precision(workdir):
    with pytest.raises(ValueError, match="fp32, fp16, int8"):
        export(workdir / "best.pt", precision="int4", **PARITY)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_rejects_unknown_key():
    with pytest.raises(ValueError, match="valid: model, imgsz, precision"):
        export_cli([], {"model": "best.pt", "precison": "int8"})


def test_cli_exports(workdir, tiny_data, tmp_path, capsys):
    args = ["export", f"model={workdir / 'best.pt'}", "imgsz=128", "precision=fp32", "dynamic=0", "opset=17",
            "nms=0", f"calib={tiny_data}", f"out_dir={tmp_path}", "parity_frames=4"]
    assert cli.main(args) == 0
    assert (tmp_path / "best.onnx").is_file() and (tmp_path / "best.parity.json").is_file()
    assert "detection agreement" in capsys.readouterr().out
    assert onnx.load(str(tmp_path / "best.onnx")).opset_import[0].version == 17
    assert cli.main(["export", "model=missing.pt"]) == 1


def test_match_detections_counts_one_to_one():
    box = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5]], np.float32)
    ref = Detections(box, np.array([0.9, 0.8], np.float32), np.array([1, 1]))
    got = Detections(box[:1], np.array([0.9], np.float32), np.array([1]))
    assert match_detections([ref], [got])["detection_agreement"] == 0.5
    other_class = Detections(box[:1], np.array([0.9], np.float32), np.array([2]))
    assert match_detections([ref], [other_class])["matched"] == 0
