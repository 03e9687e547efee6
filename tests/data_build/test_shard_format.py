"""The shard-format contract (vidrd_format.shards): commit protocol, committed-only listing, verification."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from vidrd_format.shards import (MEMBERS, ShardWriter, committed_shards, committed_tar_urls, own_file, parse_stem,
                                 shard_stem, verify_shard, write_sample)


def _members(i: int) -> dict[str, bytes]:
    return {"mp4": b"m" * (10 + i), "jpg": b"j" * 5, "txt": b"a caption", "json": json.dumps({"i": i}).encode()}


def test_commit_writes_tar_parquet_then_marker_with_digests(tmp_path):
    d = tmp_path / "out" / "shards"
    with ShardWriter(str(d), shard_stem("src", 3)) as w:
        for i in range(3):
            w.add(f"src_k{i}", _members(i))
        assert not (d / "src-000003.tar").exists() and len(list(d.glob("*.tmp"))) == 1  # nothing visible yet
        marker = w.commit(b"PARQUETBYTES", {"inputs": 3})
    assert sorted(p.name for p in d.iterdir()) == ["src-000003.parquet", "src-000003.tar", "src-000003_stats.json"]
    with tarfile.open(d / "src-000003.tar") as tf:
        names = tf.getnames()
    assert names[:4] == [f"src_k0.{e}" for e in MEMBERS] and len(names) == 12
    assert marker["samples"] == 3 and marker["files"]["tar"]["bytes"] == (d / "src-000003.tar").stat().st_size
    [shard] = committed_shards(str(tmp_path / "out"), verify="sha256")
    assert shard.stem == "src-000003" and shard.stats["inputs"] == 3
    assert committed_tar_urls([str(d / "src-000003.tar"), str(d / "src-000004.tar")]) == [str(d / "src-000003.tar")]


def test_drop_removes_written_samples_before_the_commit_and_digests_match(tmp_path):
    d = tmp_path / "out" / "shards"
    with ShardWriter(str(d), shard_stem("src", 0)) as w:
        for i in range(4):
            w.add(f"src_k{i}", _members(i))
        assert w.drop({"src_k1", "src_k3", "src_absent"}) == 2 and w.drop(set()) == 0
        w.add("src_k4", _members(4))  # writing goes on after a drop
        marker = w.commit(b"PQ", {})
    assert len(list(d.glob("*.tmp"))) == 0  # the first attempt's temp file is gone too
    with tarfile.open(d / "src-000000.tar") as tf:
        names = tf.getnames()
        assert tf.extractfile("src_k2.mp4").read() == _members(2)["mp4"]
    assert [n.split(".")[0] for n in names[::4]] == ["src_k0", "src_k2", "src_k4"] and len(names) == 12
    assert marker["samples"] == 3
    [shard] = committed_shards(str(tmp_path / "out"), verify="sha256")  # size and sha256 are the new tar's
    assert shard.stem == "src-000000"


def test_files_and_folder_are_fsynced_before_the_marker(tmp_path, monkeypatch):
    import os

    import vidrd_format.shards as shards

    events = []
    real_fsync, real_mv = os.fsync, None

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)
    monkeypatch.setattr(shards.os, "fsync", fsync)
    d = tmp_path / "shards"
    with ShardWriter(str(d), "s-000000") as w:
        real_mv = w.fs.mv
        monkeypatch.setattr(w.fs, "mv", lambda a, b, **kw: (events.append("mv " + b.rsplit("/", 1)[-1]), real_mv(a, b, **kw)))
        w.add("s_0", _members(0))
        w.commit(b"pq", {})
    marker = events.index("mv s-000000_stats.json")
    # tar data, parquet data, the folder: each fsynced before the marker is renamed into place
    assert events[:marker].count("fsync") >= 3 and events[marker - 1] == "fsync", events
    assert events.index("mv s-000000.tar") < events.index("mv s-000000.parquet") < marker


def test_uncommitted_and_damaged_shards_are_not_listed(tmp_path):
    d = tmp_path / "shards"
    for idx in (0, 1):
        with ShardWriter(str(d), shard_stem("s", idx)) as w:
            w.add(f"s_{idx}", _members(idx))
            w.commit(b"pq", {})
    with ShardWriter(str(d), shard_stem("s", 2)) as w:  # left without commit: its temp file is removed
        w.add("s_2", _members(2))
    assert not list(d.glob("*.tmp"))
    tar = d / "s-000001.tar"
    tar.write_bytes(tar.read_bytes()[:-700])  # truncated after commit
    assert [s.stem for s in committed_shards(str(d))] == ["s-000000", "s-000001"]
    assert [s.stem for s in committed_shards(str(d), verify="size")] == ["s-000000"]
    bad = committed_shards(str(d))[1]
    assert "bytes" in verify_shard(bad, "size")
    good = d / "s-000000.tar"
    data = bytearray(good.read_bytes()); data[600] ^= 1; good.write_bytes(bytes(data))  # same size, one bit flipped
    assert [s.stem for s in committed_shards(str(d), verify="size")] == ["s-000000"]
    assert committed_shards(str(d), verify="sha256") == []


def test_names_and_keys():
    assert parse_stem("web-000012-r03") == ("web", 12, 3) and parse_stem("notes.txt") is None
    assert own_file("web-000012.tar.0123456789ab.tmp") == ("web-000012", ".tar", True)
    assert own_file("my_notes-2024.tar") is None and own_file("web-000001_stats.json") == ("web-000001", "_stats.json", False)
    with pytest.raises(ValueError, match="dot-free"), tarfile.open(fileobj=io.BytesIO(), mode="w") as tf:
        write_sample(tf, "a.b", _members(0))
    with pytest.raises(ValueError, match="exactly"), tarfile.open(fileobj=io.BytesIO(), mode="w") as tf:
        write_sample(tf, "ab", {"mp4": b""})


def test_status_rows_are_string_columns_even_where_every_row_is_null():
    """Every status parquet has the same schema (a shard whose rows all lack a reason too): readers that
    concatenate shards (pandas, Hugging Face datasets) see one type per column."""
    import pyarrow.parquet as pq

    from vidrd_data.sink import STATUS_COLUMNS, status_parquet

    rows = [{"key": "a", "source": "s", "input_id": "a.jpg", "status": "success", "stage": None, "reason": None,
             "shard": "s-000000", "metadata": "{}"}]
    table = pq.read_table(io.BytesIO(status_parquet(rows)))
    assert table.column_names == STATUS_COLUMNS
    assert {str(t) for t in table.schema.types} == {"string"}
    assert table.to_pylist() == rows
    assert pq.read_table(io.BytesIO(status_parquet([]))).num_rows == 0
    numbered = pq.read_table(io.BytesIO(status_parquet([{**rows[0], "input_id": 7}])))  # an id read as a number
    assert numbered.column("input_id").to_pylist() == ["7"]
