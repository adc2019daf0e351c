"""The one reduction every GISM term shares."""

import torch


def weighted_mean(per_location: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum of weight * value over all locations divided by the sum of weights (0 when nothing is weighted).

    A mean over locations, not a sum, so a term does not grow with batch size, image size or anchor count.
    """
    return (per_location * weight).sum() / weight.sum().clamp(min=1e-6)
