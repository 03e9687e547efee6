"""Readers as partitions (issue 11.1), WebDataset repeats and damage (12.1), encodings (12.5), input roots (16.5).

Reader-level: no Ray. Every input here is made by the test.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.data_build.helpers import photo, write_folder_dataset, write_manifest
from vidrd_data.sources.base import get_reader
from vidrd_data.sources.inputs import expand_braces

REPO = Path(__file__).resolve().parents[2]


def reader(kind: str, fmt: str, base: Path, per_partition: int = 1000, **params):
    cls = get_reader(kind, fmt)
    r = cls("src", cls.Params.model_validate({"format": fmt, **params}), base, per_partition)
    r.plan()
    return r


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    photo(seed, (96, 80)).save(buf, format="JPEG")
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def sample(key: str, seed: int, caption: str) -> list[tuple[str, bytes]]:
    return [(f"{key}.jpg", jpeg(seed)), (f"{key}.txt", caption.encode())]


def test_brace_patterns_expand_without_touching_files(tmp_path):
    assert list(expand_braces("a-{008..011}.tar")) == ["a-008.tar", "a-009.tar", "a-010.tar", "a-011.tar"]
    assert list(expand_braces("{x,y}/{0..1}")) == ["x/0", "x/1", "y/0", "y/1"]
    t = time.time()
    r = reader("image_text", "webdataset", tmp_path, urls=str(tmp_path / "nowhere" / "{00000..09999}.tar"))
    parts = list(r.partitions())
    assert len(parts) == 10000 and time.time() - t < 5  # planning 10 000 absent tars stats nothing
    assert parts[123].payload["url"].endswith("/00123.tar") and parts[123].size is None
    # A missing tar becomes its own failed row when a worker expands it, never a planning error.
    [row] = list(r.expand(parts[0]))
    assert row.status == "failed" and "unreadable tar" in row.reason


def test_folder_listing_is_chunked_lazily_and_deterministically(tmp_path):
    write_folder_dataset(tmp_path / "imgs", 10)
    r = reader("image_text", "folder", tmp_path, per_partition=4, root="imgs")
    parts = list(r.partitions())
    assert [p.size for p in parts] == [4, 4, 2] and all(isinstance(e, str) for p in parts for e in p.payload)
    again = [p.payload for p in reader("image_text", "folder", tmp_path, per_partition=4, root="imgs").partitions()]
    assert again == [p.payload for p in parts]
    assert [it.input_id for p in parts for it in r.expand(p)] == [f"img{i:03d}" for i in range(10)]


def test_two_images_with_one_name_are_two_inputs(tmp_path):
    write_folder_dataset(tmp_path / "imgs", 1)
    photo(5).save(tmp_path / "imgs" / "img000.png")  # img000.jpg and img000.png share img000.txt
    items = reader("image_text", "folder", tmp_path, per_partition=1, root="imgs").list_items()
    assert sorted(it.input_id for it in items) == ["img000.jpg", "img000.png"] and all(it.alive for it in items)
    assert len({it.key for it in items}) == 2


def test_repeated_keys_never_overwrite_the_first_sample(tmp_path):
    """Inside one tar, and across two tars with the same stem in two folders."""
    write_tar(tmp_path / "a" / "00000.tar", [*sample("k1", 1, "first k1"), *sample("k2", 2, "k2"),
                                             *sample("k1", 3, "second k1 (repeat)")])
    write_tar(tmp_path / "b" / "00000.tar", [*sample("k2", 4, "k2 again in b"), *sample("k3", 5, "k3 only in b")])
    r = reader("image_text", "webdataset", tmp_path, urls=[str(tmp_path / "a" / "*.tar"), str(tmp_path / "b" / "*.tar")])
    items = [it for p in r.partitions() for it in r.expand(p)]
    ids = [it.input_id for it in items]
    assert len(ids) == len(set(ids)) == 5  # one row each, no id shared
    by_id = {it.input_id: it for it in items}
    assert by_id["00000/k1"].alive and by_id["00000/k1"].data["caption_bytes"] == b"first k1"
    assert by_id["00000/k1"].data["image_bytes"] == jpeg(1)
    assert by_id["00000/k2"].alive and by_id["00000/k2"].data["caption_bytes"] == b"k2"
    assert by_id["00000/k3"].alive
    dups = [it for it in items if it.status == "failed"]
    assert len(dups) == 2 and all(it.reason.startswith("duplicate_key: ") for it in dups)
    assert {it.key for it in items if it.alive}.isdisjoint({it.key for it in dups})


def test_truncated_tar_keeps_the_intact_samples_and_rows_the_rest(tmp_path):
    members = [m for i in range(4) for m in sample(f"s{i}", i, f"caption {i}")]
    full = write_tar(tmp_path / "t.tar", members).read_bytes()
    with tarfile.open(tmp_path / "t.tar") as tf:
        cut = tf.getmember("s2.txt").offset_data + 3  # inside sample s2's caption
    (tmp_path / "cut" ).mkdir()
    (tmp_path / "cut" / "t.tar").write_bytes(full[:cut])
    r = reader("image_text", "webdataset", tmp_path, urls=str(tmp_path / "cut" / "t.tar"))
    items = [it for p in r.partitions() for it in r.expand(p)]
    assert [it.input_id for it in items if it.alive] == ["t/s0", "t/s1"]
    damaged = [it for it in items if not it.alive]
    assert [it.input_id for it in damaged][0] == "t/s2"
    assert all(it.reason.startswith("truncated_archive: ") for it in damaged) and len(damaged) == 2
    # Cut exactly at a member boundary (no end-of-archive blocks): detected too.
    with tarfile.open(tmp_path / "t.tar") as tf:
        boundary = tf.getmember("s3.jpg").offset
    (tmp_path / "cut" / "t.tar").write_bytes(full[:boundary])
    items = [it for p in r.partitions() for it in r.expand(p)]
    assert [it.input_id for it in items if it.alive] == ["t/s0", "t/s1"]  # s2 was last read: not known complete
    assert any("no end-of-archive" in it.reason for it in items if not it.alive)


def _tar_with_big_member(path: Path, name: str, big: int, cut_after: bool = False) -> None:
    """s0 (intact), s1 with one member of `big` bytes (a hole on disk: reads as zeros), s2 (intact);
    `cut_after`: the file ends inside the big member (its header claims more than the file holds)."""
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tf:
        def add(n, data):
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        for n, data in sample("s0", 0, "first"):
            add(n, data)
        for n, data in [("s1.jpg", jpeg(1)), ("s1.txt", b"second"), ("s1.json", b"{}")]:
            if n != name:
                add(n, data)
                continue
            info = tarfile.TarInfo(n)
            info.size = big
            tf.fileobj.write(info.tobuf(tf.format, tf.encoding, tf.errors))
            tf.fileobj.seek(big, os.SEEK_CUR)
            tf.offset += 512 + big
        if cut_after:
            f.truncate(f.tell() - big // 2)
            tf.closed = True  # no end-of-archive blocks: the file ends mid-member
            return
        for n, data in sample("s2", 2, "third"):
            add(n, data)


@pytest.mark.parametrize("member,status", [("s1.jpg", "filtered"), ("s1.txt", "filtered"), ("s1.json", "ok")])
def test_an_oversized_tar_member_is_skipped_unread_and_its_sample_filtered(tmp_path, member, status):
    """A 300 MB member (sparse on disk) over max_member_bytes: an oversized image or caption filters its
    sample `too_large`, an oversized .json only loses the metadata; the samples around it are built, and the
    member's bytes are never held in memory."""
    import tracemalloc

    big, cap = 300 * 2**20, 64 * 2**20
    _tar_with_big_member(tmp_path / "t.tar", member, big)
    r = reader("image_text", "webdataset", tmp_path, urls=str(tmp_path / "t.tar"), max_member_bytes=cap)
    tracemalloc.start()
    items = [it for p in r.partitions() for it in r.expand(p)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20, peak
    by_id = {it.input_id: it for it in items}
    assert sorted(by_id) == ["t/s0", "t/s1", "t/s2"] and by_id["t/s0"].alive and by_id["t/s2"].alive
    assert by_id["t/s1"].status == status
    if status == "filtered":
        assert by_id["t/s1"].reason == f"too_large: member {member} in t.tar is {big} bytes > max_member_bytes {cap}"
    else:
        assert by_id["t/s1"].meta["source"].get("original_meta") is None


def test_a_member_header_claiming_more_than_the_file_holds_gives_rows_not_a_read(tmp_path):
    """The header says 300 MB, the file ends half-way through it: s0 is built, the rest gets truncated rows,
    and nothing near the claimed size is allocated."""
    import tracemalloc

    _tar_with_big_member(tmp_path / "t.tar", "s1.jpg", 300 * 2**20, cut_after=True)
    r = reader("image_text", "webdataset", tmp_path, urls=str(tmp_path / "t.tar"))  # default cap: 256 MiB
    tracemalloc.start()
    items = [it for p in r.partitions() for it in r.expand(p)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20, peak
    assert [it.input_id for it in items if it.alive] == ["t/s0"]
    dead = [it for it in items if not it.alive]
    assert dead and all(it.reason.startswith("truncated_archive: ") for it in dead)


def _csv(tmp_path: Path, data: bytes) -> Path:
    write_folder_dataset(tmp_path / "imgs", 2)
    (tmp_path / "t.csv").write_bytes(data)
    return tmp_path / "t.csv"


def test_csv_encodings(tmp_path):
    rows = "image,caption\nimgs/img000.jpg,caf\xe9 cr\xe8me on a table\nimgs/img001.jpg,\"two, lines\nin one cell\"\n"
    _csv(tmp_path, rows.encode("cp1252"))
    r = reader("image_text", "table", tmp_path, path="t.csv", encoding="cp1252")
    assert [it.data["caption"] for p in r.partitions() for it in r.expand(p)] == \
        ["caf\xe9 cr\xe8me on a table", "two, lines\nin one cell"]
    with pytest.raises(ValueError, match=r"t\.csv line 2: byte 0xe9 .* not valid utf-8.*input\.encoding"):
        reader("image_text", "table", tmp_path, path="t.csv")  # the default utf-8: found while planning
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))  # Excel's "CSV UTF-8"
    r = reader("image_text", "table", tmp_path, per_partition=1, path="t.csv")
    parts = list(r.partitions())
    assert len(parts) == 2 and [it.data["caption"] for p in parts for it in r.expand(p)][0].startswith("caf\xe9")


