"""Fréchet distance between two Gaussians fitted to feature sets (FVD with I3D features), in float64.

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½

The last trace equals tr (Σ₁Σ₂)^½ (the two matrices are similar), but Σ₁^½ Σ₂ Σ₁^½ is symmetric positive
semi-definite, so its square root comes from a symmetric eigendecomposition with tiny negative eigenvalues
(rounding, near-singular covariances: fewer samples than feature dimensions) clipped to zero — no complex
parts to discard and no ε added to the diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureStatistics:
    """Mean and covariance (float64) of a feature set, and how many samples they came from."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path) -> None:
        np.savez(path, mu=self.mu, sigma=self.sigma, count=self.count)

    @classmethod
    def load(cls, path) -> "FeatureStatistics":
        with np.load(path) as f:
            return cls(mu=f["mu"], sigma=f["sigma"], count=int(f["count"]))


def feature_statistics(features) -> FeatureStatistics:
    """Statistics of features (num_samples, dim); unbiased covariance (ddof=1) as in FID/FVD references."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (num_samples >= 2, dim); got shape {x.shape}")
    return FeatureStatistics(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False, ddof=1), count=x.shape[0])


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding eigenvalues -> 0)."""
    m = np.asarray(matrix, dtype=np.float64)
    m = (m + m.T) / 2.0
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁Σ₂)^½ for symmetric PSD Σ₁, Σ₂, computed as Σ √λᵢ(Σ₁^½ Σ₂ Σ₁^½)."""
    s1_half = sqrtm_psd(sigma1)
    inner = s1_half @ np.asarray(sigma2, dtype=np.float64) @ s1_half
    w = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """The Fréchet distance d² between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape} "
            "(were both feature sets extracted with the same network?)"
        )
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_from_features(features1, features2) -> float:
    """FVD/FID: the Fréchet distance between the Gaussians fitted to two feature sets."""
    a, b = feature_statistics(features1), feature_statistics(features2)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
