"""Output safety (issue 16.4): one build per output, no resume across configs, damaged commits set aside and
rebuilt, only our own leftovers deleted; and remote inputs (11.2) read by the workers."""

from __future__ import annotations

import functools
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from tests.data_build.helpers import image_source, photo, status_rows, tar_keys, write_folder_dataset, write_manifest
from vidrd_data.build import BuildError, build
from vidrd_data.output_lock import OutputLock

QUIET = dict(progress=False, out=lambda s: None)


@pytest.fixture
def small(tmp_path):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 6, size=(96, 80))
    return write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", root)], max_samples=2)


def test_a_second_build_on_a_locked_output_refuses(small, tmp_path, ray_session):
    holder = OutputLock(str(tmp_path / "out")).acquire()  # another build, alive (this very process)
    try:
        with pytest.raises(BuildError, match=r"being built by another build: host .* pid \d+"):
            build(small, **QUIET)
        assert not (tmp_path / "out" / "shards").exists()
    finally:
        holder.release()
    build(small, **QUIET)  # released: the build runs
    assert not (tmp_path / "out" / ".vidrd-build.lock").exists()


def test_resume_under_another_config_needs_force(small, tmp_path, ray_session):
    build(small, **QUIET)
    changed = small.read_text().replace("frames: 8", "frames: 6")
    small.write_text(changed)
    with pytest.raises(BuildError, match="was built with config .* --force"):
        build(small, **QUIET)
    report = build(small, force=True, **QUIET)
    assert report.inputs == 0  # forced: resumes (every input is committed already)


def test_damaged_commit_is_set_aside_and_rebuilt_and_foreign_files_stay(small, tmp_path, ray_session):
    build(small, **QUIET)
    shards = tmp_path / "out" / "shards"
    keys = sorted(tar_keys(tmp_path / "out"))
    victim = shards / "p-000001.tar"
    victim.write_bytes(victim.read_bytes()[:-2048])  # a committed tar cut short
    foreign = {"notes.txt": b"mine", "p-000001.tar.bak": b"my copy", "p-000009.tar.tmp": b"looks like ours"}
    for name, data in foreign.items():
        (shards / name).write_bytes(data)
    (shards / "p-000002.tar.0123456789ab.tmp").write_bytes(b"a dead writer's temp file")
    report = build(small, **QUIET)
    assert report.shards == ["p-000001"] and report.inputs == 2
    assert sorted(tar_keys(tmp_path / "out")) == keys
    aside = list((tmp_path / "out" / "set_aside").rglob("p-000001*"))
    assert {p.name for p in aside} == {"p-000001.tar", "p-000001.parquet", "p-000001_stats.json"}
    assert not (shards / "p-000002.tar.0123456789ab.tmp").exists()
    for name, data in foreign.items():
        assert (shards / name).read_bytes() == data, name  # never ours to delete
    rows = status_rows(tmp_path / "out")
    assert rows["input_id"].is_unique and len(rows) == 6
    build(small, resume=False, **QUIET)  # --no-resume removes our shards only
    assert all((shards / name).read_bytes() == data for name, data in foreign.items())


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def _tar(path: Path, seed: int, n: int = 3) -> None:
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            buf = io.BytesIO()
            photo(seed + i, (96, 80)).save(buf, format="JPEG")
            for name, data in ((f"{i:04d}.jpg", buf.getvalue()), (f"{i:04d}.txt", f"a web picture {seed + i}".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_tars_read_from_file_and_http_urls(tmp_path, ray_session):
    local, web = tmp_path / "local", tmp_path / "web"
    local.mkdir()
    web.mkdir()
    for i in range(3):  # distinct pictures everywhere (the recipe's dedup would filter copies)
        _tar(local / f"{i:05d}.tar", 100 + 10 * i)
        _tar(web / f"{i:05d}.tar", 200 + 10 * i)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(web)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sources = [{"name": "local", "kind": "image_text", "input": {"format": "webdataset",
                                                                     "urls": f"file://{local}/{{00000..00002}}.tar"}},
                   {"name": "remote", "kind": "image_text", "input": {"format": "webdataset",
                                                                      "urls": [f"{base}/{{00000..00001}}.tar",
                                                                               f"{base}/00002.tar"]}}]
        report = build(write_manifest(tmp_path / "m.yaml", tmp_path / "out", sources), **QUIET)
    finally:
        server.shutdown()
    rows = status_rows(tmp_path / "out")
    assert report.counts["success"] == 18 and (rows["status"] == "success").all() and len(rows) == 18, rows
    keys = tar_keys(tmp_path / "out")
    assert sorted(k.split("_", 1)[1] for k in keys if k.startswith("local_")) == \
        sorted(k.split("_", 1)[1] for k in keys if k.startswith("remote_"))  # same tar/sample ids, both read
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["totals"]["success"] == 18 and info["sources"]["remote"]["success"] == 9


def test_max_items_then_resume_completes_each_input_once(small, tmp_path, ray_session):
    """--max-items cuts a partition short; the next run completes it in an -r01 shard, nothing twice."""
    first = build(small, max_items=3, **QUIET)
    assert first.inputs == 3 and len(status_rows(tmp_path / "out")) == 3
    second = build(small, **QUIET)
    assert second.inputs == 3
    rows = status_rows(tmp_path / "out")
    assert rows["input_id"].is_unique and len(rows) == 6 and (rows["status"] == "success").all()
    keys = tar_keys(tmp_path / "out")
    assert len(keys) == len(set(keys)) == 6
    assert "p-000001-r01" in set(rows["shard"])  # the partition the dry run cut short, completed by the resume
