import pytest
import torch

from vidrd_model.sampling.loop import LongVideoSettings, denoise_clip, sample_long_video, text_conditions
from vidrd_model.sampling.schedulers import make_scheduler

SHAPE = (1, 4, 8, 6, 6)
BASE = dict(num_clips=3, num_inference_steps=10, guidance_scale=7.5)
OFF = dict(frame_noise_reversion=False, past_dependent_noise=False, staged_guidance=False)


def _run(unet, embeds, seed=0, scheduler="ddim", **overrides):
    settings = LongVideoSettings(**{**BASE, **overrides})
    gen = torch.Generator().manual_seed(seed)
    clips = sample_long_video(unet, make_scheduler(scheduler), embeds[0], embeds[1], settings, SHAPE, generator=gen)
    return [c.latents for c in clips]


def test_all_off_is_plain_per_clip_sampling(standin_unet, text_embeds):
    got = _run(standin_unet, text_embeds, **OFF)
    # plain sampling: every clip denoised on its own from the generator's successive draws
    gen = torch.Generator().manual_seed(0)
    settings = LongVideoSettings(**{**BASE, **OFF})
    conds = text_conditions(text_embeds[0], text_embeds[1], settings.guidance_scale)
    for k in range(3):
        noise = torch.randn(SHAPE, generator=gen)
        want, _ = denoise_clip(standin_unet, make_scheduler("ddim"), noise, conds, settings)
        assert torch.equal(got[k], want)


@pytest.mark.parametrize("switch", ["frame_noise_reversion", "past_dependent_noise", "staged_guidance"])
def test_each_switch_changes_the_video(standin_unet, text_embeds, switch):
    plain = _run(standin_unet, text_embeds, **OFF)
    on = _run(standin_unet, text_embeds, **{**OFF, switch: True})
    assert torch.equal(on[0], plain[0])  # clip 0 never depends on them
    for k in (1, 2):
        assert not torch.allclose(on[k], plain[k], atol=1e-4)


def test_seed_alone_reproduces(standin_unet, text_embeds):
    a = _run(standin_unet, text_embeds, seed=3)
    b = _run(standin_unet, text_embeds, seed=3)
    c = _run(standin_unet, text_embeds, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])


def test_stochastic_scheduler_reproducible_from_seed(standin_unet, text_embeds):
    a = _run(standin_unet, text_embeds, seed=5, scheduler="euler-a", num_clips=2)
    b = _run(standin_unet, text_embeds, seed=5, scheduler="euler-a", num_clips=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_guided_frames_follow_previous_clip_early(standin_unet, text_embeds):
    """With DSG, clip 1's step-1 input equals clip 0's step-1 latents, reversed, on the frames guided at step 1
    (T=10, M=4, γ=0.4: frames 0, 1, 2 — frame 3 is guided at step 0 only)."""
    seen = []

    def spy(sample, timestep, encoder_hidden_states):
        seen.append(sample[:1].clone())
        return standin_unet(sample, timestep, encoder_hidden_states)

    _run(spy, text_embeds, num_clips=2, past_dependent_noise=False)
    clip0_step1, clip1_step1 = seen[1], seen[10 + 1]
    torch.testing.assert_close(clip1_step1[:, :, :3], clip0_step1.flip(2)[:, :, :3])
    assert not torch.allclose(clip1_step1[:, :, 3:], clip0_step1.flip(2)[:, :, 3:])


def test_settings_errors_teach():
    with pytest.raises(ValueError, match=r"overlap_frames must be in \[0, num_frames\)"):
        LongVideoSettings(num_frames=4, overlap_frames=4)
    with pytest.raises(ValueError, match="num_clips"):
        LongVideoSettings(num_clips=0)
