"""assign=teacher: Ultralytics' task-aligned assigner ranks anchors by the teacher's predictions (LAD)."""

from __future__ import annotations

import pytest
import torch

from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors

from yolo_gism.assign import TeacherGuidedAssigner, install
from yolo_gism.criterion import LOSS_NAMES

from test_trainer import _trainer


def _assigner_inputs(seed: int, batch: int = 2, anchors: int = 64, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(batch, anchors, 2, generator=g) * 100
    boxes = torch.cat([centres - 10, centres + 10], -1)
    return torch.rand(batch, anchors, classes, generator=g), boxes


def _ground_truth():
    anchor_points = torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="xy"), -1).view(-1, 2)
    anchor_points = anchor_points * 12.5 + 6.25
    gt_labels = torch.tensor([[[0.0], [2.0]], [[1.0], [0.0]]])
    gt_bboxes = torch.tensor([[[5.0, 5.0, 40.0, 40.0], [50.0, 20.0, 90.0, 70.0]],
                              [[10.0, 60.0, 60.0, 95.0], [0.0, 0.0, 0.0, 0.0]]])
    mask_gt = gt_bboxes.sum(-1, keepdim=True).gt(0).float()
    return anchor_points, gt_labels, gt_bboxes, mask_gt


def test_wrapper_assigns_from_the_teacher_once_then_from_the_student_again():
    stock = TaskAlignedAssigner(topk=5, num_classes=3, alpha=0.5, beta=6.0)
    wrapped = TeacherGuidedAssigner(stock)
    student, teacher = _assigner_inputs(0), _assigner_inputs(1)
    truth = _ground_truth()
    wrapped.use_next(*teacher)
    got = wrapped(*student, *truth)
    for a, b in zip(got, stock(*teacher, *truth)):
        torch.testing.assert_close(a, b)
    assert not torch.equal(got[2], stock(*student, *truth)[2])  # the targets do depend on whose predictions
    for a, b in zip(wrapped(*student, *truth), stock(*student, *truth)):  # used once: back to the student's
        torch.testing.assert_close(a, b)


def test_wrapper_refuses_predictions_that_do_not_match_anchor_for_anchor():
    wrapped = TeacherGuidedAssigner(TaskAlignedAssigner(topk=5, num_classes=3))
    scores, boxes = _assigner_inputs(0)
    wrapped.use_next(scores[:, :32], boxes[:, :32])
    with pytest.raises(ValueError, match="do not match the student's"):
        wrapped(scores, boxes, *_ground_truth())


def test_install_refuses_a_criterion_without_an_assigner():
    class NoAssigner:
        pass

    with pytest.raises(ValueError, match="assign=teacher needs a criterion with a label assigner; NoAssigner"):
        install(NoAssigner())


def test_student_loss_is_ultralytics_loss_with_the_teacher_decoded_by_ultralytics(tiny_data, trained_teacher,
                                                                                  tmp_path):
    """In warm-up (lambda 0) the teacher still runs for assignment: the detection loss equals Ultralytics' own loss
    with the teacher's sigmoid scores and Ultralytics' own decoding of its boxes given to the assigner."""
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, assign="teacher", teacher_dtype="fp32", kd_warmup=1)
    trainer._setup_train()
    trainer.epoch = 0
    trainer._model_train()
    crit = trainer.gism_criterion
    assert crit.kd_lambda == 0.0
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    preds = trainer.model(batch["img"])
    loss, items = crit(preds, batch)
    assert all(float(items[name]) == 0 for name in LOSS_NAMES) and float(loss[-1].detach()) == 0

    stock = trainer.model.init_criterion()
    teacher = crit.teacher(batch["img"])
    anchors, strides = make_anchors(teacher["feats"], stock.stride, 0.5)
    t_boxes = stock.bbox_decode(anchors, teacher["boxes"].float().permute(0, 2, 1)) * strides
    t_scores = teacher["scores"].float().permute(0, 2, 1).sigmoid()
    own_assigner = stock.assigner
    own, _ = stock(preds, batch)
    stock.assigner = lambda _scores, _boxes, *rest, **kw: own_assigner(t_scores, t_boxes, *rest, **kw)
    expected, _ = stock(preds, batch)
    torch.testing.assert_close(loss[:3], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(own, expected, rtol=1e-3)  # a trained teacher assigns differently from a fresh student

    val_loss, _ = crit((None, preds), batch)  # validation supplies no teacher: the student's own assignment
    torch.testing.assert_close(val_loss[:3], own, rtol=1e-5, atol=1e-5)


def test_teacher_assignment_alone_is_a_valid_distillation_with_no_terms(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, assign="teacher", kd_warmup=0, kd_ramp=0, kd_feat=False,
                       kd_cls=False, kd_box=False, kd_cross=False, selection="none")
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    crit = trainer.gism_criterion
    assert crit.kd_lambda > 0
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    preds = trainer.model(batch["img"])
    loss, items = crit(preds, batch)
    assert float(loss[-1].detach()) == 0 and all(float(items[name]) == 0 for name in LOSS_NAMES)
    own, _ = trainer.model.init_criterion()(preds, batch)
    assert not torch.allclose(loss[:3], own, rtol=1e-3)  # the teacher still assigned the labels
