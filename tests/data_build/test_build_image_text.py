"""End to end: image–text sources -> pseudo-video shards that outside loaders read unchanged."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data_build.helpers import (huge_png_header, image_source, photo, status_rows, tar_keys,
                                      write_folder_dataset, write_img2dataset_tar, write_manifest)
from vidrd_data.build import build
from vidrd_data.media.encode import decode_mp4_bytes
from vidrd_data.sink import iter_samples

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, out=lambda s: None)


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory, demo_data, ray_session):
    """The bundled demo manifest, built once (photos source; video sources as they are configured)."""
    import yaml

    out = tmp_path_factory.mktemp("demo") / "out"
    doc = yaml.safe_load((REPO / "manifests/demo.yaml").read_text())
    doc["output"] = str(out)
    for src in doc["sources"]:  # make relative paths absolute: tests do not run from the repo root
        for k in ("root", "path"):
            if k in src["input"] and not Path(src["input"][k]).is_absolute():
                src["input"][k] = str(REPO / src["input"][k])
    for model in doc.get("models", {}).values():
        for k in ("path", "checkpoint"):
            if model.get(k) and not Path(model[k]).is_absolute() and (REPO / model[k]).exists():
                model[k] = str(REPO / model[k])
    manifest = out.parent / "demo.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    report = build(manifest, **QUIET)
    return out, doc, report


def test_demo_builds_and_every_clip_matches_spec(demo_build):
    out, doc, report = demo_build
    clip = doc["clip"]
    samples = list(iter_samples(str(out)))
    assert len(samples) == report.counts["success"] > 0
    assert report.counts.get("failed", 0) == 0
    for s in samples:
        frames, fps = decode_mp4_bytes(s["mp4"])
        if clip.get("frames"):
            assert len(frames) == clip["frames"], s["key"]
        assert frames.shape[1:3] == (clip["size"][1], clip["size"][0])
        assert fps == pytest.approx(clip["fps"])
        meta = json.loads(s["json"])
        assert meta["key"] == s["key"] and s["txt"].decode().strip()
        assert set(meta) == {"key", "source", "video", "pseudo_video", "captions", "caption_source", "label",
                             "scores", "details", "pipeline"}
        assert Image.open(io.BytesIO(s["jpg"])).size == tuple(clip["size"])
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["totals"]["success"] == len(samples)
    assert info["resolved"]["manifest"]["name"] == "demo"


def test_shards_load_with_webdataset(demo_build):
    import webdataset as wds

    out, doc, report = demo_build
    urls = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    seen = []
    for sample in ds:
        assert {"mp4", "jpg", "txt", "json"} <= set(sample)
        seen.append(sample["__key__"])
    assert sorted(seen) == sorted(tar_keys(out)) and len(seen) == report.counts["success"]


def _first_clip(video):
    """datasets decodes mp4 with torchcodec's VideoDecoder."""
    if not hasattr(video, "get_frames_in_range"):
        pytest.fail(f"datasets returned {type(video)} for mp4, expected a torchcodec VideoDecoder")
    return video.get_frames_in_range(0, len(video)).data


def test_shards_load_with_hf_datasets_per_source(demo_build):
    """A source whose json has no nullable numbers loads with no features given (the builder infers the schema
    from the first five samples of the first shard). Long-video scores can be null in those five and numbers
    later, which inference cannot know: such loads take `features=hf_features()` (next test)."""
    datasets = pytest.importorskip("datasets")
    out, doc, report = demo_build
    want = doc["clip"]
    total = 0
    for src in doc["sources"]:
        if src["kind"] == "long_video":
            continue
        files = sorted(str(p) for p in (out / "shards").glob(f"{src['name']}-*.tar"))
        ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train")
        total += len(ds)
        assert {"mp4", "jpg", "txt", "json"} <= set(ds.column_names)
        frames = _first_clip(ds[0]["mp4"])
        assert tuple(frames.shape) == (want["frames"], 3, want["size"][1], want["size"][0])
    assert total > 0


def test_shards_load_with_hf_datasets_all_at_once(demo_build):
    """All sources in one load, with the schema we publish (`hf_features`): every sample present and typed."""
    datasets = pytest.importorskip("datasets")
    from vidrd_data.sample_json import hf_features

    out, doc, report = demo_build
    files = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", features=hf_features())
    assert len(ds) == report.counts["success"]
    kinds = {row["source"]["kind"] for row in ds["json"]}
    assert kinds <= {"image", "video"} and ds.features["json"]["video"]["fps"].dtype == "float64"
    frames = _first_clip(ds[len(ds) - 1]["mp4"])
    assert frames.shape[0] == doc["clip"]["frames"]


