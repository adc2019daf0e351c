"""One module per GISM loss term. Each takes (student, teacher, weight) tensors and returns a scalar.

Reduction, shared by every term: a weighted mean over locations (anchors or feature-map cells), so the
value does not depend on batch size, image size or anchor count. The weights come from instance
selection (0/1 inside selected instances), teacher confidence, or are uniform.
"""

from .box import BinDistributionKD, DecodedBoxKD
from .feature import FeatureAlignLoss, LevelWeights
from .response import ClassScoreKD, binary_kl

__all__ = ["BinDistributionKD", "DecodedBoxKD", "FeatureAlignLoss", "LevelWeights", "ClassScoreKD", "binary_kl"]


def weighted_mean(per_location, weight):
    """Sum of weight * value over all locations divided by the sum of weights (0 when nothing is weighted)."""
    total = weight.sum()
    return (per_location * weight).sum() / total.clamp(min=1e-6)
