import math

import numpy as np
import pytest
import scipy.linalg

from vidrd_model.evaluation.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    sqrtm_psd,
)
from vidrd_model.evaluation.inception_score import inception_score, inception_score_from_logits


def _scipy_fvd(a, b):
    """Independent reference: the textbook formula with scipy's general matrix square root of Σ₁Σ₂."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fvd_matches_scipy_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24))
    b = rng.normal(loc=0.3, size=(300, 24)) @ rng.normal(size=(24, 24))
    got, want = frechet_distance_from_features(a, b), _scipy_fvd(a, b)
    assert got == pytest.approx(want, rel=1e-6)


def test_fvd_float32_features_are_computed_in_float64():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 16)).astype(np.float32)
    b = (rng.normal(size=(200, 16)) * 1.5).astype(np.float32)
    assert frechet_distance_from_features(a, b) == pytest.approx(_scipy_fvd(a, b), rel=1e-6)


def test_fvd_identical_sets_is_zero_and_near_singular_covariances_are_finite():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 10))
    assert abs(frechet_distance_from_features(a, a)) < 1e-9
    # fewer samples than dimensions: rank-deficient covariances
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 1.0
    d = frechet_distance_from_features(x, y)
    assert math.isfinite(d) and d > 0
    assert d == pytest.approx(_scipy_fvd(x, y), rel=1e-5)


def test_frechet_of_known_gaussians():
    # N(0, I) vs N(m, 4I) in dim k: |m|² + k + 4k − 2·tr(2I) = |m|² + k
    k, m = 5, np.full(5, 2.0)
    assert frechet_distance(np.zeros(k), np.eye(k), m, 4 * np.eye(k)) == pytest.approx(m @ m + k, rel=1e-12)


def test_sqrtm_psd_clips_rounding_negatives():
    m = np.diag([4.0, 1.0, -1e-14])
    np.testing.assert_allclose(sqrtm_psd(m), np.diag([2.0, 1.0, 0.0]), atol=1e-12)


def test_statistics_and_mismatch_errors():
    with pytest.raises(ValueError, match="num_samples >= 2"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="same network"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_inception_score_by_hand():
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    # marginal (0.25, 0.5, 0.25); KL of each row = 0.5 ln 2 + 0.5 ln 1 = 0.5 ln 2
    mean, std = inception_score(p)
    assert mean == pytest.approx(math.exp(0.5 * math.log(2)), rel=1e-12) and std == 0.0
    # one-hot over k distinct classes: IS = k
    assert inception_score(np.eye(4))[0] == pytest.approx(4.0, rel=1e-12)
    # identical rows: IS = 1
    assert inception_score(np.tile([[0.2, 0.8]], (5, 1)))[0] == pytest.approx(1.0, rel=1e-12)


def test_inception_score_splits_and_logits():
    logits = np.log(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) + 1e-30)
    mean, std = inception_score_from_logits(logits, splits=2)
    assert mean == pytest.approx(2.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.ones((2, 3)))
