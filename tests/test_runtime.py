"""The torch-free ONNX Runtime detector: letterbox, NMS, end-to-end decoding and its equality with Ultralytics.

Exports come from Ultralytics' own exporter at 128 px so that this file tests the runtime alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_gism.runtime import Detections, LetterboxMeta, OnnxDetector, decode_raw, letterbox, scale_boxes

IMGSZ = 128
ROOT = Path(__file__).resolve().parents[1]


def ultra_export(pt: Path, folder: Path, **kwargs) -> Path:
    """Ultralytics' ONNX export of a copy of pt, in its own folder (exports land beside the checkpoint)."""
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    work = Path(shutil.copy(pt, folder / "m.pt"))
    return Path(YOLO(str(work)).export(format="onnx", imgsz=IMGSZ, device="cpu", verbose=False, **kwargs))


@pytest.fixture(scope="module")
def exports(trained_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime_exports")
    variants = {"static": {}, "dynamic": {"dynamic": True}, "nms": {"nms": True}, "batch2": {"batch": 2}}
    return {name: ultra_export(trained_model, root / name, **kw) for name, kw in variants.items()}


@pytest.fixture(scope="module")
def frames(tiny_data) -> list[np.ndarray]:
    """Val images plus odd sizes: portrait, landscape, tiny and 4K."""
    imgs = [cv2.imread(str(p)) for p in sorted((tiny_data.parent / "images" / "val").glob("*.png"))[:6]]
    odd = [(211, 97), (333, 1000), (7, 13), (13, 7), (2160, 3840)]
    return imgs + [cv2.resize(imgs[i % len(imgs)], (w, h)) for i, (h, w) in enumerate(odd)]


def ultra_predict(onnx: Path, frame: np.ndarray, **kw) -> Detections:
    from ultralytics import YOLO

    r = YOLO(str(onnx), task="detect").predict(frame, imgsz=IMGSZ, verbose=False, **kw)[0].boxes
    return Detections(r.xyxy.numpy(), r.conf.numpy(), r.cls.numpy().astype(np.int64))


def assert_same(ours: Detections, ref: Detections, px: float = 1.0, score: float = 1e-3):
    assert len(ours) == len(ref)
    np.testing.assert_array_equal(ours.classes, ref.classes)
    np.testing.assert_allclose(ours.boxes, ref.boxes, atol=px)
    np.testing.assert_allclose(ours.scores, ref.scores, atol=score)
    assert ours.boxes.dtype == np.float32 and ours.scores.dtype == np.float32 and ours.classes.dtype == np.int64


# ------------------------------------------------------------------------------------------- letterbox
@pytest.mark.parametrize("hw", [(7, 13), (13, 7), (640, 480), (480, 640), (2160, 3840), (1, 300), (128, 128)])
@pytest.mark.parametrize("new_shape,auto", [((128, 128), False), ((96, 160), False), ((128, 128), True)])
def test_letterbox_matches_ultralytics(hw, new_shape, auto):
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes as ultra_scale_boxes

    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ours, meta = letterbox(img, new_shape, auto=auto, stride=32)
    ref = LetterBox(new_shape, auto=auto, stride=32)(image=img.copy())
    np.testing.assert_array_equal(ours, ref)
    boxes = np.random.default_rng(1).uniform(0, max(ours.shape[:2]), (20, 4)).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]  # x2 >= x1, some past the edge so clipping is exercised
    expected = ultra_scale_boxes(ours.shape[:2], boxes.copy(), hw)
    np.testing.assert_allclose(scale_boxes(boxes, meta), expected, atol=1e-3)


def test_scale_boxes_inverts_letterbox():
    """A box drawn on the original lands back on itself after letterbox -> network pixels -> original."""
    meta = letterbox(np.zeros((333, 1000, 3), np.uint8), (128, 128))[1]
    assert meta == LetterboxMeta((333, 1000), (128 / 1000, 43 / 333), (0, 42))
    box = np.array([[100.0, 50.0, 900.0, 300.0]], np.float32)
    net = box * np.tile(meta.gain, 2) + np.tile(meta.pad, 2)
    np.testing.assert_allclose(scale_boxes(net, meta), box, atol=1e-3)