def test_listing_errors_are_reported_before_ray_starts(tmp_path):
    _csv(tmp_path, "image,caption\nimgs/img000.jpg,ok\nimgs/img001.jpg,na\xefve\n".encode("latin-1"))
    m = write_manifest(tmp_path / "m.yaml", tmp_path / "out",
                       [{"name": "t", "kind": "image_text", "input": {"format": "table", "path": str(tmp_path / "t.csv")}}])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(m), "-q"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "t.csv line 3" in r.stderr and "input.encoding" in r.stderr
    assert "ray " not in r.stdout and not (tmp_path / "out" / "shards").exists()  # no plan printed: Ray never started


def test_paths_leaving_the_input_root_get_an_outside_root_row(tmp_path):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 2)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a caption: a system file")
    photo(7).save(tmp_path / "elsewhere.jpg")
    (root / "linked.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    (root / "linked.txt").write_text("a caption")
    photo(8).save(root / "sidecar.jpg")
    (root / "sidecar.txt").symlink_to(secret)
    items = {it.input_id: it for it in reader("image_text", "folder", tmp_path, root="imgs").list_items()}
    assert items["img000"].alive and items["img001"].alive
    for name in ("linked", "sidecar"):
        assert items[name].status == "failed" and items[name].reason.startswith("outside_root: "), items[name].reason
    allowed = {it.input_id: it for it in reader("image_text", "folder", tmp_path, root="imgs",
                                                allow_outside_root=True).list_items()}
    assert allowed["linked"].alive and allowed["sidecar"].alive
    # A table cell climbing out of the table's folder.
    (root / "t.csv").write_text("image,caption\nimg000.jpg,fine\n../elsewhere.jpg,escapes\n")
    rows = reader("image_text", "table", root, path="t.csv").list_items()
    assert rows[0].alive and rows[1].reason.startswith("table row 1 (line 3): outside_root: ")
