"""Inception score (video IS with a UCF-101 C3D classifier), in float64.

    IS = exp( E_x KL( p(y|x) ‖ p(y) ) ),   p(y) = E_x p(y|x)

computed over `splits` equal consecutive chunks of the samples (mean and standard deviation over chunks, as
in TGAN / the usual video IS protocol; splits=1 gives the plain score).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def class_probabilities_from_logits(logits) -> np.ndarray:
    """softmax in float64, (num_samples, num_classes)."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64), axis=1))


def inception_score(probs, splits: int = 1) -> tuple[float, float]:
    """(mean, std) of the inception score of class probabilities (num_samples, num_classes)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"probs must be (num_samples, num_classes); got shape {p.shape}")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("each row of probs must sum to 1 (pass softmax probabilities, or use inception_score_from_logits)")
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, num_samples={p.shape[0]}]; got {splits}")
    scores = []
    for chunk in np.array_split(p, splits):
        marginal = chunk.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(chunk > 0, chunk * (np.log(chunk) - np.log(marginal)), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_from_logits(logits, splits: int = 1) -> tuple[float, float]:
    return inception_score(class_probabilities_from_logits(logits), splits=splits)