# -------------------------------------------------------------------------------------------------- NMS
@pytest.mark.parametrize("conf,agnostic", [(0.25, False), (0.05, False), (0.25, True)])
def test_numpy_nms_matches_ultralytics(conf, agnostic):
    import torch
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(3)
    nc, anchors = 4, 600
    centres = rng.uniform(20, 100, (anchors, 2))
    sizes = rng.uniform(5, 40, (anchors, 2))
    scores = rng.uniform(0, 1, (anchors, nc)) ** 3  # mostly low, a few high: many overlaps to suppress
    raw = np.concatenate([centres, sizes, scores], 1).T[None].astype(np.float32)
    ref = non_max_suppression(torch.from_numpy(raw), conf, 0.7, agnostic=agnostic, max_det=50)[0].numpy()
    box, score, cls = decode_raw(raw[0], conf, 0.7, 50, agnostic)
    assert len(ref) > 5
    np.testing.assert_allclose(box, ref[:, :4], atol=1e-4)
    np.testing.assert_allclose(score, ref[:, 4], atol=1e-6)
    np.testing.assert_array_equal(cls, ref[:, 5].astype(np.int64))


# ------------------------------------------------------------------------------ equality with Ultralytics
@pytest.mark.parametrize("variant", ["static", "dynamic"])
@pytest.mark.parametrize("conf", [0.25, 0.01])
def test_detector_equals_ultralytics_onnx(exports, frames, variant, conf):
    det = OnnxDetector(exports[variant], conf=conf)
    assert det.names == {0: "car", 1: "bus", 2: "person"} and det.imgsz == (IMGSZ, IMGSZ) and not det.end2end
    assert det.dynamic == (variant == "dynamic")
    total = 0
    for frame in frames:
        ours, ref = det(frame)[0], ultra_predict(exports[variant], frame, conf=conf)
        assert_same(ours, ref)
        total += len(ref)
    assert total >= len(frames) // 2, "the trained model should find objects: equality must not hold vacuously"


def test_nms_export_equals_ultralytics(exports, frames):
    det = OnnxDetector(exports["nms"])
    assert det.end2end
    found = 0
    for frame in frames:
        ours, ref = det(frame)[0], ultra_predict(exports["nms"], frame)
        assert_same(ours, ref)
        found += len(ref)
    assert found > 0


def test_end2end_decoding_of_hand_built_rows(exports):
    det = OnnxDetector(exports["nms"], conf=0.3, max_det=2)
    raw = np.zeros((2, 300, 6), np.float32)
    raw[0, :3] = [[10, 20, 50, 60, 0.9, 2], [0, 0, 128, 128, 0.5, 0], [5, 5, 6, 6, 0.2, 1]]  # last under conf
    raw[1, 0] = [-10, 30, 40, 200, 0.8, 1]  # off the image: clipped
    metas = [letterbox(np.zeros((64, 128, 3), np.uint8), (128, 128))[1], LetterboxMeta((128, 128), (1, 1), (0, 0))]
    a, b = det.postprocess(raw, metas)
    np.testing.assert_allclose(a.boxes, [[10, 0, 50, 28], [0, 0, 128, 64]])  # pad top 32 removed, then clipped
    np.testing.assert_allclose(a.scores, [0.9, 0.5])
    np.testing.assert_array_equal(a.classes, [2, 0])
    np.testing.assert_allclose(b.boxes, [[0, 30, 40, 128]])
    assert b.classes.dtype == np.int64


def test_static_batch_pads_last_batch(exports, frames):
    det2, det1 = OnnxDetector(exports["batch2"], conf=0.05), OnnxDetector(exports["static"], conf=0.05)
    assert det2.batch == 2 and det1.batch == 1
    batch = frames[:3]
    for ours, ref in zip(det2(batch), [det1(f)[0] for f in batch]):
        assert_same(ours, ref, px=1e-3, score=1e-5)


def test_dynamic_batch_takes_any_size(exports, frames):
    det = OnnxDetector(exports["dynamic"], conf=0.05)
    assert det.batch is None
    same = frames[:5]  # same shapes: one rectangular batch
    blob, metas = det.preprocess(same)
    assert blob.shape[0] == 5 and det.infer(blob).shape[0] == 5
    for ours, frame in zip(det(same), same):
        assert_same(ours, det(frame)[0], px=1e-3, score=1e-5)


