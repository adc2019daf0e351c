"""Feature alignment at several depths, and the dynamic weights that balance the levels."""

from __future__ import annotations

import torch
from torch import nn

from .reduce import weighted_mean


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit variance per sample and channel over space, so that no level or channel wins by scale.

    Aligning standardised maps is the Pearson-correlation imitation of PKD (Cao et al., 2022).
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def channel_kl(student_map: torch.Tensor, teacher_map: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, H, W) per-cell share of T^2 KL(teacher || student) between each channel's spatial softmax of map / T,
    averaged over channels: summed over cells it is the channel-wise distillation (CWD) of Shu et al., 2021.

    Each channel becomes a distribution over positions, so the student learns where the teacher's channels
    fire, not how strongly, and the cells a channel is most active on carry most of the loss.
    """
    b, c, h, w = teacher_map.shape
    log_p_t = torch.log_softmax(teacher_map.reshape(b, c, h * w) / temperature, -1)
    log_p_s = torch.log_softmax(student_map.reshape(b, c, h * w) / temperature, -1)
    per_cell = log_p_t.exp() * (log_p_t - log_p_s)
    return temperature**2 * per_cell.mean(1).reshape(b, h, w)


class FeatureAlignLoss(nn.Module):
    """Feature alignment between the student's map (already mapped to teacher channels by its adapter) and the
    teacher's, both (B, C, H, W), under a (B, H, W) weight.

    norm="standard": weighted mean over cells of the channel-mean squared error of standardised maps
    (scale-free, PKD); "raw": the same on the maps as they are, the L2 of FitNets and of Ultralytics' built-in
    distillation, whose pull grows with the teacher's activation scale; "cwd": channel-wise distillation,
    each image's per-cell KL shares summed under the weight rescaled to mean 1 (all-ones weight: plain CWD).
    """

    def __init__(self, norm: str = "standard", temperature: float = 1.0):
        super().__init__()
        self.norm, self.temperature = norm, temperature

    def forward(self, student_map, teacher_map, weight):
        s, t = student_map.float(), teacher_map.float()
        if self.norm == "cwd":
            scale = weight.flatten(1).mean(1).clamp(min=1e-6)[:, None, None]
            return (channel_kl(s, t, self.temperature) * weight / scale).flatten(1).sum(1).mean()
        if self.norm == "standard":
            s, t = standardize(s), standardize(t)
        return weighted_mean((s - t).pow(2).mean(1), weight)


def make_adapter(kind: str, student_channels: int, teacher_channels: int) -> nn.Module:
    """Maps a student feature map to the teacher's channels: one 1x1 conv, or conv-ReLU-conv (mlp), the
    projector of Ultralytics' built-in distillation, which leaves the student's own features freer."""
    if kind == "conv":
        return nn.Conv2d(student_channels, teacher_channels, 1)
    return nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(teacher_channels, teacher_channels, 1))


class LevelWeights(nn.Module):
    """Level weights w_l that sum to 1.

    dynamic: w_l is proportional to 1 / running mean of level l's loss, so every level contributes about
    equally to the feature term whatever its natural magnitude; the running means are updated from the
    detached losses of every step (all-reduced under DDP by the caller) and saved for resume.
    fixed: w_l = 1 / n.
    """

    def __init__(self, levels: int, dynamic: bool = True, momentum: float = 0.9):
        super().__init__()
        self.dynamic = dynamic
        self.momentum = momentum
        self.register_buffer("running", torch.zeros(levels))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, level_losses: torch.Tensor) -> None:
        values = level_losses.detach().float().to(self.running.device)
        if not torch.isfinite(values).all():
            return
        if not bool(self.initialised):
            self.running.copy_(values)
            self.initialised.fill_(True)
        else:
            self.running.mul_(self.momentum).add_(values, alpha=1 - self.momentum)

    def weights(self) -> torch.Tensor:
        n = self.running.numel()
        if not self.dynamic or not bool(self.initialised):
            return torch.full((n,), 1.0 / n, device=self.running.device)
        inverse = 1.0 / self.running.clamp(min=1e-8)
        return inverse / inverse.sum()
