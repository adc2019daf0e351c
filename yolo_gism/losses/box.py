"""Box-regression distillation: bin distributions for DFL heads, decoded boxes for reg_max 1 heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .reduce import weighted_mean


class BinDistributionKD(nn.Module):
    """Localization distillation (Zheng et al., 2022) for DFL heads.

    Each box edge is a distribution over reg_max bins; the loss is T^2 * KL(softmax(t/T) || softmax(s/T))
    summed over bins, averaged over the 4 edges, then a weighted mean over locations.
    Inputs are (B, A, 4 * reg_max) raw bin logits and a (B, A) weight.
    """

    def __init__(self, reg_max: int, temperature: float):
        super().__init__()
        self.reg_max = reg_max
        self.temperature = temperature

    def forward(self, student_bins, teacher_bins, weight):
        b, a, _ = student_bins.shape
        s = student_bins.float().view(b, a, 4, self.reg_max) / self.temperature
        t = teacher_bins.float().view(b, a, 4, self.reg_max) / self.temperature
        kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="none", log_target=True)
        per_location = kl.sum(-1).mean(-1)
        return self.temperature**2 * weighted_mean(per_location, weight)


def ltrb_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of two boxes given as (left, top, right, bottom) distances from the same anchor point."""
    a, b = a.clamp(min=0), b.clamp(min=0)
    inter_w = torch.minimum(a[..., 0], b[..., 0]) + torch.minimum(a[..., 2], b[..., 2])
    inter_h = torch.minimum(a[..., 1], b[..., 1]) + torch.minimum(a[..., 3], b[..., 3])
    inter = inter_w * inter_h
    area_a = (a[..., 0] + a[..., 2]) * (a[..., 1] + a[..., 3])
    area_b = (b[..., 0] + b[..., 2]) * (b[..., 1] + b[..., 3])
    return inter / (area_a + area_b - inter + eps)


class DecodedBoxKD(nn.Module):
    """For reg_max 1 heads (YOLO26): L1 on the 4 edge distances plus (1 - IoU), weighted mean over locations.

    Distances are in grid units (stride-normalised), so the L1 part does not favour large objects.
    Inputs are (B, A, 4) ltrb distances and a (B, A) weight.
    """

    def forward(self, student_ltrb, teacher_ltrb, weight):
        s, t = student_ltrb.float(), teacher_ltrb.float()
        per_location = (s - t).abs().mean(-1) + (1.0 - ltrb_iou(s, t))
        return weighted_mean(per_location, weight)
