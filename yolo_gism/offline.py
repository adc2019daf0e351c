"""Offline teacher: the teacher sees each training image once, before training, instead of every batch.

Why: on a CPU the teacher's forward pass is most of what distillation costs (a GISM epoch took 1.44 vanilla epochs
in the sixth protocol), and a user can always spend that time training the student longer instead. With
``offline=true`` the teacher runs once over the training images; its detections (box and every class logit)
join each image's labels as extra instances, so Ultralytics' own augmentation (mosaic, affine, flips) moves
them with the image. The loss then pulls the student toward them (yolo_gism.criterion: ``offline_terms``).
What the dense terms read from the teacher's maps of the augmented image is not available this way: feature
alignment, background scores and teacher-ranked label assignment.

A teacher instance travels in the label's ``cls`` column as ``nc + row``, where ``row`` indexes a table of the
teacher's class logits; ``split_teacher_instances`` takes them out of the batch before Ultralytics' loss sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from ultralytics.utils.tal import make_anchors

from .geometry import ltrb_distances, to_xyxy
from .runtime import letterbox, scale_boxes, to_blob
from .teacher import detect_head, map_teacher_scores

MIN_CONF = 0.05  # teacher detections below this (max class probability) are left out: noise at weight < 0.05
NMS_IOU = 0.6  # class-agnostic: one instance per object, carrying all of its class scores
MAX_PER_IMAGE = 100


@dataclass
class TeacherInstances:
    """The teacher's detections on the training images: per image file, boxes (n, 4: normalised xywh) and rows
    into ``logits`` (R, C: the teacher's class logits, mapped to the student's classes)."""

    boxes: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    logits: torch.Tensor

    def __len__(self) -> int:
        return len(self.logits)

    def attach(self, dataset, nc: int) -> None:
        """Make every label the dataset builds (mosaic's extra images included) carry these instances."""
        dataset.update_labels_info = WithTeacherInstances(dataset.update_labels_info, self, nc)


class WithTeacherInstances:
    """Wraps a dataset's ``update_labels_info``: appends the image's teacher instances to its raw labels first.

    Segment polygons are dropped where instances are appended (polygons and boxes must stay one per instance),
    so such images' boxes follow the affine augmentation as boxes."""

    def __init__(self, update_labels_info, instances: TeacherInstances, nc: int):
        self.update_labels_info, self.instances, self.nc = update_labels_info, instances, nc

    def __call__(self, label: dict) -> dict:
        boxes = self.instances.boxes.get(label["im_file"])
        if boxes is not None and len(boxes):
            codes = (self.nc + self.instances.rows[label["im_file"]]).astype(np.float32)[:, None]
            label["bboxes"] = np.concatenate([label["bboxes"].reshape(-1, 4), boxes], 0)
            label["cls"] = np.concatenate([label["cls"].reshape(-1, 1), codes], 0)
            label["segments"] = []
        return self.update_labels_info(label)


def split_teacher_instances(batch: dict, nc: int) -> tuple[dict, dict]:
    """(the batch with ground truth only, the teacher instances: batch_idx, row and normalised xywh box)."""
    cls = batch["cls"].view(-1)
    teacher = cls >= nc
    gt = {**batch, **{k: batch[k][~teacher] for k in ("cls", "bboxes", "batch_idx")}}
    instances = {"batch_idx": batch["batch_idx"][teacher].long(), "row": (cls[teacher] - nc).round().long(),
                 "bboxes": batch["bboxes"][teacher]}
    return gt, instances


def teacher_detections(teacher, class_groups: list[list[int]], im_files: list[str], imgsz: int,
                       batch: int = 16) -> TeacherInstances:
    """Run the frozen teacher once over the images and keep its detections, in the original images' coordinates.

    Letterbox, blob and the mapping back are the torch-free runtime's (yolo_gism.runtime), which reproduce
    Ultralytics' predict path."""
    head = detect_head(teacher.model)
    strides = head.stride.to(teacher.device)
    boxes, rows, logits, count = {}, {}, [], 0
    for start in range(0, len(im_files), batch):
        files = im_files[start:start + batch]
        images, metas = [], []
        for f in files:
            image = cv2.imread(f)
            if image is None:
                raise FileNotFoundError(f"offline teacher: cannot read training image {f}")
            padded, meta = letterbox(image, (imgsz, imgsz))
            images.append(padded)
            metas.append(meta)
        out = teacher(torch.from_numpy(to_blob(images)).to(teacher.device))
        scores = map_teacher_scores(out["scores"].float(), class_groups).permute(0, 2, 1)  # (B, A, C)
        anchors, anchor_strides = make_anchors(out["feats"], strides, 0.5)
        xyxy = to_xyxy(ltrb_distances(out["boxes"], head.reg_max), anchors, anchor_strides)
        for f, image_scores, image_boxes, meta in zip(files, scores.cpu(), xyxy.cpu().numpy(), metas):
            kept_scores, kept_boxes = select(image_scores, torch.from_numpy(scale_boxes(image_boxes, meta)))
            rows[f] = np.arange(count, count + len(kept_scores))
            boxes[f] = to_normalised_xywh(kept_boxes, *meta.orig_shape)
            logits.append(kept_scores)
            count += len(kept_scores)
    table = torch.cat(logits) if logits else torch.zeros(0, len(class_groups))
    return TeacherInstances(boxes, rows, table)


def select(scores: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's (A, C) logits and (A, 4) xyxy boxes (original pixels, clipped to the image) -> the confident,
    non-overlapping ones at least a pixel wide and high."""
    conf = scores.sigmoid().amax(-1)
    keep = (conf >= MIN_CONF) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    scores, boxes, conf = scores[keep], boxes[keep], conf[keep]
    kept = nms(boxes, conf, NMS_IOU)[:MAX_PER_IMAGE]
    return scores[kept], boxes[kept]


def to_normalised_xywh(boxes: torch.Tensor, h: int, w: int) -> np.ndarray:
    b = boxes.numpy().astype(np.float32).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                     (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], -1)
