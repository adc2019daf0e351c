"""GISMCriterion: Ultralytics' detection loss plus the GISM terms, in the slot Ultralytics calls.

Ultralytics computes the training loss as ``student.criterion(preds, batch)``. The trainer puts this
object in that slot. It owns references to the teacher, adapters and losses, so it must never travel
with the student: every deep copy or pickle of it yields ``None`` (the student copy then builds a stock
criterion when it needs one), which keeps EMA copies, checkpoints and NaN-recovery copies clean even on
code paths this project does not know about.

Exact formula (per batch of B images):
    loss = L_det + B * lambda(epoch) * [ beta T^2 KL_cls + alpha L_box + (1 - alpha) gamma sum_l w_l L_feat,l
                                         + L_cross ]
with beta = cls_gain and gamma = feat_gain (1 by default each) and L_cross (kd_cross, off by default) the class and
box terms computed on the teacher's head applied to the adapted student features instead of on the student's head.
L_det is Ultralytics' own loss, which is already multiplied by B (with assign=teacher, the default, its label
assigner ranks anchors by the teacher's predictions: yolo_gism.assign); each GISM term is a weighted mean over
locations (see yolo_gism.losses), so the B factor gives the two parts the same scaling, as Ultralytics'
built-in distillation does.

With offline=true (yolo_gism.offline) the teacher never runs during training; its detections ride in the batch as
extra instances and the bracket becomes [ beta T^2 KL_cls + alpha L_box ] over the anchors Ultralytics' task-aligned
assigner gives each teacher instance, weighted by that instance's confidence (``offline_terms``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors

from . import assign
from .distributed import average_tensor
from .geometry import ltrb_distances, to_xyxy
from .losses import BinDistributionKD, ClassScoreKD, DecodedBoxKD, FeatureAlignLoss
from .offline import split_teacher_instances
from .select import (anchor_weight_from_instances, boxes_to_mask, gi_instances, gt_instances, level_shapes,
                     split_anchor_weight)
from .teacher import map_teacher_scores

LOSS_NAMES = ("feat_loss", "kdcls_loss", "kdbox_loss", "kdcross_loss")


class GISMCriterion:
    def __init__(self, detection, teacher, adapters, level_weights, cfg, class_groups, student_reg_max,
                 teacher_reg_max, strides, recorder=None, instance_logits=None):
        self.detection = detection  # Ultralytics' criterion for the student (its assigner wrapped for assign=teacher)
        self.assigner = assign.install(detection) if cfg.assign == "teacher" else None
        self.has_terms = any((cfg.kd_feat, cfg.kd_cls, cfg.kd_box, cfg.kd_cross))  # none: assign=teacher alone
        self.teacher = teacher
        self.adapters = adapters
        self.level_weights = level_weights
        self.cfg = cfg
        self.class_groups = class_groups
        self.student_reg_max, self.teacher_reg_max = student_reg_max, teacher_reg_max
        self.strides = strides
        self.recorder = recorder
        self.feature_loss = FeatureAlignLoss(cfg.feat_norm, cfg.temperature)
        self.class_loss = ClassScoreKD(cfg.temperature)
        same_bins = student_reg_max == teacher_reg_max > 1
        self.box_loss = BinDistributionKD(student_reg_max, cfg.temperature) if same_bins else DecodedBoxKD()
        self.cross_box_loss = (BinDistributionKD(teacher_reg_max, cfg.temperature) if teacher_reg_max > 1
                               else DecodedBoxKD())  # cross-head outputs always have the teacher's bins
        # offline teacher: its class logits per instance row, and an assigner of the student's anchors to instances
        self.instance_logits = instance_logits
        self.instance_assigner = (TaskAlignedAssigner(topk=10, num_classes=len(class_groups), alpha=0.5, beta=6.0,
                                                      stride=strides.tolist()) if instance_logits is not None else None)
        self.offline_box_loss = DecodedBoxKD()
        self.kd_lambda, self.teacher_active = 0.0, True
        self.epoch, self.batch_index = 0, 0
        self.problem: str | None = None  # set when a GISM term was not finite; the trainer skips that step
        self.last_level_losses: torch.Tensor | None = None

    # The criterion never travels with the student (see module docstring).
    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return type(None), ()

    def update(self):
        """Ultralytics calls criterion.update() each epoch (end-to-end heads decay their one-to-many gain)."""
        if hasattr(self.detection, "update"):
            self.detection.update()

    def start_epoch(self, epoch: int, kd_lambda: float, teacher_active: bool) -> None:
        self.epoch, self.batch_index, self.kd_lambda, self.teacher_active = epoch, 0, kd_lambda, teacher_active

    def __call__(self, preds, batch):
        training = not isinstance(preds, tuple)  # Ultralytics' validation passes (inference, raw) tuples
        self.batch_index += training
        # kd_every=k: the teacher runs on batches 1, k+1, 2k+1, ... of each epoch; the others train as stock Ultralytics
        # (and none at all in the last kd_stop epochs: stock training, assignment included)
        teacher_batch = training and self.teacher_active and (self.batch_index - 1) % self.cfg.kd_every == 0
        distilling = teacher_batch and self.kd_lambda != 0.0 and self.has_terms
        student = preds.get("one2many", preds) if training else None  # end-to-end: one2one trains on detached feats
        offline = self.instance_logits is not None
        if offline and training:  # the teacher's instances leave the batch before Ultralytics' loss reads it
            batch, instances = split_teacher_instances(batch, len(self.class_groups))
        # label assignment from the teacher applies from the first batch, warm-up included
        needs_teacher = not offline and (distilling or (teacher_batch and self.assigner is not None))
        teacher = self.teacher(batch["img"]) if needs_teacher else None
        view = self.teacher_view(student, teacher) if teacher is not None else None
        if view is not None and self.assigner is not None:
            self.assign_from_teacher(*view)
        det_loss, items = self.detection(preds, batch)
        zero = torch.zeros(1, device=det_loss.device)
        if not distilling:
            if self.recorder is not None:
                self.recorder.pop()
            return torch.cat([det_loss, zero]), {**items, **dict.fromkeys(LOSS_NAMES, zero[0].detach())}
        terms = self.offline_terms(student, batch, instances) if offline else self.terms(student, teacher, batch, view)
        total = sum(terms.values())
        items = {**items, **{name: value.detach().reshape(()) for name, value in zip(LOSS_NAMES, terms.values())}}
        return torch.cat([det_loss, (total * batch["img"].shape[0]).reshape(1)]), items

    def teacher_view(self, student: dict, teacher: dict) -> tuple[torch.Tensor, ...]:
        """The teacher's outputs on the student's anchors, read by the terms and by label assignment: (B, A, C) logits
        of the student's classes, (B, A, 4) edge distances in grid units, anchor points and strides."""
        t_scores = map_teacher_scores(teacher["scores"].float(), self.class_groups).permute(0, 2, 1)
        t_ltrb = ltrb_distances(teacher["boxes"], self.teacher_reg_max)
        anchors, strides = make_anchors(student["feats"], self.strides, 0.5)
        return t_scores, t_ltrb, anchors, strides

    def terms(self, student: dict, teacher: dict, batch: dict, view: tuple | None = None) -> dict[str, torch.Tensor]:
        """The weighted GISM terms (feature, class, box, cross-head), each already multiplied by lambda."""
        cfg, lam = self.cfg, self.kd_lambda
        img_hw = tuple(batch["img"].shape[-2:])
        s_scores = student["scores"].float().permute(0, 2, 1)  # (B, A, C)
        t_scores, t_ltrb, anchors, strides = view if view is not None else self.teacher_view(student, teacher)
        s_ltrb = ltrb_distances(student["boxes"], self.student_reg_max)
        shapes = level_shapes(student["feats"])
        anchor_weight, instances = self.anchor_weight(s_scores, t_scores, s_ltrb, t_ltrb, anchors, strides, shapes,
                                                      batch)
        zero = s_scores.sum() * 0.0
        adapted, t_maps = self.adapted_maps(student, teacher) if cfg.kd_feat or cfg.kd_cross else (None, None)
        feat = self.feature_term(adapted, t_maps, anchor_weight, instances, shapes, img_hw) if cfg.kd_feat else zero
        cls = self.class_loss(s_scores, t_scores, anchor_weight) if cfg.kd_cls else zero
        if cfg.kd_box:
            if isinstance(self.box_loss, BinDistributionKD):
                box = self.box_loss(student["boxes"].permute(0, 2, 1), teacher["boxes"].float().permute(0, 2, 1),
                                    anchor_weight)
            else:
                box = self.box_loss(s_ltrb, t_ltrb, anchor_weight)
        else:
            box = zero
        cross = self.cross_term(adapted, teacher, anchor_weight) if cfg.kd_cross else zero
        terms = {"feat": lam * (1 - cfg.alpha) * cfg.feat_gain * feat, "cls": lam * cfg.cls_gain * cls,
                 "box": lam * cfg.alpha * box, "cross": lam * cross}
        return {name: self.finite_or_zero(name, value) for name, value in terms.items()}

    def offline_terms(self, student: dict, batch: dict, instances: dict) -> dict[str, torch.Tensor]:
        """Class and box terms toward the offline teacher's instances, each already multiplied by lambda.

        Each instance gets the student's anchors that Ultralytics' task-aligned assigner (ranked by the student's own
        predictions, as for the labels) gives it; an anchor's weight is its instance's confidence (max class
        probability). KL_cls: T^2 binary KL to the instance's softened class probabilities, times the anchor's
        alignment quality with offline_target=aligned (the default; ``aligned_logits``). L_box: L1 + (1 - IoU)
        between the student's edge distances and the instance box's, in grid units (DecodedBoxKD), the teacher's
        edges clipped to what the student's bins can express."""
        cfg, lam = self.cfg, self.kd_lambda
        s_scores = student["scores"].float().permute(0, 2, 1)  # (B, A, C)
        s_ltrb = ltrb_distances(student["boxes"], self.student_reg_max)
        anchors, strides = make_anchors(student["feats"], self.strides, 0.5)
        boxes, rows, valid = self.padded_instances(instances, batch)
        zero = s_scores.sum() * 0.0
        if not valid.any():
            return {"feat": zero, "cls": zero, "box": zero, "cross": zero}
        t_logits = self.instance_logits[rows]  # (B, N, C)
        labels = t_logits.argmax(-1, keepdim=True)
        _, _, quality, fg, index = self.instance_assigner(
            s_scores.detach().sigmoid(), to_xyxy(s_ltrb.detach(), anchors, strides), anchors * strides,
            labels, boxes, valid[..., None].float())
        t_anchor_logits = t_logits.gather(1, index[..., None].expand(-1, -1, t_logits.shape[-1]))  # (B, A, C)
        weight = fg.float() * t_anchor_logits.sigmoid().amax(-1)
        if cfg.offline_target == "aligned":
            t_anchor_logits = self.aligned_logits(t_anchor_logits, quality.amax(-1, keepdim=True))
        t_boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4)) / strides  # (B, A, 4) in grid units
        t_ltrb = torch.cat([anchors - t_boxes[..., :2], t_boxes[..., 2:] - anchors], -1)
        if self.student_reg_max > 1:
            t_ltrb = t_ltrb.clamp(0, self.student_reg_max - 1.01)
        cls = self.class_loss(s_scores, t_anchor_logits, weight) if cfg.kd_cls else zero
        box = self.offline_box_loss(s_ltrb, t_ltrb, weight) if cfg.kd_box else zero
        terms = {"feat": zero, "cls": lam * cfg.cls_gain * cls, "box": lam * cfg.alpha * box, "cross": zero}
        return {name: self.finite_or_zero(name, value) for name, value in terms.items()}

    def aligned_logits(self, logits: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Teacher logits whose softened probabilities are sigma(t/T) times the anchor's alignment quality.

        Ultralytics trains class scores to rank boxes: an anchor's label target is its normalised alignment metric
        (at most the IoU of the instance's best-placed anchor), not 1. Teacher probabilities on every assigned anchor
        as they are would teach poorly placed anchors to score high; scaled this way they keep that ranking.
        Probabilities are clamped to [1e-6, 1 - 1e-6] on the way back to logits."""
        t = self.cfg.temperature
        return t * torch.logit(quality * torch.sigmoid(logits / t), eps=1e-6)

    def padded_instances(self, instances: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher instances per image, padded to the most any image has: (B, N, 4) xyxy pixel boxes, (B, N) rows
        into the logit table and a (B, N) mask of the real ones."""
        b, (h, w) = batch["img"].shape[0], batch["img"].shape[-2:]
        index = instances["batch_idx"]
        counts = torch.bincount(index, minlength=b)
        n = int(counts.max()) if len(index) else 0
        order = torch.argsort(index, stable=True)
        index, starts = index[order], torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(index), device=index.device) - starts[index]
        xywh = instances["bboxes"][order].float() * torch.tensor([w, h, w, h], device=index.device)
        boxes = torch.zeros(b, n, 4, device=index.device)
        boxes[index, slot] = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], -1)
        rows = torch.zeros(b, n, dtype=torch.long, device=index.device)
        rows[index, slot] = instances["row"][order]
        valid = torch.zeros(b, n, dtype=torch.bool, device=index.device)
        valid[index, slot] = True
        return boxes, rows, valid

    def assign_from_teacher(self, t_scores, t_ltrb, anchors, strides) -> None:
        """Hand the assigner the teacher's class probabilities (student classes) and xyxy pixel boxes.

        Non-finite ones would make the detection loss itself NaN: the student assigns that batch instead, and the
        problem is reported so that the step is skipped like any other non-finite GISM term."""
        scores, boxes = t_scores.sigmoid(), to_xyxy(t_ltrb, anchors, strides)
        if torch.isfinite(scores).all() and torch.isfinite(boxes).all():
            self.assigner.use_next(scores, boxes)
        else:
            self.report("teacher predictions for label assignment (the student assigned this batch)")

    def anchor_weight(self, s_scores, t_scores, s_ltrb, t_ltrb, anchors, strides, shapes, batch):
        """(B, A) weight over anchors from the selection mode, and the selected instances where boxes select."""
        cfg, img_hw = self.cfg, tuple(batch["img"].shape[-2:])
        if cfg.selection in ("gi", "gt"):
            instances = (gi_instances(s_scores, t_scores, to_xyxy(s_ltrb, anchors, strides),
                                      to_xyxy(t_ltrb, anchors, strides), cfg.gi_topk, cfg.gi_iou)
                         if cfg.selection == "gi" else gt_instances(batch))
            return anchor_weight_from_instances(instances, shapes, *img_hw), instances
        if cfg.selection == "conf":
            return t_scores.sigmoid().amax(-1), None
        return torch.ones(s_scores.shape[:2], device=s_scores.device), None

    def adapted_maps(self, student, teacher) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The student's maps through the adapters (teacher channels), and the teacher's maps they are held to."""
        s_maps, t_maps = self.feature_maps(student, teacher)
        return [adapter(s_map) for adapter, s_map in zip(self.adapters, s_maps)], t_maps

    def feature_term(self, adapted, t_maps, anchor_weight, instances, shapes, img_hw) -> torch.Tensor:
        level_maps = split_anchor_weight(anchor_weight, shapes)
        losses = []
        for a_map, t_map in zip(adapted, t_maps):
            weight = self.cell_weight(tuple(a_map.shape[-2:]), level_maps, shapes, instances, img_hw)
            losses.append(self.feature_loss(a_map, t_map, weight))
        level_losses = torch.stack(losses)
        self.check_levels(level_losses)
        safe = torch.where(torch.isfinite(level_losses), level_losses, torch.zeros_like(level_losses))
        self.level_weights.update(average_tensor(safe.detach()))
        self.last_level_losses = safe.detach()
        return (self.level_weights.weights() * safe).sum()

    def cross_term(self, adapted, teacher, anchor_weight) -> torch.Tensor:
        """T^2 KL_cls + box KL between the teacher's head on the adapted student maps and the teacher's outputs.

        Both sides are teacher-head outputs, so the teacher's classes and bins are compared as they are.
        """
        cross = self.teacher.head_outputs(adapted)
        c_scores, t_scores = (x["scores"].float().permute(0, 2, 1) for x in (cross, teacher))
        cls = self.class_loss(c_scores, t_scores, anchor_weight)
        if isinstance(self.cross_box_loss, BinDistributionKD):
            c_box, t_box = (x["boxes"].float().permute(0, 2, 1) for x in (cross, teacher))
        else:  # reg_max 1 (YOLO26): the four edge distances
            c_box, t_box = (ltrb_distances(x["boxes"], 1) for x in (cross, teacher))
        return cls + self.cross_box_loss(c_box, t_box, anchor_weight)

    def feature_maps(self, student, teacher):
        if self.recorder is None:
            return student["feats"], teacher["feats"]
        recorded = self.recorder.pop()
        n = len(self.adapters)
        return [recorded[("student", i)] for i in range(n)], [recorded[("teacher", i)].float() for i in range(n)]

    def cell_weight(self, hw, level_maps, shapes, instances, img_hw):
        """Weight map for a feature map of size hw: the matching Detect level's, else rebuilt or resized."""
        if hw in shapes:
            return level_maps[shapes.index(hw)]
        if instances is not None:
            return boxes_to_mask(instances, *hw, *img_hw)
        return F.interpolate(level_maps[0][:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]

    def check_levels(self, level_losses):
        bad = (~torch.isfinite(level_losses)).nonzero().flatten().tolist()
        if bad:
            self.report(f"feature term at level(s) {bad}")

    def finite_or_zero(self, name, value):
        if torch.isfinite(value).all():
            return value
        self.report(f"{name} term")
        return value.detach().nan_to_num(0.0, 0.0, 0.0) * 0.0

    def report(self, what: str) -> None:
        message = f"non-finite GISM {what} at epoch {self.epoch + 1}, batch {self.batch_index}"
        self.problem = message if self.problem is None else f"{self.problem}; {message}"
