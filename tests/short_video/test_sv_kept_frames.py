"""Cutting from the frames detect_shots kept gives the clips a second decoding gives, bit for bit, and decodes
nothing again; what was not kept (over budget, damaged, another process, a changed file) is decoded as before."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.short_video.sv_helpers import real_clip
from tests.short_video.test_sv_skip_unshown import random_spans
from vidrd_data.items import Item
from vidrd_data.media import kept_frames
from vidrd_data.media.decode import DecodeError, decode_spans
from vidrd_data.media.probe import probe
from vidrd_data.stages.base import StageContext, make_stage


def _detect(path: Path, budget_mb: float = 256.0) -> Item:
    ctx = StageContext(clip={"fps": 8, "size": [64, 48], "frames": 8})
    item = Item(key="k", source="s", input_id=path.name, data={"path": str(path)})
    [item] = make_stage("probe", {}, ctx).process(item)
    [item] = make_stage("detect_shots", {"keep_frames_mb": budget_mb}, ctx).process_batch([item])
    return item


def assert_kept_cut_is_the_decoded_cut(path: Path, seed: int, size=(48, 32)) -> None:
    info = probe(path)
    rng = random.Random(seed)
    for fps in (2, 8, 24):
        for n, length in ((1, 1.0), (4, 0.7)):
            spans = [sp for sp in random_spans(rng, info.duration, n, length) if (sp[1] - sp[0]) * fps >= 1]
            spans.append((max(0.0, info.duration - 0.2), info.duration + 1.0))  # past the data: both refuse
            kept_frames.clear()
            _detect(path)
            kept = kept_frames.take(str(path))
            assert kept is not None, path.name
            ours = kept_frames.cut_kept(kept, spans, fps, size)
            ref = decode_spans(path, spans, fps, size, keyframes=info.keyframes)
            for sp, a, b in zip(spans, ours, ref):
                where = f"{path.name} at {fps} fps, span {sp}"
                assert type(a) is type(b), (where, a, b)
                if isinstance(a, DecodeError):
                    continue
                assert a.source_times == b.source_times, where
                assert np.array_equal(a.frames, b.frames), where


@pytest.mark.parametrize("name", ["h264_pyramid", "h264_vfr", "mpeg4_avi", "mpeg2_ts"])
def test_kept_frames_cut_like_a_second_decoding(bframe_media, name):
    assert_kept_cut_is_the_decoded_cut(bframe_media[name], seed=hash(name) % 1000)


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4", "Megamind.avi", "tree.avi"])
def test_kept_frames_cut_like_a_second_decoding_on_real_clips(name):
    assert_kept_cut_is_the_decoded_cut(real_clip(name), seed=11, size=(64, 48))


def _chunk(paths: list[Path], keep_mb: float) -> list[Item]:
    """probe -> detect_shots -> plan_clips -> cut, stage after stage over the chunk, as a chunk task runs them."""
    ctx = StageContext(clip={"fps": 8, "size": [64, 48], "frames": 8})
    stages = [make_stage("probe", {}, ctx), make_stage("detect_shots", {"keep_frames_mb": keep_mb}, ctx),
              make_stage("plan_clips", {"policy": "multi", "max_clips": 3}, ctx), make_stage("cut", {}, ctx)]
    items = [Item(key=p.stem, source="s", input_id=p.name, data={"path": str(p)}, meta={"source": {}}) for p in paths]
    for st in stages:
        items = st.process_batch([it for it in items if it.alive])
    return items


def test_the_cut_decodes_nothing_again_unless_the_frames_were_not_kept(bframe_media, monkeypatch):
    import vidrd_data.media.gpu_decode as gd

    decoded: list[str] = []
    real = gd.decode_spans

    def counting(path, *a, **k):
        decoded.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(gd, "decode_spans", counting)
    paths = [bframe_media["h264_pyramid"], bframe_media["mpeg4_avi"]]
    kept_items = _chunk(paths, 256.0)
    assert decoded == [] and len(kept_items) == 6 and all(it.alive for it in kept_items)
    again = _chunk(paths, 0.0)  # nothing kept: every video decoded again, the same clips
    assert sorted(decoded) == sorted(p.name for p in paths)
    for a, b in zip(kept_items, again):
        assert a.key == b.key and np.array_equal(a.data["frames"], b.data["frames"])
        assert a.meta["keyframes"] == b.meta["keyframes"]
    sizes = []
    for path in paths:
        _detect(path)
        sizes.append(kept_frames.in_use_bytes())
    decoded.clear()
    _chunk(paths, (sizes[0] + sizes[1] / 2) / 2**20)  # room for the first video's frames only
    assert decoded == [paths[1].name]


def test_a_file_changed_since_detection_is_decoded_again(bframe_media, tmp_path):
    path = tmp_path / "v.mp4"
    shutil.copy(bframe_media["h264_pyramid"], path)
    kept_frames.clear()
    _detect(path)
    shutil.copy(bframe_media["h264_vfr"], path)  # replaced between the stages (another size, another mtime)
    assert kept_frames.take(str(path)) is None
    _detect(path)
    assert kept_frames.take(str(path)) is not None and kept_frames.take(str(path)) is None  # handed out once


def test_a_new_chunk_lets_go_of_frames_no_cut_took(bframe_media):
    _detect(bframe_media["h264_pyramid"])
    assert kept_frames.in_use_bytes() > 0
    _detect(bframe_media["mpeg4_avi"])  # a new detect_shots batch
    assert kept_frames.take(str(bframe_media["h264_pyramid"])) is None
    assert kept_frames.take(str(bframe_media["mpeg4_avi"])) is not None
    kept_frames.clear()
    assert kept_frames.in_use_bytes() == 0
