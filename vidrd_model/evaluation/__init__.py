"""Video generation metrics and the UCF-101 zero-shot protocol.

- `frechet`: Fréchet distance (FVD) in float64, PSD-safe matrix square root
- `inception_score`: IS in float64
- `feature_models`: TorchScript I3D / C3D loaders and their documented preprocessing; video reading
- `clipsim`: CLIPSIM with open_clip
- `ucf101`: prompts, training-split class distribution, generation plan
"""

from .frechet import FeatureStatistics, feature_statistics, frechet_distance, frechet_distance_from_features
from .inception_score import inception_score, inception_score_from_logits

__all__ = [
    "FeatureStatistics",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "inception_score",
    "inception_score_from_logits",
]
