"""One module per GISM loss term. Each takes (student, teacher, weight) tensors and returns a scalar.

Reduction, shared by every term: a weighted mean over locations (anchors or feature-map cells), so the
value does not depend on batch size, image size or anchor count. The weights come from instance
selection (0/1 inside selected instances), teacher confidence, or are uniform.
"""

from .box import BinDistributionKD, DecodedBoxKD
from .feature import FeatureAlignLoss, LevelWeights, make_adapter
from .reduce import weighted_mean
from .response import ClassScoreKD, binary_kl

__all__ = [
    "BinDistributionKD", "DecodedBoxKD", "FeatureAlignLoss", "LevelWeights", "ClassScoreKD", "binary_kl",
    "weighted_mean", "make_adapter",
]

