"""Short-video (action-recognition) inputs: class folders, UCF-101 split files, Kinetics CSVs, a plain table.

Every input is one video file with its class label (meta["label"]); an annotated time segment, where the
annotation gives one (Kinetics on untrimmed downloads, a table's start/end), rides along in
data["segment"] = [start, end] and bounds the clip planner. Readers only list: nothing is decoded here. An
annotation row naming a file that does not exist becomes a failed row ("read"), never a silent skip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field

from vidrd_data.items import Item, make_key
from vidrd_data.sources.base import Partition, ReaderParams, SourceReader, register_reader, walk_files
from vidrd_data.sources.inputs import text_lines
from vidrd_data.sources.tables import TablePartitions, read_rows, scan_table

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")


class _VideoReader(SourceReader):
    def _item(self, input_id: str, path: Path, label: str | None, segment=None, **extra) -> Item:
        meta = self.item_meta("video", input_id, dataset=self.source_name, span=None, shot_ids=None, **extra)
        meta["label"] = label
        data = {"path": str(path)}
        if segment is not None:
            data["segment"] = [float(segment[0]), float(segment[1])]
        return Item(key=make_key(self.source_name, input_id), source=self.source_name, input_id=input_id,
                    data=data, meta=meta)

    def _missing(self, input_id: str, path: Path, label: str | None, where: str, segment=None) -> Item:
        return self._item(input_id, path, label, segment).fail("read", f"{where} names {path}, which does not exist")

    def _dir(self, value: str, field: str) -> Path:
        p = self.resolve(value)
        if not p.is_dir():
            raise FileNotFoundError(f"input.{field} {p} is not a directory")
        return p

    def _file(self, value: str, field: str) -> Path:
        p = self.resolve(value)
        if not p.is_file():
            raise FileNotFoundError(f"input.{field} {p} does not exist")
        return p


def _exts(extensions: list[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


_STEM_INDEX: dict[tuple[str, tuple[str, ...]], dict[str, Path]] = {}


def _videos_by_stem(root: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    """stem -> first path under root (listed once per worker process, then reused by its partitions)."""
    key = (str(root), exts)
    if key not in _STEM_INDEX:
        index: dict[str, Path] = {}
        for p in walk_files(root, exts):
            index.setdefault(p.stem, p)
        _STEM_INDEX[key] = index
    return _STEM_INDEX[key]


# ------------------------------------------------------------------------------------------------ class folders

class ClassFoldersParams(ReaderParams):
    format: Literal["class_folders"]
    root: str  # ROOT/<class>/<video> (deeper sub-folders are searched too; the class is the first level)
    extensions: list[str] = list(VIDEO_EXTS)
    classes: list[str] | None = None  # only these classes (default: every sub-folder)


@register_reader("short_video", "class_folders")
class ClassFoldersReader(_VideoReader):
    """UCF-101 / Kinetics / HMDB layout: one sub-folder per class, named by the class."""
    Params = ClassFoldersParams

    def check(self) -> None:
        root = self._dir(self.params.root, "root")
        if not any(d.is_dir() for d in root.iterdir()):
            raise FileNotFoundError(f"input.root {root} has no class sub-folders (expected ROOT/<class>/<video>)")

    def entries(self):
        root = self.resolve(self.params.root)
        wanted = set(self.params.classes) if self.params.classes else None
        for class_dir in sorted(d for d in root.iterdir() if d.is_dir()):
            if wanted is not None and class_dir.name not in wanted:
                continue
            for p in walk_files(class_dir, _exts(self.params.extensions)):
                yield p.relative_to(root).as_posix()

    def make_item(self, rel: str) -> Item:
        root = self.resolve(self.params.root)
        p = root / rel
        item = self._item(rel, p, rel.split("/", 1)[0])
        outside = self.outside_root(p, root)
        return item.fail("read", outside) if outside else item


# ---------------------------------------------------------------------------------------------- UCF-101 splits

class UcfSplitsParams(ReaderParams):
    format: Literal["ucf_splits"]
    root: str  # the videos: ROOT/<class>/v_<class>_gNN_cNN.avi
    splits_dir: str  # trainlist0N.txt, testlist0N.txt, classInd.txt (ucfTrainTestlist/)
    split: Literal["train", "test"] = "train"
    fold: int = Field(1, ge=1, le=3)
    encoding: str = "utf-8"


@register_reader("short_video", "ucf_splits")
class UcfSplitsReader(_VideoReader):
    """UCF-101's official split lists. Train lines carry a 1-based class index (classInd.txt), test lines
    only the path; either way the class folder in the path is the label and must agree with classInd."""
    Params = UcfSplitsParams

    def _list_path(self) -> Path:
        return self.resolve(self.params.splits_dir) / f"{self.params.split}list0{self.params.fold}.txt"

    def check(self) -> None:
        self._dir(self.params.root, "root")
        d = self._dir(self.params.splits_dir, "splits_dir")
        for p in (d / "classInd.txt", self._list_path()):
            if not p.is_file():
                raise FileNotFoundError(f"input.splits_dir: {p.name} not found in {d} (UCF-101's ucfTrainTestlist)")

    def _class_index(self) -> dict[int, str]:
        index = {}
        for n, line in enumerate((self.resolve(self.params.splits_dir) / "classInd.txt").read_text().splitlines(), 1):
            if line.strip():
                num, _, name = line.strip().partition(" ")
                if not num.isdigit() or not name.strip():
                    raise ValueError(f"classInd.txt line {n}: expected '<index> <ClassName>', got {line!r}")
                index[int(num)] = name.strip()
        return index

    def plan(self) -> None:
        self.check()
        self._classes = self._class_index()
        for _ in text_lines(str(self._list_path()), self.params.encoding):
            pass  # an undecodable line is reported now, before Ray starts

    def entries(self):
        for n, _, line in text_lines(str(self._list_path()), self.params.encoding):
            if line.strip():
                yield n, line

    def make_item(self, entry) -> Item:
        n, line = entry
        root = self.resolve(self.params.root)
        classes = getattr(self, "_classes", None) or self._class_index()
        rel, _, idx = line.strip().partition(" ")
        rel = rel.replace("\\", "/")
        folder = rel.split("/")[0] if "/" in rel else None
        label = classes.get(int(idx)) if idx.strip().isdigit() else folder
        where = f"{self._list_path().name} line {n}"
        p = root / rel
        extra = {"label_index": int(idx)} if idx.strip().isdigit() else {}
        item = self._item(rel, p, label, **extra)
        if label is None or label not in set(classes.values()):
            item.fail("read", f"{where}: class of {rel!r} is not in classInd.txt")
        elif folder is not None and folder != label:
            item.fail("read", f"{where}: {rel!r} is under {folder}/ but its index {idx.strip()} is {label}")
        elif outside := self.outside_root(p, root):
            item.fail("read", f"{where}: {outside}")
        elif not p.exists():  # a FIFO / device / folder goes on: its first stage fails it not_a_regular_file
            item = self._missing(rel, p, label, where)
        return item


# ------------------------------------------------------------------------------------------------ Kinetics CSV

class KineticsParams(ReaderParams):
    format: Literal["kinetics_csv"]
    csv: str  # label,youtube_id,time_start,time_end,split[,is_cc]
    root: str  # downloaded videos, found by id anywhere below (any of the usual namings, see below)
    split: str | None = None  # keep only rows of this split (train / validate / test)
    extensions: list[str] = list(VIDEO_EXTS)
    encoding: str = "utf-8"  # a UTF-8 byte-order mark is detected


@register_reader("short_video", "kinetics_csv")
class KineticsReader(TablePartitions, _VideoReader):
    """Kinetics annotations -> local files. A file named `<id>_<start:06d>_<end:06d>.*` (the usual trimmed
    download) is the annotated 10 s itself; a file named `<id>.*` is the untrimmed video, and the row's
    [time_start, time_end] becomes the segment the clips are taken from."""
    Params = KineticsParams

    def check(self) -> None:
        self._file(self.params.csv, "csv")
        self._dir(self.params.root, "root")

    def plan(self) -> None:
        self.check()
        path = str(self.resolve(self.params.csv))
        self._scan = scan_table(path, self.params.encoding, self.inputs_per_partition,
                                ["youtube_id", "time_start", "time_end"], f"input.csv {Path(path).name}")


    def expand(self, partition: Partition):
        csv_path = self.resolve(self.params.csv)
        by_stem = _videos_by_stem(self.resolve(self.params.root), _exts(self.params.extensions))
        for _, n, row in read_rows(str(csv_path), partition.payload, str(csv_path)):
            if self.params.split and row.get("split") != self.params.split:
                continue
            yid = (row["youtube_id"] or "").strip()
            try:
                ts, te = float(row["time_start"]), float(row["time_end"])
            except (TypeError, ValueError):
                ts = te = math.nan
            input_id = f"{yid}_{int(ts or 0):06d}_{int(te or 0):06d}" if ts == ts else yid
            label = (row.get("label") or "").strip() or None
            trimmed, full = by_stem.get(input_id), by_stem.get(yid)
            where = f"{csv_path.name} line {n}"
            if ts != ts or te <= ts:
                yield self._item(input_id, Path(yid), label).fail(
                    "read", f"{where}: bad time_start/time_end {row['time_start']!r}/{row['time_end']!r}")
            elif trimmed is not None:
                yield self._item(input_id, trimmed, label, youtube_id=yid, annotated=[ts, te])
            elif full is not None:
                yield self._item(input_id, full, label, segment=(ts, te), youtube_id=yid, annotated=[ts, te])
            else:
                yield self._item(input_id, self.resolve(self.params.root) / f"{input_id}.mp4", label).fail(
                    "read", f"{where}: no file for youtube id {yid} under {self.params.root} "
                            f"(looked for {input_id}.* and {yid}.*)")


# ---------------------------------------------------------------------------------------------- plain table

class VideoTableParams(ReaderParams):
    format: Literal["table"]
    path: str  # .csv or .parquet; relative video paths resolve against the table's folder (or `root`)
    root: str | None = None
    path_column: str = "path"
    label_column: str = "label"
    start_column: str = "start"  # optional columns: absent or empty -> the whole video
    end_column: str = "end"
    encoding: str = "utf-8"  # CSV only; a UTF-8 byte-order mark is detected


@register_reader("short_video", "table")
class VideoTableReader(TablePartitions, _VideoReader):
    """A table of `path, label[, start, end]` rows."""
    Params = VideoTableParams

    def check(self) -> None:
        p = self._file(self.params.path, "path")
        if p.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"input.path {p}: expected a .csv or .parquet table")

    def plan(self) -> None:
        self.check()
        path = str(self.resolve(self.params.path))
        self._scan = scan_table(path, self.params.encoding, self.inputs_per_partition,
                                [self.params.path_column, self.params.label_column], f"input.path {Path(path).name}")


    def expand(self, partition: Partition):
        table_path = self.resolve(self.params.path)
        base = self.resolve(self.params.root) if self.params.root else table_path.parent
        cols = partition.payload["columns"]
        has_span = self.params.start_column in cols and self.params.end_column in cols
        for n, _, row in read_rows(str(table_path), partition.payload, str(table_path)):
            rel = str(row[self.params.path_column] or "")
            p = Path(rel).expanduser()
            p = p if p.is_absolute() else base / p
            label = row[self.params.label_column]
            label = None if label is None else str(label)
            seg = None
            if has_span:
                s, e = row[self.params.start_column], row[self.params.end_column]
                if s is not None and e is not None:
                    seg = (float(s), float(e))
            input_id = rel if seg is None else f"{rel}@{seg[0]:g}-{seg[1]:g}"
            where = f"{table_path.name} row {n}"
            if seg is not None and not seg[1] > seg[0] >= 0:
                item = self._item(input_id, p, label).fail("read", f"{where}: bad span start={seg[0]} end={seg[1]}")
            elif outside := self.outside_root(p, base):
                item = self._item(input_id, p, label).fail("read", f"{where}: {outside}")
            elif not p.is_file():
                item = self._missing(input_id, p, label, where, seg)
            else:
                item = self._item(input_id, p, label, seg)
            yield item
