"""Image–text inputs: a folder with sidecar captions, img2dataset-style WebDataset tars, a Parquet/CSV table.

Readers only list inputs; bytes are read by the `load_image` stage on a worker. For tars we record each
member's byte offset so a worker reads just that member (no tar scan per item).
"""

from __future__ import annotations

import glob
import json
import tarfile
from pathlib import Path
from typing import Literal

from vidrd_data.items import Item, make_key
from vidrd_data.sources.base import ReaderParams, SourceReader, register_reader

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

    def list_items(self) -> list[Item]:
        root = self.resolve(self.params.root)
        pattern = "**/*" if self.params.recursive else "*"
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        items = []
        for p in files:
            rel = p.relative_to(root).with_suffix("").as_posix()
            cap = p.with_suffix(self.params.caption_ext)
            item = _image_item(self.source_name, rel, {"path": str(p), "caption_path": str(cap)})
            if not cap.is_file():
                item.fail("read", f"no caption file {cap.name} beside {p.name}")
            items.append(item)
        return items


class WebDatasetParams(ReaderParams):
    format: Literal["webdataset"]
    urls: str | list[str]  # glob(s) or brace-free paths of local tars (img2dataset layout)
    image_keys: list[str] = ["jpg", "jpeg", "png", "webp"]
    caption_key: str = "txt"


@register_reader("image_text", "webdataset")
class WebDatasetReader(SourceReader):
    """img2dataset shards: KEY.jpg|png|webp + KEY.txt (+ KEY.json with url, width, height...)."""
    Params = WebDatasetParams
    provides = ("tar", "member", "caption_member")

    def _tars(self) -> list[Path]:
        urls = [self.params.urls] if isinstance(self.params.urls, str) else self.params.urls
        out: list[Path] = []
        for u in urls:
            matches = sorted(glob.glob(str(self.resolve(u))))
            if not matches:
                raise FileNotFoundError(f"input.urls: no tar matches {u!r}")
            out.extend(Path(m) for m in matches)
        return out

    def check(self) -> None:
        self._tars()

    def list_items(self) -> list[Item]:
        items = []
        for tar_path in self._tars():
            groups: dict[str, dict[str, tarfile.TarInfo]] = {}
            try:
                with tarfile.open(tar_path) as tf:
                    for m in tf:
                        if not m.isfile():
                            continue
                        base, _, ext = m.name.partition(".")
                        groups.setdefault(base, {})[ext.lower()] = m
                    json_by_key = {}
                    for base, members in groups.items():
                        if "json" in members:
                            try:
                                json_by_key[base] = json.loads(tf.extractfile(members["json"]).read())
                            except (ValueError, UnicodeDecodeError):
                                json_by_key[base] = None
            except (tarfile.TarError, OSError) as exc:
                items.append(_image_item(self.source_name, tar_path.stem, {}).fail("read", f"unreadable tar {tar_path}: {exc}"))
                continue
            for base in sorted(groups):
                members = groups[base]
                input_id = f"{tar_path.stem}/{base}"
                img_ext = next((e for e in self.params.image_keys if e in members), None)
                data = {"tar": str(tar_path)}
                if img_ext:
                    m = members[img_ext]
                    data["member"] = (m.offset_data, m.size, m.name)
                cap = members.get(self.params.caption_key)
                if cap is not None:
                    data["caption_member"] = (cap.offset_data, cap.size, cap.name)
                extra = {"original_meta": json_by_key.get(base)} if base in json_by_key else None
                item = _image_item(self.source_name, input_id, data, extra)
                if img_ext is None:
                    item.fail("read", f"sample {base} in {tar_path.name} has no image member ({'/'.join(self.params.image_keys)})")
                elif cap is None:
                    item.fail("read", f"sample {base} in {tar_path.name} has no .{self.params.caption_key} caption")
                items.append(item)
        return items


class TableParams(ReaderParams):
    format: Literal["table"]
    path: str  # .parquet or .csv
    image_column: str = "image"
    caption_column: str = "caption"
    id_column: str | None = None  # default: the row number


@register_reader("image_text", "table")
class TableReader(SourceReader):
    """A Parquet/CSV table of local image paths (relative to the table's folder) and captions."""
    Params = TableParams

    def _table_path(self) -> Path:
        return self.resolve(self.params.path)

    def check(self) -> None:
        p = self._table_path()
        if not p.is_file():
            raise FileNotFoundError(f"input.path {p} does not exist")
        if p.suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"input.path {p}: expected a .parquet or .csv table")

    def list_items(self) -> list[Item]:
        import pandas as pd

        p = self._table_path()
        df = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, dtype=str, keep_default_na=False)
        for col in (self.params.image_column, self.params.caption_column, self.params.id_column):
            if col and col not in df.columns:
                raise ValueError(f"table {p}: no column {col!r}; columns: {list(df.columns)}")
        items = []
        width = max(6, len(str(len(df))))
        for i, row in enumerate(df.itertuples(index=False)):
            rec = row._asdict()
            input_id = str(rec[self.params.id_column]) if self.params.id_column else f"row{i:0{width}d}"
            image = Path(str(rec[self.params.image_column]))
            image = image if image.is_absolute() else p.parent / image
            caption = rec[self.params.caption_column]
            item = _image_item(self.source_name, input_id, {"path": str(image), "caption": caption}, {"row": i})
            if not image.is_file():
                item.fail("read", f"table row {i}: image file {image} does not exist")
            items.append(item)
        return items
