"""The shard format: the one contract between `vidrd-data build` (the writer) and every reader of its output.

What this module offers (a small, stable API; both `vidrd_data` and `vidrd_model` import it, never each other):

- names: `SHARD_DIR` ("shards"), `MEMBERS` (mp4, jpg, txt, json: every sample has exactly these, in this order),
  `SCHEMA_VERSION` (of KEY.json), `shard_stem(source, index, retry)` / `parse_stem(name)`, `shard_files(dir, stem)`
  (the tar, the status parquet and the `_stats.json` commit marker of one shard).
- reading: `committed_shards(output, verify=...)` lists the shards whose commit marker exists (optionally checking
  the size and sha256 the marker records); `committed_tar_urls(urls)` keeps, of a list of tar URLs, the committed
  ones; `verify_shard(shard, level)` says what is wrong with one (None when sound).
- writing: `ShardWriter` writes a shard member by member under temporary names and commits it: tar renamed into
  place, then the parquet, then `_stats.json` LAST (with the files' sizes and sha256), each file and the folder
  fsynced before the marker; `write_sample(tar, key, members)` adds one sample's members in the fixed order.

A shard without `_stats.json` is not part of the output: a reader must ignore it, a resumed build rebuilds it.
Outputs may be local paths or fsspec URLs (file://, s3://, gs://, http(s):// for reading).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

SCHEMA_VERSION = 2
SHARD_DIR = "shards"
MEMBERS = ("mp4", "jpg", "txt", "json")
TAR_EXT, PARQUET_EXT, STATS_SUFFIX = ".tar", ".parquet", "_stats.json"
KEY_RE = re.compile(r"^[0-9a-z_]+$")
# {source}-{index:06d}, and -r{NN} for a later run's shard of the same input partition (--retry-failed, resume).
STEM_RE = re.compile(r"^(?P<source>[a-z0-9][a-z0-9_]*)-(?P<index>\d{6})(?:-r(?P<retry>\d{2,}))?$")
# Names a build may leave behind when killed: its shards' files and their temporary names. Nothing else is ours.
_OWN_FILE_RE = re.compile(r"^(?P<stem>[a-z0-9][a-z0-9_]*-\d{6}(?:-r\d{2,})?)"
                          r"(?P<ext>\.tar|\.parquet|_stats\.json)(?P<tmp>\.[0-9a-f]{12}\.tmp)?$")


def shard_stem(source: str, index: int, retry: int = 0) -> str:
    return f"{source}-{index:06d}" + (f"-r{retry:02d}" if retry else "")


def parse_stem(name: str) -> tuple[str, int, int] | None:
    """(source, partition index, retry) of a shard stem, or None if the name is not one of ours."""
    m = STEM_RE.match(name)
    return (m["source"], int(m["index"]), int(m["retry"] or 0)) if m else None


def own_file(name: str) -> tuple[str, str, bool] | None:
    """(stem, extension, is_temporary) when `name` is a file a build writes into the shard folder, else None."""
    m = _OWN_FILE_RE.match(name)
    return (m["stem"], m["ext"], bool(m["tmp"])) if m else None


@dataclass(frozen=True)
class ShardFiles:
    stem: str
    tar: str
    parquet: str
    stats: str


def shard_files(shard_dir: str, stem: str) -> ShardFiles:
    base = f"{shard_dir.rstrip('/')}/{stem}"
    return ShardFiles(stem, base + TAR_EXT, base + PARQUET_EXT, base + STATS_SUFFIX)


def url_to_fs(url: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


# --------------------------------------------------------------------------------------------------- reading

@dataclass
class CommittedShard:
    files: ShardFiles
    stats: dict[str, Any]
    fs: Any = field(repr=False, default=None)

    @property
    def stem(self) -> str:
        return self.files.stem


def _shard_dir(fs, output: str) -> str:
    return output if output.rstrip("/").endswith("/" + SHARD_DIR) or not fs.isdir(f"{output}/{SHARD_DIR}") \
        else f"{output}/{SHARD_DIR}"


def committed_shards(output: str, verify: str = "none") -> list[CommittedShard]:
    """The committed shards of an output folder (or of a shard folder), sorted by stem.

    verify: "none" (the marker exists), "size" (tar and parquet have the recorded sizes) or "sha256" (and the
    recorded digests). A shard that fails the check is left out.
    """
    fs, root = url_to_fs(output)
    if not fs.exists(root):
        return []
    shard_dir = _shard_dir(fs, root)
    out = []
    for path in sorted(fs.glob(f"{shard_dir}/*{STATS_SUFFIX}")):
        stem = path.rsplit("/", 1)[-1][: -len(STATS_SUFFIX)]
        if parse_stem(stem) is None:
            continue
        shard = CommittedShard(shard_files(shard_dir, stem), json.loads(fs.cat_file(path)), fs)
        if verify == "none" or verify_shard(shard, verify) is None:
            out.append(shard)
    return out


def committed_tar_urls(urls: Iterable[str]) -> list[str]:
    """Keep the tar URLs whose `_stats.json` commit marker exists beside them (order kept)."""
    kept = []
    for url in urls:
        fs, path = url_to_fs(url)
        if path.endswith(TAR_EXT) and fs.exists(path[: -len(TAR_EXT)] + STATS_SUFFIX):
            kept.append(url)
    return kept


def file_digest(fs, path: str, chunk: int = 4 << 20) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    with fs.open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            n += len(block)
    return n, h.hexdigest()


def verify_shard(shard: CommittedShard, level: str = "sha256") -> str | None:
    """What is wrong with a committed shard (a missing file, a size or sha256 differing from the marker), or None."""
    fs = shard.fs or url_to_fs(shard.files.tar)[0]
    recorded = shard.stats.get("files") or {}
    for kind in ("tar", "parquet"):
        path, want = getattr(shard.files, kind), recorded.get(kind)
        if not fs.exists(path):
            return f"{path.rsplit('/', 1)[-1]} is missing"
        if not want:
            return f"{shard.stem}{STATS_SUFFIX} records no size/sha256 for its {kind} (written by an older build)"
        if level in ("size", "sha256") and fs.size(path) != want["bytes"]:
            return f"{path.rsplit('/', 1)[-1]} has {fs.size(path)} bytes, its commit marker records {want['bytes']}"
        if level == "sha256" and file_digest(fs, path)[1] != want["sha256"]:
            return f"{path.rsplit('/', 1)[-1]}: sha256 differs from the one its commit marker records"
    return None


# --------------------------------------------------------------------------------------------------- writing

def write_sample(tar: tarfile.TarFile, key: str, members: dict[str, bytes]) -> None:
    """One sample's members, contiguous, in the fixed order; KEY must be dot-free `[0-9a-z_]`."""
    if not KEY_RE.match(key):
        raise ValueError(f"sample key {key!r} is not [0-9a-z_]+ (dot-free: webdataset splits names at the first dot)")
    if set(members) != set(MEMBERS):
        raise ValueError(f"sample {key}: members {sorted(members)}, the format requires exactly {list(MEMBERS)}")
    for ext in MEMBERS:
        payload = members[ext]
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what passes through (tarfile asks for tell())."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.f.write(b)
        self.h.update(b)
        self.n += len(b)
        return len(b)

    def tell(self) -> int:
        return self.n


