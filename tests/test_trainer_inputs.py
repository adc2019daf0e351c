"""Bad input gets a clear error before training starts; supported options work; every pair constructs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolo_gism import GISMTrainer
from yolo_gism.criterion import LOSS_NAMES
from yolo_gism.teacher import resolve_class_groups

FAST = dict(imgsz=64, batch=4, device="cpu", workers=0, plots=False, seed=0, deterministic=False, amp=False,
            verbose=False, exist_ok=True, epochs=1, kd_warmup=0, kd_ramp=0)


def make(tiny_data, tmp_path, **kw) -> GISMTrainer:
    # every GISM term and GI selection, whatever the defaults (the box term at the weight of the defaults until
    # 2026-12-07; the cross-head term needs the layers feeding Detect)
    args = dict(model="yolov8n.yaml", data=str(tiny_data), project=str(tmp_path), name="t", kd_box=True, alpha=0.5,
                kd_cross="student_layers" not in kw, selection="gi", **FAST)
    if "student_layers" not in kw:
        args["feature_layers"] = "neck"
    args.update(kw)
    return GISMTrainer(overrides=args)


def one_loss(trainer: GISMTrainer):
    trainer._setup_train()
    trainer.epoch = 0
    trainer._model_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    return trainer.model(batch)


# ----- errors raised before anything is trained or written --------------------------------------
def test_missing_teacher_fails_before_any_run_folder(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"teacher=.*nope\.pt: file not found"):
        make(tiny_data, tmp_path, teacher=str(tmp_path / "nope.pt"))
    assert not (tmp_path / "t").exists()


def test_no_teacher_is_an_error(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="teacher= is required"):
        make(tiny_data, tmp_path)


def test_corrupt_teacher(tiny_data, tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x80\x02 this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match=r"teacher=.*corrupt\.pt: cannot be read"):
        make(tiny_data, tmp_path, teacher=str(bad))


def test_truncated_teacher(tiny_data, tmp_path, trained_teacher):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(Path(trained_teacher).read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut\.pt: cannot be read"):
        make(tiny_data, tmp_path, teacher=str(cut))


def test_teacher_that_is_not_a_detector(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="not a detection model"):
        make(tiny_data, tmp_path, teacher="yolov8n-seg.yaml")
    from ultralytics.nn.tasks import ClassificationModel

    path = tmp_path / "cls.pt"
    torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=3, verbose=False)}, path)
    with pytest.raises(ValueError, match="not a detection model"):
        make(tiny_data, tmp_path, teacher=str(path))


def test_classes_that_do_not_match(tiny_data, tmp_path, trained_teacher):
    other = tmp_path / "other.yaml"
    other.write_text(tiny_data.read_text().replace("car", "dog").replace("bus", "cat"))
    with pytest.raises(ValueError, match=r"neither match the student's.*pass class_map"):
        make(other, tmp_path, teacher=str(trained_teacher))
    trainer = make(other, tmp_path, teacher=str(trained_teacher), class_map={"car": "dog", "bus": "cat", 2: 2})
    assert trainer.class_groups == [[0], [1], [2]]


def test_class_resolution_rules():
    coco_like = {i: n for i, n in enumerate(["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"])}
    traffic = {0: "car", 1: "bus", 2: "truck", 3: "motorcycle", 4: "bicycle", 5: "person"}
    assert resolve_class_groups(traffic, traffic) == [[i] for i in range(6)]
    assert resolve_class_groups(coco_like, traffic) == [[2], [5], [7], [3], [1], [0]]  # superset by name
    assert resolve_class_groups(coco_like, {0: "vehicle"}, {"car": "vehicle", "bus": 0, 7: 0}) == [[2, 5, 7]]
    with pytest.raises(ValueError, match="without a teacher class"):
        resolve_class_groups(coco_like, {0: "vehicle", 1: "human"}, {"car": "vehicle"})
    with pytest.raises(ValueError, match="teacher class 'boat' not found"):
        resolve_class_groups(coco_like, {0: "vehicle"}, {"boat": "vehicle"})


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"distill_model": "t.pt"}, ValueError, "not both"),
        ({"batch": -1}, ValueError, "AutoBatch"),
        ({"compile": True}, ValueError, "compile=True is not supported"),
        ({"quantize": 8}, ValueError, "quantize=8"),
        ({"epochs": -1}, ValueError, "epochs=-1"),
        ({"temprature": 2}, ValueError, r"unknown argument\(s\) \['temprature'\].*temperature"),
        ({"temperature": 0}, ValueError, "temperature=0.0 must be >"),
        ({"alpha": 2}, ValueError, "alpha=2.0 must be <= 1"),
        ({"student_layers": [15, 18], "teacher_layers": [15]}, ValueError, "same count"),
    ],
)
def test_refused_arguments(tiny_data, tmp_path, trained_teacher, kw, error, match):
    with pytest.raises(error, match=match):
        make(tiny_data, tmp_path, teacher=str(trained_teacher), **kw)
    assert not (tmp_path / "t" / "weights").exists()


def test_layer_index_out_of_range(tiny_data, tmp_path, trained_teacher):
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), student_layers=[99], teacher_layers=[15])
    with pytest.raises(ValueError, match="student_layers: index 99 is out of range"):
        trainer._setup_train()
    assert not list((tmp_path / "t" / "weights").glob("*.pt"))


def test_layers_of_different_size(tiny_data, tmp_path, trained_teacher):
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), student_layers=[15], teacher_layers=[18])
    with pytest.raises(ValueError, match="level 0: student map .* differ in size"):
        trainer._setup_train()


def test_strides_that_differ(tiny_data, tmp_path):
    trainer = make(tiny_data, tmp_path, teacher="yolov8s-p2.yaml")
    with pytest.raises(ValueError, match="teacher strides .* differ"):
        trainer._setup_train()


# ----- options that work with distillation -------------------------------------------------------
def test_custom_layers_distill_through_the_recorder(tiny_data, tmp_path, trained_teacher):
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), student_layers=[4, 6, 15],
                   teacher_layers=[4, 6, 15])
    loss, items = one_loss(trainer)
    assert float(items["feat_loss"]) > 0 and len(trainer.adapters) == 3
    assert not any(m._forward_hooks for m in trainer.model.modules())  # nothing registered on the student
    trainer.recorder.detach()


@pytest.mark.parametrize("name, finer", [("backbone+neck", []), ("stride4+backbone+neck", [(32, 64)])])
def test_named_layer_sets_distill_their_levels_through_the_recorder(tiny_data, tmp_path, trained_teacher, name, finer):
    # yolov8n student, yolov8s teacher: the same graph, so the same indices on both sides, at widths that differ
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), feature_layers=name, kd_cross=False)
    loss, items = one_loss(trainer)
    convs = [[m for m in a.modules() if isinstance(m, torch.nn.Conv2d)] for a in trainer.adapters]
    widths = [(c[0].in_channels, c[-1].out_channels) for c in convs]  # student in, teacher out, whatever the adapter
    assert widths == [*finer, (64, 128), (128, 256), (256, 512), (64, 128), (128, 256), (256, 512)]
    assert len(trainer.level_weights.running) == 6 + len(finer) and float(items["feat_loss"]) > 0
    assert not any(m._forward_hooks for m in trainer.model.modules())
    trainer.recorder.detach()


def test_single_cls_maps_all_teacher_classes_to_the_one_class(tiny_data, tmp_path, trained_teacher):
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), single_cls=True)
    assert trainer.class_groups == [[0, 1, 2]]
    loss, items = one_loss(trainer)
    assert all(float(items[n]) > 0 for n in LOSS_NAMES) and torch.isfinite(loss).all()


def test_time_limit_works(tiny_data, tmp_path, trained_teacher):
    trainer = make(tiny_data, tmp_path, teacher=str(trained_teacher), time=0.0003, epochs=50)
    trainer.train()
    assert (tmp_path / "t" / "weights" / "last.pt").exists() and trainer.epoch < 49


# ----- every supported pair constructs and distills ------------------------------------------------
@pytest.mark.parametrize(
    "teacher, student",
    [
        ("yolov8l.yaml", "yolov8n.yaml"),
        ("yolov5l.yaml", "yolov5s.yaml"),
        ("yolov8l.yaml", "yolov5s.yaml"),
        ("yolov5l.yaml", "yolov8n.yaml"),
        ("yolo11l.yaml", "yolo11n.yaml"),
        ("yolo26l.yaml", "yolo26n.yaml"),
    ],
)
def test_pairs_construct_and_distill(tiny_data, tmp_path, teacher, student):
    trainer = make(tiny_data, tmp_path, teacher=teacher, model=student)
    loss, items = one_loss(trainer)
    assert torch.isfinite(loss).all()
    assert all(float(items[n]) > 0 for n in LOSS_NAMES), items
    loss.sum().backward()
    assert all(p.grad is not None for p in trainer.adapters.parameters())


def test_cli_distill_passes_both_kinds_of_arguments(tiny_data, tmp_path, trained_teacher):
    from yolo_gism.cli import main

    code = main(["distill", "model=yolov8n.yaml", f"teacher={trained_teacher}", f"data={tiny_data}", "epochs=1",
                 "imgsz=64", "batch=8", "device=cpu", "workers=0", "plots=False", f"project={tmp_path}", "name=cli",
                 "temperature=4", "kd_warmup=0", "amp=False"])
    assert code == 0
    state = torch.load(tmp_path / "cli" / "weights" / "gism_last.pt", weights_only=True)
    assert state["config"]["temperature"] == 4.0
    assert main(["distill", "model=yolov8n.yaml", f"teacher={tmp_path / 'missing.pt'}", f"data={tiny_data}"]) == 1


def test_ultralytics_version_range_is_checked():
    from yolo_gism.compat import check_ultralytics_version

    assert check_ultralytics_version("8.4.190") == "8.4.190"
    for version in ("8.3.250", "8.4.189", "8.5.0", "9.0.1"):
        with pytest.raises(ImportError, match=r"ultralytics>=8\.4\.190,<8\.5"):
            check_ultralytics_version(version)


def test_auto_teacher_precision_follows_the_hardware(monkeypatch):
    import yolo_gism.teacher as teacher

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(teacher, "cpu_has_native_bf16", lambda: True)
    assert (teacher.auto_dtype(cpu), teacher.auto_dtype(cuda)) == ("bf16", "fp16")
    monkeypatch.setattr(teacher, "cpu_has_native_bf16", lambda: False)
    assert (teacher.auto_dtype(cpu), teacher.auto_dtype(cuda)) == ("fp32", "fp16")


def test_bf16_teacher_outputs_are_bf16_rounded_fp32_ones(trained_teacher):
    from yolo_gism.teacher import FrozenTeacher, load_teacher_model

    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    fp32 = FrozenTeacher(load_teacher_model(str(trained_teacher)), torch.device("cpu"), "fp32")(images)
    bf16 = FrozenTeacher(load_teacher_model(str(trained_teacher)), torch.device("cpu"), "bf16")(images)
    assert bf16["scores"].dtype == torch.bfloat16
    # bf16 keeps 8 significant bits: close to fp32, but not equal (it really ran in bf16)
    diff = (fp32["scores"].sigmoid() - bf16["scores"].float().sigmoid()).abs()
    assert 0 < diff.max() < 0.05


def test_cpu_teacher_runs_channels_last_with_the_same_outputs(trained_teacher):
    from yolo_gism.teacher import FrozenTeacher, load_teacher_model

    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    teacher = FrozenTeacher(load_teacher_model(str(trained_teacher)), torch.device("cpu"), "fp32")
    conv = next(m for m in teacher.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = load_teacher_model(str(trained_teacher)).eval().fuse(verbose=False)
    with torch.no_grad():
        want = plain(images)[1]
    got = teacher(images)
    for key in ("boxes", "scores"):
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=1e-4)
    for g, w in zip(got["feats"], want["feats"]):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_cpu_flags_and_model_come_from_proc_cpuinfo(monkeypatch):
    import yolo_gism.teacher as teacher
    from yolo_gism import cpuinfo

    text = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: sse avx2 avx512_bf16\n\nprocessor\t: 1\n"
    monkeypatch.setattr(cpuinfo, "_cpuinfo", lambda: text)
    assert cpuinfo.cpu_model() == "Test CPU 9000"
    assert cpuinfo.cpu_flags() == {"sse", "avx2", "avx512_bf16"}
    assert teacher.cpu_has_native_bf16()
    monkeypatch.setattr(cpuinfo, "_cpuinfo", lambda: "")
    assert cpuinfo.cpu_flags() == set() and not teacher.cpu_has_native_bf16() and cpuinfo.cpu_model()