def test_bad_items_get_exactly_one_row_each(tmp_path, ray_session):
    root = tmp_path / "imgs"
    good = write_folder_dataset(root, 3)
    def caption(name, text="a picture of several coloured circles on a gradient"):
        (root / f"{name}.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    (root / "zero.jpg").write_bytes(b""); caption("zero")
    (root / "garbage.jpg").write_bytes(np.random.default_rng(0).bytes(5000)); caption("garbage")
    buf = io.BytesIO(); photo(9, (300, 200)).save(buf, format="JPEG"); (root / "truncated.jpg").write_bytes(buf.getvalue()[:1500]); caption("truncated")
    (root / "huge.png").write_bytes(huge_png_header(20000, 20000)); caption("huge")
    photo(10).save(root / "gray.png", format="PNG") if False else photo(10, mode="L").save(root / "gray.png"); caption("gray")
    photo(11, mode="RGBA").save(root / "alpha.png"); caption("alpha")
    photo(12, mode="CMYK").save(root / "cmyk.jpg"); caption("cmyk")
    Image.fromarray((np.arange(160 * 120).reshape(120, 160) * 3).astype(np.uint16)).save(root / "deep16.png"); caption("deep16")
    photo(13, (40, 30)).save(root / "tiny.jpg"); caption("tiny")
    photo(14).save(root / "emptycap.jpg"); caption("emptycap", "   \n")
    photo(15).save(root / "latin1.jpg"); caption("latin1", "caf\xe9 au lait on a table".encode("latin-1"))
    photo(16).save(root / "nocaption.jpg")
    manifest = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("bad", root)])
    report = build(manifest, **QUIET)
    rows = status_rows(tmp_path / "out").set_index("input_id")
    inputs = sorted(p.stem for p in root.iterdir() if p.suffix != ".txt")
    assert sorted(rows.index) == inputs  # exactly one row per input
    assert rows.index.is_unique
    expect = {"zero": ("failed", "empty file"), "garbage": ("failed", "cannot identify image"),
              "truncated": ("failed", "truncated"), "huge": ("filtered", "too_large: 20000x20000"),
              "tiny": ("filtered", "too_small"), "emptycap": ("filtered", "empty_caption"),
              "latin1": ("failed", "not valid UTF-8"), "nocaption": ("failed", "no caption file")}
    for name, (status, reason) in expect.items():
        assert rows.loc[name, "status"] == status, (name, rows.loc[name].to_dict())
        assert reason in rows.loc[name, "reason"], (name, rows.loc[name, "reason"])
    for name in [*good, "gray", "alpha", "cmyk", "deep16"]:
        assert rows.loc[name, "status"] == "success", (name, rows.loc[name, "reason"])
    assert sorted(tar_keys(tmp_path / "out")) == sorted(rows[rows.status == "success"]["key"])
    assert report.failures  # the report groups failures by reason


def test_webdataset_and_table_sources(tmp_path, ray_session):
    import pandas as pd

    write_img2dataset_tar(tmp_path / "web-000.tar", 5)
    imgs = tmp_path / "table_imgs"
    ids = write_folder_dataset(imgs, 3)
    table = pd.DataFrame({"image": [f"table_imgs/{i}.jpg" for i in ids] + ["table_imgs/missing.jpg"],
                          "caption": ["a test pattern with three circles"] * 4})
    table.to_parquet(tmp_path / "pairs.parquet")
    recipe = str(REPO / "pipelines/image_text.yaml")
    sources = [{"name": "web", "kind": "image_text", "recipe": recipe,
                "input": {"format": "webdataset", "urls": str(tmp_path / "web-*.tar")}},
               {"name": "tab", "kind": "image_text", "recipe": recipe,
                "input": {"format": "table", "path": str(tmp_path / "pairs.parquet")}}]
    build(write_manifest(tmp_path / "m.yaml", tmp_path / "out", sources), **QUIET)
    rows = status_rows(tmp_path / "out")
    web = rows[rows.source == "web"]
    assert len(web) == 5 and (web.status == "success").all()
    tab = rows[rows.source == "tab"].set_index("input_id")
    assert len(tab) == 4 and (tab.status == "success").sum() == 3
    assert "missing.jpg does not exist" in tab.loc["row000003", "reason"]
    sample = next(s for s in iter_samples(str(tmp_path / "out")) if s["key"].startswith("web_"))
    meta = json.loads(sample["json"])
    assert meta["captions"]["original"].startswith("a web image number")
    assert json.loads(meta["details"])["source"]["original_meta"]["url"].startswith("http://example.invalid/")


def test_rerun_skips_committed_and_rebuilds_incomplete(tmp_path, ray_session):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 10)
    manifest = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", root)], max_samples=4)
    first = build(manifest, **QUIET)
    keys = sorted(tar_keys(tmp_path / "out"))
    assert len(keys) == 10 and len(first.shards) == 3
    # Simulate a kill between tar and commit marker: the shard must be rebuilt, nothing doubled.
    stats = sorted((tmp_path / "out/shards").glob("*_stats.json"))[-1]
    stats.unlink()
    second = build(manifest, **QUIET)
    assert len(second.shards) == 1 and second.inputs == 2
    assert sorted(tar_keys(tmp_path / "out")) == keys
    third = build(manifest, **QUIET)
    assert third.inputs == 0 and sorted(tar_keys(tmp_path / "out")) == keys
