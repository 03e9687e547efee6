"""Long-video inputs: a list file of paths, or a folder of videos. One item per video file.

Items carry only the path; decoding, shot detection and segmentation happen in the long_video stages.
"""

from __future__ import annotations

from pathlib import Path

from vidrd_data.items import Item, make_key
from vidrd_data.sources.base import ReaderParams, SourceReader, register_reader

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")


def _video_item(source: str, input_id: str, path: Path) -> Item:
    item = Item(key=make_key(source, input_id), source=source, input_id=input_id,
                data={"path": str(path)},
                meta=SourceReader.item_meta("video", input_id, dataset=source))
    return item


class ListParams(ReaderParams):
    path: str  # text file: one video path per line, relative to the list file; '#' starts a comment


@register_reader("long_video", "list")
class LongVideoListReader(SourceReader):
    Params = ListParams

    def check(self) -> None:
        p = self.resolve(self.params.path)
        if not p.is_file():
            raise FileNotFoundError(f"long_video list file not found: {p} (input.path; one video path per line)")

    def list_items(self) -> list[Item]:
        list_file = self.resolve(self.params.path)
        items, seen = [], set()
        for lineno, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if entry in seen:  # the same file twice would collide on keys and double its clips
                continue
            seen.add(entry)
            path = Path(entry).expanduser()
            path = path if path.is_absolute() else list_file.parent / path
            item = _video_item(self.source_name, entry, path)
            if not path.is_file():
                item.fail("read", f"{list_file.name} line {lineno}: video file not found: {path}")
            items.append(item)
        return items


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

    def list_items(self) -> list[Item]:
        root = self.resolve(self.params.root)
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in self.params.extensions}
        pattern = "**/*" if self.params.recursive else "*"
        paths = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in exts)
        return [_video_item(self.source_name, p.relative_to(root).as_posix(), p) for p in paths]