def _fsync_file(f) -> None:
    f.flush()
    try:
        os.fsync(f.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        pass  # an object store: durability is the store's, on close


def _fsync_dir(fs, path: str) -> None:
    if getattr(fs, "protocol", None) not in ("file", ("file", "local")) and "Local" not in type(fs).__name__:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardWriter:
    """Writes one shard: `add(key, members)` streams samples into `STEM.tar.<token>.tmp`; `commit(parquet, stats)`
    renames the tar into place, writes the parquet, then `_stats.json` (sizes and sha256 of both added), fsyncing
    files and folder before the marker. Leaving the `with` block without commit removes the temporary file."""

    def __init__(self, shard_dir: str, stem: str, fs=None):
        if parse_stem(stem) is None:
            raise ValueError(f"shard stem {stem!r} does not match {{source}}-{{index:06d}}[-rNN]")
        self.fs = fs if fs is not None else url_to_fs(shard_dir)[0]
        self.dir = shard_dir.rstrip("/")
        self.files = shard_files(self.dir, stem)
        self.fs.makedirs(self.dir, exist_ok=True)
        self._tmp = f"{self.files.tar}.{uuid.uuid4().hex[:12]}.tmp"  # per attempt: a stale attempt cannot interleave
        self._raw = self.fs.open(self._tmp, "wb")
        self._hash = _Hashing(self._raw)
        self.tar = tarfile.open(fileobj=self._hash, mode="w", format=tarfile.USTAR_FORMAT)
        self.samples, self.committed = 0, False

    def add(self, key: str, members: dict[str, bytes]) -> None:
        write_sample(self.tar, key, members)
        self.samples += 1

    def drop(self, keys: set[str]) -> int:
        """Remove samples already added (a verdict that came after they were written, e.g. dedup's): the
        temporary tar is copied without them. Returns how many samples went."""
        keys = set(keys)
        if not keys:
            return 0
        self.tar.close()
        self._raw.close()
        old = self._tmp
        self._tmp = f"{self.files.tar}.{uuid.uuid4().hex[:12]}.tmp"
        self._raw = self.fs.open(self._tmp, "wb")
        self._hash = _Hashing(self._raw)
        self.tar = tarfile.open(fileobj=self._hash, mode="w", format=tarfile.USTAR_FORMAT)
        dropped: set[str] = set()
        with self.fs.open(old, "rb") as f, tarfile.open(fileobj=f, mode="r|") as src:
            for info in src:
                key = info.name.split(".", 1)[0]
                if key in keys:
                    dropped.add(key)
                    continue
                self.tar.addfile(info, src.extractfile(info))
        self.fs.rm(old)
        self.samples -= len(dropped)
        return len(dropped)

    def _put(self, path: str, data: bytes) -> dict[str, Any]:
        tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
            _fsync_file(f)
        self.fs.mv(tmp, path)
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def commit(self, parquet: bytes, stats: dict[str, Any]) -> dict[str, Any]:
        self.tar.close()
        _fsync_file(self._raw)
        self._raw.close()
        tar_info = {"bytes": self._hash.n, "sha256": self._hash.h.hexdigest()}
        self.fs.mv(self._tmp, self.files.tar)
        pq_info = self._put(self.files.parquet, parquet)
        _fsync_dir(self.fs, self.dir)
        marker = {**stats, "shard": self.files.stem, "schema_version": SCHEMA_VERSION, "samples": self.samples,
                  "files": {"tar": tar_info, "parquet": pq_info}}
        self._put(self.files.stats, json.dumps(marker, indent=1, default=str).encode())
        _fsync_dir(self.fs, self.dir)
        self.committed = True
        return marker

    def abort(self) -> None:
        if self.committed:
            return
        try:
            self.tar.close()
            self._raw.close()
        finally:
            if self.fs.exists(self._tmp):
                self.fs.rm(self._tmp)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()
