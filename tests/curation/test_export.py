"""`vidrd-data export OUT --to ...`: each export read back by the library that consumes it."""

from __future__ import annotations

import tarfile

import av
import pandas as pd
import pytest

from tests.curation.out_helpers import make_output
from vidrd_data.cli import main


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return make_output(tmp_path_factory.mktemp("export_out"))


def test_index_parquet_is_queryable_and_points_into_the_tars(out):
    assert main(["export", str(out), "--to", "index"]) == 0
    path = out / "exports" / "index" / "index.parquet"
    df = pd.read_parquet(path)
    assert len(df) == 12 and df["key"].is_unique  # one row per committed clip, no filtered/failed rows
    assert set(df["source"]) == {"photos", "clips"}
    row = df.set_index("key").loc["clips_item002"]
    assert row["caption"] == "a red car driving through a busy city street"
    assert row["score_motion_mean"] == pytest.approx(0.15) and pd.isna(row["score_aesthetic"])
    assert row["duration"] == pytest.approx(2.0) and row["shard"] == "clips-000000"
    # the offset is where the sample's first member starts: a reader can seek straight to it
    for r in df.itertuples():
        with open(r.tar, "rb") as f:
            f.seek(r.offset)
            assert tarfile.TarInfo.frombuf(f.read(512), "utf-8", "surrogateescape").name == f"{r.key}.mp4"
    try:
        import duckdb
    except ImportError:
        return
    n = duckdb.sql(f"SELECT count(*) FROM '{path}' WHERE score_motion_mean > 0.2").fetchone()[0]
    assert n == int((df["score_motion_mean"] > 0.2).sum())


def _check_clip(path, frames: int, width: int, height: int):
    with av.open(str(path)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == frames and got[0].shape == (height, width, 3)


def test_opensora_csv_with_extracted_clips(out):
    assert main(["export", str(out), "--to", "opensora"]) == 0
    df = pd.read_csv(out / "exports" / "opensora" / "opensora.csv")  # Open-Sora reads its CSVs with pandas
    assert list(df.columns[:6]) == ["path", "text", "num_frames", "height", "width", "aspect_ratio"]
    assert {"fps", "resolution"} <= set(df.columns) and len(df) == 12
    for r in df.itertuples():
        _check_clip(r.path, r.num_frames, r.width, r.height)
    assert "a dog running on a sunny beach" in set(df["text"])


def test_webvid_csv_with_extracted_clips(out):
    assert main(["export", str(out), "--to", "webvid"]) == 0
    df = pd.read_csv(out / "exports" / "webvid" / "webvid.csv")
    assert list(df.columns) == ["videoid", "contentUrl", "duration", "page_dir", "name"]
    assert df["duration"].str.fullmatch(r"PT\d\dH\d\dM\d\dS").all()
    r = df.set_index("videoid").loc["clips_item002"]
    assert r["duration"] == "PT00H00M02S" and r["page_dir"] == "clips"
    assert r["contentUrl"].startswith("file://")
    _check_clip(r["contentUrl"][len("file://"):], 8, 64, 48)


def test_hf_save_to_disk_loads_back(out, tmp_path):
    from datasets import load_from_disk

    dest = tmp_path / "hf"
    assert main(["export", str(out), "--to", "hf", "--dest", str(dest)]) == 0
    ds = load_from_disk(str(dest))
    assert len(ds) == 12 and "score_clip_text_sim" in ds.column_names
    row = ds.filter(lambda r: r["key"] == "photos_item001")[0]
    assert row["caption"] == "two people riding bikes in the park" and row["poster"].size == (64, 48)
    assert row["mp4"][4:8] == b"ftyp"
    # an export never deletes a folder that is not its own earlier save
    other = tmp_path / "mine"
    (other / "keep").mkdir(parents=True)
    assert main(["export", str(out), "--to", "hf", "--dest", str(other)]) == 2
    assert (other / "keep").is_dir()


def test_unknown_format_is_refused(out, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(out), "--to", "parquet"])
    assert "invalid choice" in capsys.readouterr().err
