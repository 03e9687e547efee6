"""Image–text inputs: a folder with sidecar captions, img2dataset-style WebDataset tars, a Parquet/CSV table.

Partitions: a chunk of the folder listing; one tar (local path, brace pattern or fsspec URL); a row range of the
table. A worker expands its partition: folder and table items carry paths (the `load_image` stage reads them);
tar items carry their members' bytes (the tar is read once, as a stream, by the worker that owns it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from vidrd_data.item_guard import DEFAULT_MAX_IMAGE_FILE_BYTES
from vidrd_data.items import Item, make_key
from vidrd_data.sources.base import Partition, ReaderParams, SourceReader, register_reader, walk_files
from vidrd_data.sources.inputs import expand_braces, glob_inputs, is_url
from vidrd_data.sources.tables import TablePartitions, read_rows, scan_table
from vidrd_data.sources.tar_stream import Damage, Oversize, tar_samples

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _image_item(source: str, input_id: str, data: dict, extra_meta: dict | None = None) -> Item:
    meta = SourceReader.item_meta("image", input_id, dataset=source)
    if extra_meta:
        meta["source"].update(extra_meta)
    return Item(key=make_key(source, input_id), source=source, input_id=input_id, data=data, meta=meta)


class FolderParams(ReaderParams):
    format: Literal["folder"]
    root: str
    recursive: bool = True
    caption_ext: str = ".txt"


@register_reader("image_text", "folder")
class FolderReader(SourceReader):
    """ROOT/**/name.jpg with ROOT/**/name.txt beside it (a missing .txt is a failed row, not a skip)."""
    Params = FolderParams

    def check(self) -> None:
        root = self.resolve(self.params.root)
        if not root.is_dir():
            raise FileNotFoundError(f"input.root {root} is not a directory")

    def entries(self) -> Iterator[str]:
        root = self.resolve(self.params.root)
        for p in walk_files(root, IMAGE_EXTS, self.params.recursive):
            yield p.relative_to(root).as_posix()

    def make_item(self, rel: str) -> Item:
        root = self.resolve(self.params.root)
        p = root / rel
        cap = p.with_suffix(self.params.caption_ext)
        # name.jpg beside name.png: both are inputs, so both keep their extension in the id (else one key for two)
        twins = [q for q in (p.with_suffix(e) for e in IMAGE_EXTS + tuple(x.upper() for x in IMAGE_EXTS))
                 if q.name != p.name and q.exists()]
        input_id = rel if twins else Path(rel).with_suffix("").as_posix()
        item = _image_item(self.source_name, input_id, {"path": str(p), "caption_path": str(cap)})
        outside = self.outside_root(p, root) or (cap.exists() and self.outside_root(cap, root))
        if outside:
            return item.fail("read", outside)
        if not cap.exists():
            return item.fail("read", f"no caption file {cap.name} beside {p.name}")
        return item


class WebDatasetParams(ReaderParams):
    format: Literal["webdataset"]
    urls: str | list[str]  # paths, globs, brace patterns ({00000..00099}) or fsspec URLs of tars (img2dataset layout)
    image_keys: list[str] = ["jpg", "jpeg", "png", "webp"]
    caption_key: str = "txt"
    # a member larger than this (by its tar header) is never read: its sample is filtered too_large
    max_member_bytes: int = Field(DEFAULT_MAX_IMAGE_FILE_BYTES, ge=1)


@register_reader("image_text", "webdataset")
class WebDatasetReader(SourceReader):
    """img2dataset shards: KEY.jpg|png|webp + KEY.txt (+ KEY.json with url, width, height...). One partition per tar."""
    Params = WebDatasetParams
    provides = ("image_bytes", "caption_bytes")

    def _urls(self) -> list[str]:
        patterns = [self.params.urls] if isinstance(self.params.urls, str) else self.params.urls
        out: list[str] = []
        for pattern in patterns:
            for u in expand_braces(pattern):
                u = u if is_url(u) else str(self.resolve(u))
                if any(c in u for c in "*?["):
                    matches = glob_inputs(u)
                    if not matches:
                        raise FileNotFoundError(f"input.urls: no tar matches {pattern!r}")
                    out.extend(matches)
                else:
                    out.append(u)  # brace-expanded or literal: not touched here (a missing tar gets its row)
        return list(dict.fromkeys(out))  # a tar named twice is read once

    def check(self) -> None:
        self._tars = self._urls()
        if not self._tars:
            raise FileNotFoundError(f"input.urls: {self.params.urls!r} names no tar")

    def partitions(self) -> Iterator[Partition]:
        urls = getattr(self, "_tars", None) or self._urls()
        first_with_stem: dict[str, list[str]] = {}
        for i, url in enumerate(urls):
            stem = url.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
            earlier = first_with_stem.setdefault(stem, [])
            # Same stem in another folder: its sample ids collide with the earlier tar's; the first one keeps them.
            yield Partition(self.source_name, i, {"url": url, "tar_id": stem, "earlier": list(earlier)}, None,
                            url.rsplit("/", 1)[-1])
            earlier.append(url)

    def expand(self, partition: Partition) -> Iterator[Item]:
        url, tar_id = partition.payload["url"], partition.payload["tar_id"]
        name = url.rsplit("/", 1)[-1]
        taken = _bases_in(partition.payload["earlier"])
        try:
            for s in tar_samples(url, self.params.max_member_bytes):
                if isinstance(s, Damage):
                    yield from self._damaged(tar_id, name, s)
                    return
                input_id = f"{tar_id}/{s.base}"
                if s.occurrence > 1 or s.base in taken:
                    where = f"{s.base} appears again in {name}" if s.occurrence > 1 else \
                        f"{s.base} of {name} was already read from {taken[s.base]}"
                    dup_id = f"{input_id}#{s.occurrence}" if s.occurrence > 1 else f"{input_id}#{url}"
                    yield _image_item(self.source_name, dup_id, {}).fail(
                        "read", f"duplicate_key: {where}; the first sample is kept")
                    continue
                yield self._sample_item(input_id, name, s.base, s.members)
        except OSError as exc:
            yield _image_item(self.source_name, tar_id, {}).fail("read", f"unreadable tar {url}: {exc}")

    def _sample_item(self, input_id: str, tar_name: str, base: str, members: dict) -> Item:
        big = {e: m.size for e, m in members.items() if isinstance(m, Oversize)}
        if big:
            members = {e: m for e, m in members.items() if e not in big}
            needed = [e for e in big if e in {*self.params.image_keys, self.params.caption_key}]
            if needed:  # an oversized .json only loses its metadata
                ext, size = needed[0], big[needed[0]]
                return _image_item(self.source_name, input_id, {"where": f"{base}.{ext} in {tar_name}"}).filter(
                    "read", f"too_large: member {base}.{ext} in {tar_name} is {size} bytes > max_member_bytes "
                            f"{self.params.max_member_bytes}")
        img_ext = next((e for e in self.params.image_keys if e in members), None)
        data = {"where": f"{base}.{img_ext} in {tar_name}"}
        if img_ext:
            data["image_bytes"] = members[img_ext]
        cap = members.get(self.params.caption_key)
        if cap is not None:
            data["caption_bytes"] = cap
        extra = None
        if "json" in members:
            try:
                extra = {"original_meta": json.loads(members["json"])}
            except (ValueError, UnicodeDecodeError):
                extra = {"original_meta": None}
        item = _image_item(self.source_name, input_id, data, extra)
        if img_ext is None:
            return item.fail("read", f"sample {base} in {tar_name} has no image member ({'/'.join(self.params.image_keys)})")
        if cap is None:
            return item.fail("read", f"sample {base} in {tar_name} has no .{self.params.caption_key} caption")
        return item

    def _damaged(self, tar_id: str, name: str, d: Damage) -> Iterator[Item]:
        if d.partial is not None and d.partial.occurrence == 1:
            yield _image_item(self.source_name, f"{tar_id}/{d.partial.base}", {}).fail(
                "read", f"truncated_archive: sample {d.partial.base} of {name} is cut off ({d.error})")
        yield _image_item(self.source_name, f"{tar_id}/#rest_after_{d.offset}", {}).fail(
            "read", f"truncated_archive: {name} is unreadable after byte {d.offset} ({d.error}); the samples "
                    "before it were read")


def _bases_in(urls: list[str]) -> dict[str, str]:
    """Sample prefixes of earlier tars sharing this tar's stem (their first occurrences win)."""
    taken: dict[str, str] = {}
    for url in urls:
        try:
            for s in tar_samples(url, max_member_bytes=0):  # names only: no member is read
                if not isinstance(s, Damage):
                    taken.setdefault(s.base, url)
        except OSError:
            continue
    return taken


