"""ffprobe wrapper and the timestamp-exact span decoder: CFR, VFR, rotation, odd sizes, bad files."""

import math

import pytest

from tests.short_video.sv_helpers import frame_index, real_clip
from vidrd_data.media.decode import DecodeError, decode_span, decode_spans, sample_frames_at
from vidrd_data.media.probe import NoVideoStream, ProbeError, UnsupportedCodec, probe


def test_probe_cfr_vfr_rotated(sv_media):
    cfr = probe(sv_media["cfr"])
    assert (cfr.width, cfr.height, cfr.codec, cfr.rotation, cfr.has_audio) == (64, 48, "h264", 0, False)
    assert cfr.fps == pytest.approx(25) and cfr.duration == pytest.approx(4.0, abs=0.05) and cfr.frames == 100
    assert not cfr.vfr
    assert probe(sv_media["vfr"]).vfr
    rot = probe(sv_media["rotated"])
    assert (rot.rotation, rot.width, rot.height, rot.coded_size) == (90, 48, 64, (64, 48))


@pytest.mark.parametrize("backend", ["pyav", "ffprobe"])
def test_probe_backends_agree(sv_media, backend):
    for name in ("cfr", "vfr", "rotated", "odd"):
        a, b = probe(sv_media[name]), probe(sv_media[name], backend=backend)
        for f in ("width", "height", "codec", "rotation", "frames", "has_audio", "vfr", "data_end", "keyframes"):
            assert getattr(a, f) == getattr(b, f), (name, f)
        assert a.duration == pytest.approx(b.duration, abs=1e-3) and a.fps == pytest.approx(b.fps, rel=1e-3)


@pytest.mark.parametrize("backend", ["pyav", "ffprobe"])
@pytest.mark.parametrize("name, exc, words", [
    ("empty", ProbeError, "empty"), ("corrupt", ProbeError, "cannot read"), ("truncated", ProbeError, "cannot read"),
    ("audio_only", NoVideoStream, "no video stream"), ("unsupported", UnsupportedCodec, "unsupported codec"),
])
def test_probe_bad_files(sv_media, name, exc, words, backend):
    with pytest.raises(exc, match=words):
        probe(sv_media[name], backend=backend)


def test_decode_cfr_picks_frame_on_screen(sv_media):
    out = decode_span(sv_media["cfr"], 1.0, 2.0, 8, None, frames=8)
    assert out.frames.shape == (8, 48, 64, 3)
    expect = [math.floor((1.0 + i / 8) * 25 + 1e-6) for i in range(8)]
    assert [frame_index(f) for f in out.frames] == expect
    assert all(1.0 - 1 / 25 < t <= 2.0 for t in out.source_times)


def test_decode_vfr_by_timestamps(sv_media):
    start = 1.5
    out = decode_span(sv_media["vfr"], start, start + 1.0, 8, (48, 36), frames=8)
    expect = []
    for i in range(8):
        t = start + i / 8
        expect.append(math.floor(t * 10 + 1e-6) if t < 2 else 20 + math.floor((t - 2) * 30 + 1e-6))
    assert [frame_index(f) for f in out.frames] == expect
    assert out.frames.shape == (8, 36, 48, 3)


def test_decode_rotation_applied(sv_media):
    out = decode_span(sv_media["rotated"], 0.5, 1.0, 8, None, frames=4)
    assert out.frames.shape == (4, 64, 48, 3)  # displayed: portrait
    f = out.frames[0]
    assert f[-1, 0].min() == 255 and f[0, -1].max() < 255  # the coded top-left corner is now bottom-left
    assert frame_index(f, rotation=90) == math.floor(0.5 * 25)
    assert decode_span(sv_media["rotated"], 0.5, 1.0, 8, (40, 80), frames=4).frames.shape == (4, 80, 40, 3)


def test_decode_odd_size_cover_crop(sv_media):
    assert decode_span(sv_media["odd"], 0, 1, 8, None).frames.shape == (8, 143, 175, 3)
    out = decode_span(sv_media["odd"], 0, 1, 8, (64, 64))
    assert out.frames.shape == (8, 64, 64, 3)


def test_decode_past_the_end_fails(sv_media):
    with pytest.raises(DecodeError, match="ends at"):
        decode_span(sv_media["cfr"], 3.5, 4.5, 8, None, frames=8)
    with pytest.raises(ValueError, match="shorter"):
        decode_span(sv_media["cfr"], 0, 0.5, 8, None, frames=8)


def test_decode_spans_one_pass_equals_separate(sv_media):
    info = probe(sv_media["vfr"])
    spans = [(0.3, 1.3), (1.9, 2.9), (2.95, 3.95)]
    together = decode_spans(sv_media["vfr"], spans, 8, (48, 36), frames=8, keyframes=info.keyframes)
    for (s, e), got in zip(spans, together):
        alone = decode_span(sv_media["vfr"], s, e, 8, (48, 36), frames=8)
        assert got.source_times == alone.source_times and (got.frames == alone.frames).all()
    late = decode_spans(sv_media["cfr"], [(1.0, 2.0), (3.5, 4.5)], 8, None, frames=8)
    assert late[0].frames.shape == (8, 48, 64, 3) and isinstance(late[1], DecodeError)


def test_sample_frames_at_any_order(sv_media):
    out = sample_frames_at(sv_media["vfr"], [3.5, 0.25, 2.01], size=(32, 24))
    assert [frame_index(f) for f in out.frames] == [20 + 45, 2, 20]
    assert out.frames.shape == (3, 24, 32, 3)


def test_decode_real_clips():
    bikes = real_clip("bikes.mp4")
    out = decode_span(bikes, 4.0, 4.4, 25, None, frames=10)
    assert out.frames.shape == (10, 272, 640, 3)
    assert out.source_times == pytest.approx([4.0 + i * 0.04 for i in range(10)], abs=1e-3)
    vtest = real_clip("vtest.avi")  # msmpeg4v3 in AVI, sparse keyframes
    out = decode_span(vtest, 40.0, 42.0, 8, (128, 96), frames=16)
    assert out.frames.shape == (16, 96, 128, 3) and 39.9 <= out.source_times[0] <= 40.0
