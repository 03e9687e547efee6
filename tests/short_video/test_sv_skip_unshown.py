"""Frames no target lands on are not decoded (skip_frame=NONREF per packet), and the picked frames stay the same.

Every case compares `decode_spans` with and without skipping, pixel for pixel and timestamp for timestamp, over
several output rates and seeded random spans: B-frame H.264 (with and without b-pyramid, where B-frames are
references), HEVC, MPEG-4 part 2 in mp4 and in AVI (whose timestamps come out of order: never skipped), MPEG-2,
a variable-frame-rate file, and the real offline clips.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import frame_index, real_clip
from vidrd_data.media.decode import VideoReader, decode_spans, no_target_between
from vidrd_data.media.probe import probe

RATES = (2, 5, 8, 12.5, 24)


def random_spans(rng: random.Random, duration: float, n: int, length: float) -> list[tuple[float, float]]:
    starts = sorted(rng.uniform(0, max(0.0, duration - length)) for _ in range(n))
    return [(s, min(duration, s + length)) for s in starts]


def assert_same_with_and_without_skipping(path: Path, seed: int = 0, size=(32, 24)) -> None:
    info = probe(path)
    rng = random.Random(seed)
    for fps in RATES:
        for n, length in ((1, 1.0), (3, 0.8), (5, 2.0)):
            spans = [sp for sp in random_spans(rng, info.duration, n, length) if (sp[1] - sp[0]) * fps >= 1]
            if not spans:
                continue
            plain = decode_spans(path, spans, fps, size, keyframes=info.keyframes, skip_unshown=False)
            skipped = decode_spans(path, spans, fps, size, keyframes=info.keyframes, skip_unshown=True)
            for sp, a, b in zip(spans, plain, skipped):
                where = f"{path.name} at {fps} fps, span {sp}"
                assert type(a) is type(b), where
                if isinstance(a, Exception):
                    assert str(a) == str(b), where
                    continue
                assert a.source_times == b.source_times, where
                assert np.array_equal(a.frames, b.frames), where


def frames_decoded(path: Path, skip_all: bool) -> int:
    """How many frames one pass over the file yields when every frame after the first is unwanted."""
    reader = VideoReader(path)
    try:
        return sum(1 for _ in reader.frames(unshown=(lambda t, t_next: True) if skip_all else None))
    finally:
        reader.close()


@pytest.mark.parametrize("name", ["h264_b", "h264_pyramid", "h264_vfr", "hevc", "mpeg4_mp4", "mpeg4_avi", "mpeg2_mkv",
                                  "mpeg2_ts"])
def test_skipping_keeps_the_picked_frames(bframe_media, name):
    assert_same_with_and_without_skipping(bframe_media[name], seed=hash(name) % 1000)


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "Megamind.avi", "vtest.avi"])
def test_skipping_keeps_the_picked_frames_of_real_clips(name):
    assert_same_with_and_without_skipping(real_clip(name), seed=7, size=(64, 48))


def test_the_decoder_really_skips_unreferenced_frames(bframe_media):
    for name in ("h264_b", "h264_pyramid", "hevc", "mpeg4_mp4", "mpeg2_mkv"):
        every, fewer = frames_decoded(bframe_media[name], False), frames_decoded(bframe_media[name], True)
        assert fewer < 0.8 * every, name  # B-frames (non-reference ones) were not decoded
    bikes = real_clip("bikes.mp4")
    assert frames_decoded(bikes, True) < 0.7 * frames_decoded(bikes, False)
    # AVI keeps no presentation times (packet times say nothing about when a frame shows); in MPEG-TS a packet
    # need not hold one whole frame: no skipping in either
    for name in ("mpeg4_avi", "mpeg2_ts"):
        assert frames_decoded(bframe_media[name], True) == frames_decoded(bframe_media[name], False), name


def test_no_skipping_with_frame_threads_or_other_codecs(bframe_media):
    reader = VideoReader(bframe_media["h264_b"], threads=2)
    try:
        assert not reader.can_skip_unshown
    finally:
        reader.close()
    vtest = real_clip("vtest.avi")  # msmpeg4v3: not a codec whose skipping is known to be exact
    assert frames_decoded(vtest, True) == frames_decoded(vtest, False)


def test_no_target_between_follows_the_pick_rule():
    times = [0.0, 0.125, 0.25, 0.375]
    # a frame shown from t until t_next takes every target T with t - eps <= T < t_next - eps
    assert not no_target_between(times, 0.1, 0.14)  # 0.125 lands on it
    assert no_target_between(times, 0.13, 0.2)
    assert not no_target_between(times, 0.125, 0.2)  # a target exactly at the frame's time
    assert no_target_between(times, 0.2, 0.25)  # the next frame, shown at 0.25, takes 0.25
    assert not no_target_between(times, 0.2, 0.25 + 1e-3)
    assert no_target_between(times, 0.4, 9.0)  # past every target
    assert not no_target_between(times, -1.0, 0.01)


@pytest.mark.parametrize("name", ["h264_b", "h264_pyramid", "mpeg4_mp4", "mpeg2_mkv", "mpeg2_ts"])  # AVI's clock:
@pytest.mark.parametrize("skip", [False, True])  # test_sv_containers
def test_each_target_gets_the_frame_on_screen(bframe_media, name, skip):
    """Ground truth from the pixels (frame k shows k, 25 fps): target t gets frame floor(25 t)."""
    path = bframe_media[name]
    info = probe(path)
    rng = random.Random(3)
    for fps in (2, 8):
        spans = random_spans(rng, info.duration - 0.1, 4, 1.0)
        for sp, out in zip(spans, decode_spans(path, spans, fps, None, keyframes=info.keyframes, skip_unshown=skip)):
            want = [int(math.floor((sp[0] + j / fps) * 25 + 1e-6)) for j in range(len(out.frames))]
            assert [frame_index(f) for f in out.frames] == want, (name, fps, sp)
