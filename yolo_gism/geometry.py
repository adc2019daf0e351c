"""Box geometry shared by the online criterion and the offline teacher pass: a detection head's raw box outputs as
edge distances around anchor points, and those distances as xyxy boxes."""

from __future__ import annotations

import torch


def ltrb_distances(boxes: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(B, 4*reg_max, A) raw box outputs -> (B, A, 4) edge distances in grid units (DFL expectation)."""
    b, _, a = boxes.shape
    if reg_max == 1:
        return boxes.float().permute(0, 2, 1)
    bins = boxes.float().view(b, 4, reg_max, a).softmax(2)
    proj = torch.arange(reg_max, device=boxes.device, dtype=torch.float32)
    return (bins * proj.view(1, 1, -1, 1)).sum(2).permute(0, 2, 1)


def to_xyxy(ltrb: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Edge distances around anchor points (grid units) -> xyxy boxes in input pixels."""
    return torch.cat([anchors - ltrb[..., :2], anchors + ltrb[..., 2:]], -1) * strides
