import math

import pytest
import torch

from vidrd_model.sampling.guidance import (
    apply_staged_guidance,
    guided_frames,
    guided_step_counts,
    last_guided_step,
)
from vidrd_model.sampling.noise import (
    align_to_next_clip,
    next_clip_noise,
    noise_mix_weights,
    past_dependent_noise,
    reverse_frames,
)


def _clip(n=8, seed=0):
    return torch.randn(1, 4, n, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_reverse_frames_reverses_frame_axis_only():
    x = _clip()
    r = reverse_frames(x)
    for j in range(8):
        assert torch.equal(r[:, :, j], x[:, :, 7 - j])


def test_alignment_puts_shared_frames_first():
    x = torch.arange(8.0).reshape(1, 1, 8, 1, 1)
    assert align_to_next_clip(x, 4, reverse=True).flatten().tolist() == [7, 6, 5, 4, 3, 2, 1, 0]
    assert align_to_next_clip(x, 4, reverse=False).flatten().tolist() == [4, 5, 6, 7, 0, 1, 2, 3]


def test_noise_mix_weights_keep_unit_variance():
    a, b = noise_mix_weights(4.0)
    assert a == pytest.approx(4 / math.sqrt(17)) and b == pytest.approx(1 / math.sqrt(17))
    assert a * a + b * b == pytest.approx(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        noise_mix_weights(-1)


def test_past_dependent_noise_mixes_only_non_overlapped_frames():
    reused, fresh = _clip(seed=1), _clip(seed=2)
    out = past_dependent_noise(reused, fresh, overlap_frames=4, alpha=4.0)
    assert torch.equal(out[:, :, :4], reused[:, :, :4])
    a, b = noise_mix_weights(4.0)
    torch.testing.assert_close(out[:, :, 4:], a * reused[:, :, 4:] + b * fresh[:, :, 4:])
    with pytest.raises(ValueError, match="overlap_frames"):
        past_dependent_noise(reused, fresh, overlap_frames=8, alpha=4.0)
    with pytest.raises(ValueError, match="clip's shape"):
        past_dependent_noise(reused, fresh[:, :, :4], overlap_frames=2, alpha=4.0)


def test_next_clip_noise_switches():
    prev, fresh = _clip(seed=3), _clip(seed=4)
    assert torch.equal(next_clip_noise(prev, fresh, 4, 4.0, False, False), fresh)
    assert torch.equal(next_clip_noise(prev, fresh, 4, 4.0, True, False), prev.flip(2))
    both = next_clip_noise(prev, fresh, 4, 4.0, True, True)
    assert torch.equal(both, past_dependent_noise(prev.flip(2), fresh, 4, 4.0))
    pns_only = next_clip_noise(prev, fresh, 4, 4.0, False, True)
    assert torch.equal(pns_only[:, :, :4], prev[:, :, 4:])


def test_guided_step_counts_released_defaults():
    assert guided_step_counts(50, 4, 0.4) == [20, 15, 10, 5]
    assert last_guided_step(50, 4, 0.4) == 20
    assert guided_step_counts(10, 4, 0.4) == [4, 3, 2, 1]  # the fixture's run
    assert guided_step_counts(50, 4, 0.0) == [0, 0, 0, 0]


def test_guided_frames_per_step():
    assert guided_frames(0, 50, 4, 0.4) == [0, 1, 2, 3]
    assert guided_frames(4, 50, 4, 0.4) == [0, 1, 2, 3]
    assert guided_frames(5, 50, 4, 0.4) == [0, 1, 2]
    assert guided_frames(19, 50, 4, 0.4) == [0]
    assert guided_frames(20, 50, 4, 0.4) == []


def test_apply_staged_guidance_overwrites_listed_frames():
    latents, guide = _clip(seed=5), _clip(n=4, seed=6)
    out = apply_staged_guidance(latents, guide, [0, 2])
    assert torch.equal(out[:, :, 0], guide[:, :, 0]) and torch.equal(out[:, :, 2], guide[:, :, 2])
    assert torch.equal(out[:, :, 1], latents[:, :, 1]) and torch.equal(out[:, :, 3:], latents[:, :, 3:])
    assert apply_staged_guidance(latents, guide, []) is latents
