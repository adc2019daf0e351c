"""Where the distillation losses look: instance selection (GID), the labelled objects, teacher confidence,
or everywhere.

General Instance Distillation (Dai et al., 2021): per image, score each location by
GI = max_c |sigmoid(t_c) - sigmoid(s_c)|, take the box of whichever model is more confident there,
suppress overlapping boxes (NMS, per image only) and keep the top K. The losses then look at the cells
whose centres fall inside a kept instance.
"""

from __future__ import annotations

import torch
from torchvision.ops import nms

from ultralytics.utils.ops import xywh2xyxy

# NMS runs on the best candidates only: greedy NMS keeps a box based on higher-scored boxes alone,
# so the first K survivors are exact whenever K survive among these candidates.
_NMS_CANDIDATES = 1000


def gi_instances(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    student_boxes: torch.Tensor,
    teacher_boxes: torch.Tensor,
    topk: int,
    iou: float,
) -> list[torch.Tensor]:
    """Select up to `topk` GI boxes per image.

    Args:
        student_scores, teacher_scores: (B, A, C) logits over the same (student) classes.
        student_boxes, teacher_boxes: (B, A, 4) xyxy boxes in input-image pixels.
    Returns:
        One (k, 5) tensor per image: xyxy box and GI score, k <= topk, highest score first.
    """
    s_prob, t_prob = student_scores.detach().float().sigmoid(), teacher_scores.detach().float().sigmoid()
    gi_score = (t_prob - s_prob).abs().amax(-1)  # (B, A)
    teacher_wins = (t_prob.amax(-1) > s_prob.amax(-1)).unsqueeze(-1)
    boxes = torch.where(teacher_wins, teacher_boxes.detach().float(), student_boxes.detach().float())
    selected = []
    for image_scores, image_boxes in zip(gi_score, boxes):  # per image: no suppression across images
        n = min(_NMS_CANDIDATES, image_scores.numel())
        scores, order = image_scores.topk(n)
        candidates = image_boxes[order]
        keep = nms(candidates, scores, iou)[:topk]
        selected.append(torch.cat([candidates[keep], scores[keep, None]], 1))
    return selected


def gt_instances(batch: dict) -> list[torch.Tensor]:
    """selection=gt: the labelled objects themselves, one (k, 5) tensor per image (xyxy pixels, score 1).

    The losses then look only where the ground truth has an object, so a teacher's false positives and
    misses in the background are never imitated.
    """
    img_h, img_w = batch["img"].shape[-2:]
    xywh = batch["bboxes"].float()  # Ultralytics' training batches hold normalised xywh boxes
    xyxy = xywh2xyxy(xywh) * xywh.new_tensor([img_w, img_h, img_w, img_h])
    image_of = batch["batch_idx"].view(-1).long()
    return [torch.cat([xyxy[image_of == i], xyxy.new_ones(int((image_of == i).sum()), 1)], 1)
            for i in range(batch["img"].shape[0])]


def cell_centres(h: int, w: int, stride_y: float, stride_x: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates of the centres of an h x w grid that covers the input image."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride_y
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride_x
    return ys, xs


def boxes_to_mask(instances: list[torch.Tensor], h: int, w: int, img_h: int, img_w: int) -> torch.Tensor:
    """(B, h, w) float mask: 1 where a cell centre lies inside any selected box of its own image."""
    device = instances[0].device if instances else "cpu"
    ys, xs = cell_centres(h, w, img_h / h, img_w / w, device)
    masks = []
    for boxes in instances:
        if boxes.numel() == 0:
            masks.append(torch.zeros(h, w, device=device))
            continue
        x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
        inside = (xs[None, None, :] >= x1) & (xs[None, None, :] <= x2)
        inside = inside & (ys[None, :, None] >= y1) & (ys[None, :, None] <= y2)
        masks.append(inside.any(0).float())
    return torch.stack(masks)


def level_shapes(feats: list[torch.Tensor]) -> list[tuple[int, int]]:
    return [tuple(f.shape[-2:]) for f in feats]


def split_anchor_weight(weight: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Cut a (B, A) anchor weight (Detect's level-major order) into one (B, h, w) map per level."""
    parts = weight.split([h * w for h, w in shapes], dim=1)
    return [p.view(weight.shape[0], h, w) for p, (h, w) in zip(parts, shapes)]


def anchor_weight_from_instances(instances, shapes, img_h: int, img_w: int) -> torch.Tensor:
    """(B, A) weight over Detect's anchors, in its level-major, row-major order."""
    return torch.cat([boxes_to_mask(instances, h, w, img_h, img_w).flatten(1) for h, w in shapes], 1)
