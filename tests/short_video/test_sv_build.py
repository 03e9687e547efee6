"""End to end through `vidrd_data.build`: a short-video table with good and bad inputs, tiny BLIP-2 captions."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from vidrd_data.media.encode import decode_mp4_bytes

REPO = Path(__file__).resolve().parents[2]
GOOD = {"cfr": "PlayingGuitar", "vfr": "PlayingGuitar", "rotated": "ApplyEyeMakeup", "odd": "ApplyEyeMakeup"}
BAD = {  # input -> (stage, words in the reason): failed rows
    "empty": ("probe", "empty (0 bytes)"),
    "corrupt": ("probe", "cannot read"),
    "truncated": ("probe", "cannot read"),
    "audio_only": ("probe", "no video stream"),
    "unsupported": ("probe", "unsupported codec"),
    "missing": ("read", "does not exist"),
}
FILTERED = {  # input -> (stage, reason prefix): rules, not errors (issue 12)
    "short": ("plan_clips", "too_short: video is 0.80 s, shorter than one 1.00 s clip"),
    "huge": ("probe", "too_large: resolution 4352x96"),
}


@pytest.fixture(scope="module")
def sv_build(tmp_path_factory, sv_media, tiny_blip2, ray_session):
    import yaml

    from vidrd_data.build import build

    d = tmp_path_factory.mktemp("sv_build")
    rows = [{"path": str(sv_media[n]), "label": lab} for n, lab in GOOD.items()]
    rows += [{"path": str(sv_media[n]) if n != "missing" else str(d / "missing.mp4"), "label": "Bad"}
             for n in [*BAD, *FILTERED]]
    pd.DataFrame(rows).to_csv(d / "videos.csv", index=False)
    doc = {
        "name": "sv", "output": str(d / "out"), "clip": {"fps": 8, "size": [64, 64], "frames": 8},
        "shard": {"max_samples": 8},
        "models": {"blip2": {"path": str(tiny_blip2), "batch_size": 4}},
        "sources": [{
            "name": "clips", "kind": "short_video", "recipe": str(REPO / "pipelines/short_video.yaml"),
            "input": {"format": "table", "path": str(d / "videos.csv"), "allow_outside_root": True},
            "overrides": {"plan_clips": {"policy": "multi", "max_clips": 2},
                          "cut": {"keyframes": [0.25, 0.75]},
                          "caption_blip2": {"max_new_tokens": 10, "min_new_tokens": 5, "no_repeat_ngram_size": 1}},
        }],
    }
    (d / "m.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    report = build(d / "m.yaml", progress=False, out=lambda s: None)
    return d / "out", report


def _samples(out: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for tar_path in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(tar_path) as tf:
            for m in tf:
                key, _, ext = m.name.partition(".")
                samples.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return samples


def test_each_bad_input_is_exactly_one_failed_or_filtered_row(sv_build):
    from vidrd_data.sink import read_status

    out, _ = sv_build
    rows = read_status(str(out))
    rows["name"] = rows["input_id"].map(lambda p: Path(p).stem)
    failed = rows[rows.status == "failed"]
    assert sorted(failed["name"]) == sorted(BAD)  # one row each, nothing else failed
    for _, row in failed.iterrows():
        stage, words = BAD[row["name"]]
        assert words in row["reason"], (row["name"], row["reason"])
    filtered = rows[rows.status == "filtered"]
    assert sorted(filtered["name"]) == sorted(FILTERED)
    for _, row in filtered.iterrows():
        stage, prefix = FILTERED[row["name"]]
        assert row["stage"] == stage and row["reason"].startswith(prefix), (row["name"], row["reason"])
    ok = rows[rows.status == "success"]
    assert sorted(ok["name"]) == sorted([n for n in GOOD for _ in range(2)])  # 2 clips per good video


def test_clips_match_the_spec_and_carry_captions(sv_build):
    out, _ = sv_build
    samples = _samples(out)
    assert len(samples) == 2 * len(GOOD)
    for key, s in samples.items():
        assert set(s) == {"mp4", "jpg", "txt", "json"}
        frames, fps = decode_mp4_bytes(s["mp4"])
        assert frames.shape == (8, 64, 64, 3) and fps == pytest.approx(8)
        j = json.loads(s["json"])
        start, end = j["source"]["span"]
        details = json.loads(j["details"])
        duration = details["probe"]["duration"]
        assert 0 <= start < end <= duration + 1e-6 and end - start == pytest.approx(1.0)
        shots = details["shots"]  # detect_shots ran: the clip lies in one shot
        assert not any(start < c < end for c in shots["cuts"]) and len(j["source"]["shot_ids"]) == 1
        assert not any(a < end and start < b for a, b in shots["transitions"])
        caps = j["captions"]
        assert caps["blip2"] and caps["label"] == {"PlayingGuitar": "a person playing guitar",
                                                   "ApplyEyeMakeup": "a person applying eye makeup"}[j["label"]]
        assert j["caption_source"] in ("blip2", "label")
        assert s["txt"].decode().strip() == caps[j["caption_source"]]
        assert len(json.loads(j["details"])["blip2"]["frames"]) == 2
