"""Label assignment from the teacher's predictions (Label Assignment Distillation, Nguyen et al., 2022).

Ultralytics' task-aligned assigner picks each ground-truth box's positive anchors by the *student's* own
scores and boxes (align metric = score^0.5 * IoU^6), and scales the class targets by that metric. Early in
training those predictions are poor, so the student is taught from noisy assignments. With ``assign=teacher``
the same assigner ranks anchors by the teacher's scores and boxes instead: the labels stay the ground truth,
only the choice of which anchors learn them (and how strongly) comes from the teacher. It costs nothing beyond
the teacher's forward pass, which distillation runs anyway.

The wrapper takes the place of the student criterion's ``assigner`` attribute; nothing in Ultralytics is
changed. It uses the teacher's predictions once, for the next call only, so validation (which never supplies
them) assigns from the student as usual.
"""

from __future__ import annotations

import torch
from torch import nn


class TeacherGuidedAssigner(nn.Module):
    """Calls the wrapped assigner with the teacher's predictions in place of the student's, when given."""

    def __init__(self, assigner: nn.Module):
        super().__init__()
        self.assigner = assigner
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def use_next(self, scores: torch.Tensor, boxes: torch.Tensor) -> None:
        """Rank anchors by these for the next call: (B, A, C) probabilities, (B, A, 4) xyxy boxes in pixels."""
        self._pending = (scores.detach(), boxes.detach())

    def forward(self, pd_scores, pd_bboxes, *args, **kwargs):
        if self._pending is not None:
            scores, boxes = self._pending
            self._pending = None
            if scores.shape != pd_scores.shape or boxes.shape != pd_bboxes.shape:
                raise ValueError(f"teacher predictions {tuple(scores.shape)}/{tuple(boxes.shape)} do not match the "
                                 f"student's {tuple(pd_scores.shape)}/{tuple(pd_bboxes.shape)} anchor for anchor")
            pd_scores, pd_bboxes = scores.to(pd_scores.dtype), boxes.to(pd_bboxes.dtype)
        return self.assigner(pd_scores, pd_bboxes, *args, **kwargs)


def install(detection) -> TeacherGuidedAssigner:
    """Wrap the assigner of Ultralytics' detection criterion (the one-to-many branch of end-to-end heads)."""
    owner = getattr(detection, "one2many", detection)
    if not isinstance(getattr(owner, "assigner", None), nn.Module):
        raise ValueError(f"assign=teacher needs a criterion with a label assigner; {type(detection).__name__} has none")
    if not isinstance(owner.assigner, TeacherGuidedAssigner):
        owner.assigner = TeacherGuidedAssigner(owner.assigner)
    return owner.assigner