class TableParams(ReaderParams):
    format: Literal["table"]
    path: str  # .parquet or .csv
    image_column: str = "image"
    caption_column: str = "caption"
    id_column: str | None = None  # default: the row number
    encoding: str = "utf-8"  # CSV only; a UTF-8 byte-order mark is detected


@register_reader("image_text", "table")
class TableReader(TablePartitions, SourceReader):
    """A Parquet/CSV table of image paths (relative to the table's folder) and captions; row ranges as partitions."""
    Params = TableParams

    def _table_path(self) -> str:
        p = self.params.path
        return p if is_url(p) else str(self.resolve(p))

    def check(self) -> None:
        p = self._table_path()
        if not is_url(p) and not Path(p).is_file():
            raise FileNotFoundError(f"input.path {p} does not exist")
        if not p.lower().endswith((".parquet", ".csv")):
            raise ValueError(f"input.path {p}: expected a .parquet or .csv table")

    def plan(self) -> None:
        self.check()
        cols = [self.params.image_column, self.params.caption_column, self.params.id_column]
        self._scan = scan_table(self._table_path(), self.params.encoding, self.inputs_per_partition, cols,
                                f"table {self._table_path()}")


    def expand(self, partition: Partition) -> Iterator[Item]:
        path = self._table_path()
        width = max(6, len(str(partition.payload["rows"])))
        base = Path(path).parent
        for row, line, rec in read_rows(path, partition.payload, f"table {path}"):
            input_id = str(rec[self.params.id_column]) if self.params.id_column else f"row{row:0{width}d}"
            where = f"table row {row}" + (f" (line {line})" if line >= 0 else "")
            cell = rec[self.params.image_column]
            image = Path(str(cell or ""))
            image = image if image.is_absolute() else base / image
            item = _image_item(self.source_name, input_id, {"path": str(image), "caption": rec[self.params.caption_column]},
                               {"row": row})
            if cell is None:
                item.fail("read", f"{where}: empty {self.params.image_column!r} cell")
            elif outside := self.outside_root(image, base):
                item.fail("read", f"{where}: {outside}")
            elif not image.exists():  # a FIFO / device / folder goes on: its first stage fails it not_a_regular_file
                item.fail("read", f"{where}: image file {image} does not exist")
            yield item
