"""offline=true: the teacher's detections, made once before training, ride through augmentation as instances."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ultralytics.models.yolo.detect import DetectionTrainer

from yolo_gism import GISMTrainer, distill
from yolo_gism.config import GISMConfig
from yolo_gism.geometry import ltrb_distances
from yolo_gism.offline import split_teacher_instances

FAST = dict(imgsz=128, batch=16, device="cpu", workers=0, plots=False, seed=0, deterministic=False, amp=False,
            verbose=False, exist_ok=True)
# what offline needs (no teacher maps per batch), and the box term on at the weight of the defaults until 2026-12-07
NO_MAPS = dict(offline=True, kd_feat=False, assign="student", selection="none", feature_layers="neck")
OFFLINE = dict(**NO_MAPS, kd_box=True, alpha=0.5)
STILL = dict(mosaic=0.0, degrees=0.0, translate=0.0, scale=0.0, shear=0.0, perspective=0.0, fliplr=0.0,
             hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)  # no augmentation: a batch's boxes are the stored ones


def _trainer(tiny_data, teacher, tmp_path, **kw) -> GISMTrainer:
    args = dict(model="yolov8n.yaml", data=str(tiny_data), teacher=str(teacher), epochs=2, project=str(tmp_path),
                name="t", kd_warmup=0, kd_ramp=0, **OFFLINE, **FAST)
    return GISMTrainer(overrides={**args, **kw})


def _ready(trainer: GISMTrainer) -> dict:
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    return trainer.preprocess_batch(next(iter(trainer.train_loader)))


def test_teacher_detections_are_ultralytics_own_predictions(tiny_data, trained_teacher, tmp_path):
    """Stored boxes (normalised to the original image) and confidences equal what Ultralytics' predictor returns
    for the same teacher with the same thresholds and class-agnostic NMS: decoding and letterbox are right."""
    from ultralytics import YOLO

    from yolo_gism import offline

    # fp32 like Ultralytics' predictor: on a CPU with native bf16, teacher_dtype=auto would round the scores and a
    # box near the confidence or NMS threshold could fall on the other side of it
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, teacher_dtype="fp32")
    _ready(trainer)
    predictor, stored = YOLO(str(trained_teacher)), trainer.teacher_instances
    compared = 0
    for f in trainer.train_loader.dataset.im_files[:8]:
        result = predictor.predict(f, imgsz=128, conf=offline.MIN_CONF, iou=offline.NMS_IOU, agnostic_nms=True,
                                   verbose=False)[0]
        np.testing.assert_allclose(stored.boxes[f], result.boxes.xywhn.numpy(), atol=2e-3)
        np.testing.assert_allclose(stored.logits[stored.rows[f]].sigmoid().amax(-1).numpy(),
                                   result.boxes.conf.numpy(), atol=1e-3)
        compared += len(result.boxes)
    assert compared >= 8  # the trained teacher does find the shapes
    assert stored.logits.sigmoid().amax(-1).min() >= offline.MIN_CONF


def test_instances_ride_in_the_batch_and_leave_it_before_ultralytics_loss(tiny_data, trained_teacher, tmp_path,
                                                                          monkeypatch):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, **STILL)
    batch = _ready(trainer)
    nc = len(trainer.data["names"])
    teacher = batch["cls"].view(-1) >= nc
    assert teacher.any() and (~teacher).any()
    files = batch["im_file"]
    for i, f in enumerate(files):  # unaugmented: each image carries exactly its stored instances, in order
        mine = teacher & (batch["batch_idx"] == i)
        rows = (batch["cls"].view(-1)[mine] - nc).long().numpy()
        np.testing.assert_array_equal(rows, trainer.teacher_instances.rows[f])
        np.testing.assert_allclose(batch["bboxes"][mine].numpy(), trainer.teacher_instances.boxes[f], atol=1e-4)
    seen = []
    real = trainer.gism_criterion.detection
    trainer.gism_criterion.detection = lambda preds, b: (seen.append(b), real(preds, b))[1]
    trainer.model(batch)
    assert (seen[0]["cls"] < nc).all() and len(seen[0]["cls"]) == int((~teacher).sum())
    drawn = []  # training-batch plots show the ground truth only: the instances' class column holds row codes
    monkeypatch.setattr(DetectionTrainer, "plot_training_samples", lambda self, b, ni: drawn.append(b))
    trainer.plot_training_samples(batch, 0)
    assert (drawn[0]["cls"] < nc).all() and len(drawn[0]["cls"]) == int((~teacher).sum())


def test_split_teacher_instances_by_hand():
    batch = {"cls": torch.tensor([[0.0], [5.0], [1.0], [3.0]]), "batch_idx": torch.tensor([0.0, 0.0, 1.0, 1.0]),
             "bboxes": torch.arange(16.0).view(4, 4), "img": torch.zeros(2, 3, 8, 8)}
    gt, inst = split_teacher_instances(batch, nc=3)
    assert gt["cls"].view(-1).tolist() == [0.0, 1.0] and gt["batch_idx"].tolist() == [0.0, 1.0]
    assert gt["bboxes"][:, 0].tolist() == [0.0, 8.0] and gt["img"] is batch["img"]
    assert inst["row"].tolist() == [2, 0] and inst["batch_idx"].tolist() == [0, 1]
    assert inst["bboxes"][:, 0].tolist() == [4.0, 12.0]


@pytest.mark.parametrize("target", ["aligned", "teacher"])
def test_offline_terms_follow_the_formula_written_out(tiny_data, trained_teacher, tmp_path, target):
    """cls = lam beta T^2 sum_a w_a sum_c KL_bin(q_a sig(t/T) || sig(s/T)) / sum_a w_a; box = lam alpha sum_a w_a
    (L1 + 1 - IoU) / sum_a w_a; a over the anchors the assigner gives an instance, w_a = that instance's max
    probability, q_a the anchor's normalised alignment metric (the assigner's class target) for offline_target=aligned,
    else 1."""
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, offline_target=target, **STILL)
    batch = _ready(trainer)
    crit = trainer.gism_criterion
    gt, inst = split_teacher_instances(batch, len(trainer.data["names"]))
    with torch.no_grad():
        student = trainer.model(batch["img"])
    assigned = []
    real = crit.instance_assigner.forward
    crit.instance_assigner.forward = lambda *a: (assigned.append(out := real(*a)), out)[1]
    crit.kd_lambda, crit.cfg.alpha, crit.cfg.cls_gain = 3.0, 0.25, 0.5
    with torch.no_grad():
        terms = {k: float(v) for k, v in crit.offline_terms(student, gt, inst).items()}
    _, _, quality, fg, index = assigned[0]
    quality = quality.amax(-1) if target == "aligned" else torch.ones_like(quality[..., 0])
    boxes, rows, _ = crit.padded_instances(inst, gt)
    from ultralytics.utils.tal import make_anchors

    anchors, strides = make_anchors(student["feats"], crit.strides, 0.5)
    s_scores = student["scores"].permute(0, 2, 1)
    s_ltrb = ltrb_distances(student["boxes"], crit.student_reg_max)
    t_temp = crit.cfg.temperature
    cls_sum = box_sum = weights = 0.0
    for b, a in fg.nonzero().tolist():
        k = int(index[b, a])
        t = crit.instance_logits[rows[b, k]]
        w = float(t.sigmoid().max())
        p = quality[b, a] * torch.sigmoid(t / t_temp)
        p = p.clamp(1e-6, 1 - 1e-6) if target == "aligned" else p  # the logit round trip's clamp
        q = torch.sigmoid(s_scores[b, a] / t_temp)
        cls_sum += w * float((p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).sum())
        x1, y1, x2, y2 = (boxes[b, k] / strides[a]).tolist()
        ax, ay = anchors[a].tolist()
        edges = torch.tensor([ax - x1, ay - y1, x2 - ax, y2 - ay]).clamp(0, crit.student_reg_max - 1.01)
        s = s_ltrb[b, a].clamp(min=0)
        inter = (torch.minimum(s[0], edges[0]) + torch.minimum(s[2], edges[2])) * \
                (torch.minimum(s[1], edges[1]) + torch.minimum(s[3], edges[3]))
        union = (s[0] + s[2]) * (s[1] + s[3]) + (edges[0] + edges[2]) * (edges[1] + edges[3]) - inter
        box_sum += w * float((s_ltrb[b, a] - edges).abs().mean() + 1 - inter / union)
        weights += w
    assert weights > 0 and terms["feat"] == 0 and terms["cross"] == 0
    if target == "aligned":  # the quality really scales: some assigned anchors are placed worse than others
        assert float(quality[fg].min()) < 0.9 * float(quality[fg].max())
    assert terms["cls"] == pytest.approx(3.0 * 0.5 * t_temp**2 * cls_sum / weights, rel=1e-4)
    assert terms["box"] == pytest.approx(3.0 * 0.25 * box_sum / weights, rel=1e-4)


def test_offline_training_never_runs_the_teacher_and_distils(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path)
    batch = _ready(trainer)
    calls = []
    trainer.gism_criterion.teacher = lambda images: calls.append(len(images))
    loss, items = trainer.model(batch)
    assert calls == []
    assert float(items["kdcls_loss"]) > 0 and float(items["kdbox_loss"]) > 0 and float(items["feat_loss"]) == 0
    loss[-1].backward()  # the distillation part alone reaches both branches of the student's head
    head = trainer.model.model[-1]
    for branch in (head.cv2, head.cv3):  # box, class
        assert sum(float(p.grad.abs().sum()) for p in branch.parameters() if p.grad is not None) > 0


def test_offline_run_end_to_end_writes_kd_columns(tiny_data, trained_teacher, tmp_path):
    distill("yolov8n.yaml", teacher=str(trained_teacher), data=str(tiny_data), epochs=2, project=str(tmp_path),
            name="off", kd_warmup=1, kd_ramp=0, kd_gain=1.0, **OFFLINE, **FAST)
    with open(tmp_path / "off" / "results.csv") as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    assert [r["train/kdcls_loss"] for r in rows][0] == 0 and rows[1]["train/kdcls_loss"] > 0
    assert rows[1]["train/feat_loss"] == 0 and rows[1]["metrics/mAP50-95(B)"] >= 0


@pytest.mark.parametrize("kw, match", [
    (dict(offline=True), r"kd_feat=true, assign=teacher"),
    (dict(offline=True, kd_feat=False, assign="student"), r"selection=conf, feature_layers=stride4"),  # defaults
    (dict(NO_MAPS, selection="gi"), r"selection=gi"),
    (dict(NO_MAPS, kd_cross=True), r"kd_cross=true"),
    (dict(NO_MAPS, feature_layers="backbone+neck"), r"feature_layers=backbone\+neck"),
    (dict(NO_MAPS, kd_cls=False, kd_box=False), r"nothing to distill"),
    (dict(NO_MAPS, offline_target="soft"), r"offline_target"),
])
def test_offline_refuses_what_needs_the_teacher_every_batch(kw, match):
    with pytest.raises(ValueError, match=match):
        GISMConfig.from_dict(kw)

