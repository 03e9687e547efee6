"""Long-video inputs: a list file of paths, or a folder of videos. One item per video file.

Items carry only the path; decoding, shot detection and segmentation happen in the long_video stages.
"""

from __future__ import annotations

from pathlib import Path

from vidrd_data.items import Item, make_key
from vidrd_data.sources.base import ReaderParams, SourceReader, register_reader, walk_files
from vidrd_data.sources.inputs import text_lines

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")


def _video_item(source: str, input_id: str, path: Path) -> Item:
    item = Item(key=make_key(source, input_id), source=source, input_id=input_id,
                data={"path": str(path)},
                meta=SourceReader.item_meta("video", input_id, dataset=source))
    return item


class ListParams(ReaderParams):
    path: str  # text file: one video path per line, relative to the list file; '#' starts a comment
    encoding: str = "utf-8"  # a UTF-8 byte-order mark is detected


@register_reader("long_video", "list")
class LongVideoListReader(SourceReader):
    Params = ListParams

    def check(self) -> None:
        p = self.resolve(self.params.path)
        if not p.is_file():
            raise FileNotFoundError(f"long_video list file not found: {p} (input.path; one video path per line)")

    def plan(self) -> None:
        self.check()
        for _ in text_lines(str(self.resolve(self.params.path)), self.params.encoding):
            pass  # an undecodable line is reported now, before Ray starts

    def entries(self):
        list_file = self.resolve(self.params.path)
        seen = set()
        for lineno, _, line in text_lines(str(list_file), self.params.encoding):
            entry = line.split("#", 1)[0].strip()
            if not entry or entry in seen:  # the same file twice would collide on keys and double its clips
                continue
            seen.add(entry)
            yield lineno, entry

    def make_item(self, e) -> Item:
        lineno, entry = e
        list_file = self.resolve(self.params.path)
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else list_file.parent / path
        item = _video_item(self.source_name, entry, path)
        if outside := self.outside_root(path, list_file.parent):
            item.fail("read", f"{list_file.name} line {lineno}: {outside}")
        elif not path.exists():  # a FIFO / device / folder goes on: its first stage fails it not_a_regular_file
            item.fail("read", f"{list_file.name} line {lineno}: video file not found: {path}")
        return item


class FolderParams(ReaderParams):
    root: str
    extensions: list[str] = list(VIDEO_EXTENSIONS)
    recursive: bool = True


@register_reader("long_video", "folder")
class LongVideoFolderReader(SourceReader):
    Params = FolderParams

    def check(self) -> None:
        root = self.resolve(self.params.root)
        if not root.is_dir():
            raise FileNotFoundError(f"long_video folder not found: {root} (input.root)")

    def entries(self):
        root = self.resolve(self.params.root)
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in self.params.extensions}
        for p in walk_files(root, exts, self.params.recursive):
            yield p.relative_to(root).as_posix()

    def make_item(self, rel: str) -> Item:
        root = self.resolve(self.params.root)
        item = _video_item(self.source_name, rel, root / rel)
        outside = self.outside_root(root / rel, root)
        return item.fail("read", outside) if outside else item
