"""Temperature-scaled class-score distillation for per-class sigmoid heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .reduce import weighted_mean


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-class binary KL(teacher || student) of sigmoid(z / T), elementwise.

    Written as BCE(student, p_t) - H(p_t): equal in value to the KL and in gradient to plain BCE against
    the teacher's softened scores, and numerically stable through the logits.
    """
    s = student_logits / temperature
    t = teacher_logits / temperature
    p_t = torch.sigmoid(t)
    cross_entropy = F.binary_cross_entropy_with_logits(s, p_t, reduction="none")
    teacher_entropy = F.binary_cross_entropy_with_logits(t, p_t, reduction="none")
    return cross_entropy - teacher_entropy


class ClassScoreKD(nn.Module):
    """T^2 * weighted mean over locations of the per-class binary KL, summed over classes.

    The T^2 factor keeps gradient magnitudes comparable across temperatures (Hinton et al., 2015).
    Inputs are (B, A, C) logits and a (B, A) weight.
    """

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits, teacher_logits, weight):
        kl = binary_kl(student_logits.float(), teacher_logits.float(), self.temperature).sum(-1)
        return self.temperature**2 * weighted_mean(kl, weight)