def test_float16_input_model(exports, frames, tmp_path):
    """A graph that takes float16 (Ultralytics' GPU half exports) gets a float16 blob and still decodes."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = tmp_path / "half.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(exports["static"])), keep_io_types=False), str(half))
    det, ref = OnnxDetector(half, conf=0.25), OnnxDetector(exports["static"], conf=0.25)
    assert det.fp16 and det.preprocess(frames[:1])[0].dtype == np.float16
    n = sum(len(ref(f)[0]) for f in frames[:6])
    assert n > 0 and sum(len(det(f)[0]) for f in frames[:6]) == n
    ours, theirs = det(frames[0])[0], ref(frames[0])[0]
    np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=1.0)


def test_providers_and_threads(exports):
    with pytest.warns(UserWarning, match="not available"):
        det = OnnxDetector(exports["static"], providers=["NoSuchExecutionProvider", "cpu"], threads=1)
    assert det.session.get_providers() == ["CPUExecutionProvider"]
    assert det.session.get_session_options().intra_op_num_threads == 1


def test_runtime_imports_no_torch(exports, frames, tmp_path):
    """In a fresh process that cannot import torch or ultralytics, the runtime still detects."""
    np.save(tmp_path / "frame.npy", frames[0])
    code = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'ultralytics', 'torchvision'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from yolo_gism.runtime import OnnxDetector
det = OnnxDetector({str(exports['static'])!r}, conf=0.01)
out = det(np.load({str(tmp_path / 'frame.npy')!r}))
assert not any(m.split('.')[0] in ('torch', 'ultralytics') for m in sys.modules), 'torch was imported'
print(len(out[0]))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 0


# --------------------------------------------------------------------------------------------- bad input
def test_missing_model():
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxDetector("/no/such/dir/nope.onnx")


def test_corrupt_and_truncated_models(exports, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(4096))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exports["static"].read_bytes()[:200_000])
    for path in (corrupt, truncated):
        with pytest.raises(ValueError, match=path.name):
            OnnxDetector(path)


def _tiny_graph(path: Path, out_shape: list[int], metadata: dict[str, str]) -> Path:
    """A one-node ONNX model mapping a 1x3x32x32 image to out_shape (a classifier, or junk)."""
    import onnx
    from onnx import TensorProto, helper

    n = int(np.prod(out_shape))
    shape = helper.make_tensor("shape", TensorProto.INT64, [len(out_shape)], out_shape)
    nodes = [helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["sl"]),
             helper.make_node("Reshape", ["sl", "shape"], ["output0"])]
    nodes.insert(0, helper.make_node("Flatten", ["images"], ["flat"], axis=0))
    bounds = (("starts", 0), ("ends", n), ("axes", 1))
    inits = [shape] + [helper.make_tensor(k, TensorProto.INT64, [1], [v]) for k, v in bounds]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("out_shape,meta", [
    ([1, 10], {"task": "classify"}),  # a classifier
    ([1, 10], {}),  # no metadata, rank 2
    ([1, 9, 21], {"names": "{0: 'a', 1: 'b', 2: 'c'}"}),  # 4 + nc channels expected (7), 9 given
    ([1, 7, 21], {"task": "segment", "names": "{0: 'a', 1: 'b', 2: 'c'}"}),
])
def test_not_a_detector(tmp_path, out_shape, meta):
    path = _tiny_graph(tmp_path / "other.onnx", out_shape, meta)
    with pytest.raises(ValueError, match="other.onnx"):
        OnnxDetector(path)


@pytest.mark.parametrize("bad", [
    np.zeros((32, 32, 3), np.float32),  # float image
    np.zeros((32, 32), np.uint8),  # grey
    np.zeros((32, 32, 4), np.uint8),  # BGRA
    np.zeros((0, 32, 3), np.uint8),  # empty
    [],  # no images
    "image.jpg",  # a path, not pixels
])
def test_bad_images(exports, bad):
    det = OnnxDetector(exports["static"])
    with pytest.raises(ValueError, match="m.onnx"):
        det(bad)
